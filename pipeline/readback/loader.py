"""The training side: a tf.data loader for built records, with dynamic masking.

    from pretrain_records.pipeline.readback.loader import load_dataset
    ds = load_dataset("OUT", batch_size=32, seed=7)

Lengths, feature names and masking settings come from OUT/manifest.json, so the loader always
agrees with the writer (no "Can't parse serialized Example" from a mismatched P).

On a pod (an `input_context` with H input pipelines), host h reads the contiguous global record
range [h * N // H, (h + 1) * N // H) of the N records listed in the manifest, in manifest order,
opening only the shards that overlap it. Every host yields the same number of batches per epoch,
and dynamic masks come from a stream keyed by (seed, host, host count), so hosts never share
draws.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
from pretrain_records.pipeline.config import BuildConfig, from_manifest
from pretrain_records.pipeline.records import features
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.schema import COMPRESSION

_MASK_STREAM, _SHUFFLE_STREAM = 1, 2  # keep the two per-host seeds apart
_UINT64 = (1 << 64) - 1


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
      batch_size: global batch size; with `input_context`, each host's dataset yields batches of
        `input_context.get_per_replica_batch_size(batch_size)`.
      seed: shuffling and dynamic masking; the same seed and host count give the same batches.
      input_context: `tf.distribute.InputContext`: this host reads its share of the records.
      epochs: passes over the data; None repeats forever.
      shuffle_buffer: records shuffled in a bounded buffer, afresh each epoch; shards are read
        interleaved. 0: the stored order, shard after shard in manifest order.
      num_parallel_calls: parallelism of reading, parsing and masking (results do not depend
        on it).

    Returns:
      A dataset of dicts of int32 `[batch, L]` / `[batch, P]` tensors (float32
      `masked_lm_weights`, int32 `next_sentence_labels [batch, 1]`) with static shapes. Each
      epoch yields floor(min_h n_h / batch) batches on every host (n_h: the host's records);
      the rest of the host's records, fewer than batch + 1, are left out of that epoch.
      Records written with `masking: dynamic` get masks from the NgramMask op, fresh every
      epoch: element k of host h's stream (over all epochs) draws from seed
      (splitmix64 of (seed, h, H), k).

    Raises:
      ValueError: the records cannot make one batch per host, or `batch_size` < 1.
      ManifestError: a missing or malformed manifest.
    """
    manifest = manifest_lib.read(path)
    config = from_manifest(manifest["config"])
    hosts, host = _host_of(input_context)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    shards = _shard_records(path, manifest)
    total = sum(count for _, count in shards)
    batches_per_epoch = _batches_per_epoch(path, total, hosts, batch_size)
    start, stop = host * total // hosts, (host + 1) * total // hosts
    dataset = _read_range(
        shards,
        start,
        stop,
        COMPRESSION[config.compression],
        num_parallel_calls,
        in_order=not shuffle_buffer,
    )
    if shuffle_buffer:
        shuffle_seed = _host_seed(seed, host, hosts, _SHUFFLE_STREAM)
        dataset = dataset.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=True)
    # Equal batches on every host: each epoch keeps the same count of records, so no host
    # runs out of steps before the others (the dropped records change with each reshuffle).
    dataset = dataset.take(batches_per_epoch * batch_size).repeat(epochs)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    spec = features.parse_spec(manifest["features"])
    dataset = dataset.map(
        lambda records: tf.io.parse_example(records, spec),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    if config.masking == "dynamic":
        mask_seed = _host_seed(seed, host, hosts, _MASK_STREAM)
        dataset = _dynamically_masked(
            dataset, config, manifest, mask_seed, batch_size, num_parallel_calls
        )
    dataset = dataset.map(_to_tpu_types, num_parallel_calls=num_parallel_calls, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _host_seed(seed: int, host: int, hosts: int, stream: int) -> int:
    """A 63-bit seed for one host's random stream: splitmix64 chained over
    (stream, seed, host, hosts), so nearby seeds and hosts give unrelated streams."""
    state = 0
    for part in (stream, seed, host, hosts):
        state = _splitmix64(state ^ (part & _UINT64))
    return state >> 1  # tf.int64 and tf.data seeds are signed


def _splitmix64(value: int) -> int:
    """One step of SplitMix64 (Steele, Lea and Flood 2014) on a 64-bit value."""
    value = (value + 0x9E3779B97F4A7C15) & _UINT64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _UINT64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _UINT64
    return value ^ (value >> 31)


def _host_of(input_context: tf.distribute.InputContext | None) -> tuple[int, int]:
    """(host count, this host); a single host is host 0 of 1."""
    if input_context is None:
        return 1, 0
    return input_context.num_input_pipelines, input_context.input_pipeline_id


def _shard_records(path: str, manifest: dict[str, Any]) -> list[tuple[str, int]]:
    """(file, record count) of each listed shard, in manifest order."""
    shards = []
    for shard in manifest["shards"]:
        count = shard.get("records")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise manifest_lib.ManifestError(
                f"{path}: shard {shard['name']!r} has no valid record count ({count!r})"
            )
        file = manifest_lib.safe_member(path, shard["name"])
        _check_size(file, shard.get("bytes"), manifest)
        shards.append((file, count))
    if not shards:
        raise ValueError(f"{path}: the manifest lists no shards")
    return shards


def _check_size(file: str, expected: Any, manifest: dict[str, Any]) -> None:
    """A shard the manifest names is there with its size: a build the retention collected (or
    one replaced by hand) is a clear error, never records of another build."""
    try:
        size = tf.io.gfile.stat(file).length
    except tf.errors.NotFoundError:
        folder = manifest.get("build_dir") or "the build"
        raise manifest_lib.ManifestError(
            f"{file}: gone ({folder} was collected after later builds: the retention keeps "
            "retained_builds earlier ones); load the current manifest again"
        ) from None
    if isinstance(expected, int) and size != expected:
        raise manifest_lib.ManifestError(
            f"{file}: {size} bytes, its manifest says {expected}: not the build it names"
        )


def _batches_per_epoch(path: str, total: int, hosts: int, batch_size: int) -> int:
    """Batches every host yields per epoch: those of the smallest host share."""
    if batch_size < 1:
        raise ValueError(f"{path}: batch size must be >= 1, got {batch_size}")
    smallest = total // hosts
    if smallest < batch_size:
        if hosts == 1:
            raise ValueError(f"{path}: {total} records, fewer than the batch of {batch_size}")
        raise ValueError(
            f"{path}: {total} records over {hosts} hosts give {smallest} per host, fewer than"
            f" the per-host batch of {batch_size}"
        )
    return smallest // batch_size


def _read_range(
    shards: list[tuple[str, int]],
    start: int,
    stop: int,
    compression: str,
    num_parallel_calls: int,
    in_order: bool = False,
) -> tf.data.Dataset:
    """Records [start, stop) of the shards' concatenation, opening only the shards that overlap
    it; fails at the end of a pass if the files hold fewer records than the manifest says.
    Shards are read interleaved (up to 8 at a time), or with `in_order` one after another, so
    that the records come in the concatenation's order."""
    files, skips, takes = [], [], []
    first = 0  # global index of the shard's first record
    for name, count in shards:
        skip, end = max(start - first, 0), min(stop - first, count)
        if end > skip:
            files.append(name)
            skips.append(skip)
            takes.append(end - skip)
        first += count
    dataset = tf.data.Dataset.from_tensor_slices(
        (files, tf.constant(skips, tf.int64), tf.constant(takes, tf.int64))
    ).interleave(
        lambda name, skip, take: (
            tf.data.TFRecordDataset(name, compression_type=compression).skip(skip).take(take)
        ),
        cycle_length=1 if in_order else min(len(files), 8),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )
    return dataset.apply(tf.data.experimental.assert_cardinality(stop - start))


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
    """NgramMask on each batch: row i of batch b draws from (seed, b * batch_size + i)."""
    ids_name = "input_word_ids" if config.feature_names == "v2" else "input_ids"
    tokenizer = manifest["tokenizer"]

    def mask(index: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lengths = tf.reduce_sum(tf.cast(batch["input_mask"], tf.int32), axis=1)
        # Row i of batch b is element b * batch_size + i of this host's stream: its seed.
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
