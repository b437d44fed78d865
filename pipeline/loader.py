"""The training side: a tf.data loader for built records, with dynamic masking.

    from pretrain_records.pipeline.loader import load_dataset
    ds = load_dataset("OUT", batch_size=32, seed=7)

Lengths, feature names and masking settings come from OUT/manifest.json, so the loader always
agrees with the writer (no "Can't parse serialized Example" from a mismatched P).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from pretrain_records.pipeline import features
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.writer import COMPRESSION


def load_dataset(
    path: str,
    batch_size: int,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
    *,
    epochs: int | None = None,
    shuffle_buffer: int = 10_000,
    num_parallel_calls: int = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Batches of records from a build output, ready for a TPU.

    Args:
      path: the build's output directory (holding manifest.json).
      batch_size: per-replica batch size (from `input_context` when given, else global).
      seed: shuffling and dynamic masking; the same seed gives the same batches.
      input_context: `tf.distribute.InputContext`: this host reads its share of the records.
      epochs: passes over the data; None repeats forever.
      shuffle_buffer: records shuffled in a bounded buffer (0: keep the stored order).
      num_parallel_calls: parallelism of parsing and masking (results do not depend on it).

    Returns:
      A dataset of dicts of int32 `[batch, L]` / `[batch, P]` tensors (float32
      `masked_lm_weights`, int32 `next_sentence_labels [batch, 1]`) with static shapes and
      `drop_remainder`. Records written with `masking: dynamic` get masks from the NgramMask op,
      fresh every epoch: element k of the stream (over all epochs) draws from seed (seed, k).
    """
    manifest = manifest_lib.read(path)
    config = BuildConfig(**manifest["config"])
    files = [manifest_lib.safe_member(path, s["name"]) for s in manifest["shards"]]
    if not files:
        raise ValueError(f"{path}: the manifest lists no shards")
    compression = COMPRESSION[config.compression]
    # Per-host share: whole files when there are enough, else every n-th record.
    by_file = input_context is not None and len(files) >= input_context.num_input_pipelines
    if by_file:
        files = files[input_context.input_pipeline_id :: input_context.num_input_pipelines]
    dataset = tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=min(len(files), 8),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    if input_context is not None and not by_file:
        dataset = dataset.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.repeat(epochs)
    spec = features.parse_spec(manifest["features"])
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    dataset = dataset.map(
        lambda records: tf.io.parse_example(records, spec),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    if config.masking == "dynamic":
        dataset = _dynamically_masked(
            dataset, config, manifest, seed, batch_size, num_parallel_calls
        )
    dataset = dataset.map(_to_tpu_types, num_parallel_calls=num_parallel_calls, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _to_tpu_types(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """TPUs want int32: every int64 feature is cast; weights stay float32."""
    return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in batch.items()}


def _dynamically_masked(
    dataset: tf.data.Dataset,
    config: BuildConfig,
    manifest: dict[str, Any],
    seed: int,
    batch_size: int,
    num_parallel_calls: int,
) -> tf.data.Dataset:
    ids_name = "input_word_ids" if config.feature_names == "v2" else "input_ids"
    tokenizer = manifest["tokenizer"]

    def mask(index: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lengths = tf.reduce_sum(tf.cast(batch["input_mask"], tf.int32), axis=1)
        # Row i of batch b is element b * batch_size + i of the stream: its seed.
        row_seed = tf.stack([tf.constant(seed, tf.int64), index * batch_size])
        masked = features.mask_padded(
            batch[ids_name],
            batch["token_boundary"],
            lengths,
            row_seed,
            config,
            tokenizer["special_ids"],
            tokenizer["mask_id"],
            tokenizer["vocab_size"],
        )
        masked_ids = masked.pop("input_ids")
        out = {**batch, **masked, ids_name: masked_ids}
        for value in out.values():
            value.set_shape([batch_size, *value.shape[1:]])
        return out

    return dataset.enumerate().map(mask, num_parallel_calls=num_parallel_calls, deterministic=True)
