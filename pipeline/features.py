"""Record features: names, the parsing spec, padding, static masking in tf.data, serialization."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.pipeline.config import BuildConfig

MASK_BATCH = 256  # instances per call of the masking op


def feature_names(version: str) -> dict[str, str]:
    """Our canonical names -> the names written (Model Garden v1 or v2)."""
    v2 = version == "v2"
    return {
        "input_ids": "input_word_ids" if v2 else "input_ids",
        "input_mask": "input_mask",
        "segment_ids": "input_type_ids" if v2 else "segment_ids",
        "token_boundary": "token_boundary",
        "masked_lm_positions": "masked_lm_positions",
        "masked_lm_ids": "masked_lm_ids",
        "masked_lm_weights": "masked_lm_weights",
        "next_sentence_labels": "next_sentence_labels",
    }


def feature_spec(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """The written features: name -> {dtype, shape}; also stored in the manifest."""
    names = feature_names(config.feature_names)
    length, predictions = config.max_seq_length, config.max_predictions_per_seq
    spec = {
        names["input_ids"]: ("int64", [length]),
        names["input_mask"]: ("int64", [length]),
        names["segment_ids"]: ("int64", [length]),
        names["token_boundary"]: ("int64", [length]),
        names["next_sentence_labels"]: ("int64", [1]),
    }
    if config.masking == "static":
        spec[names["masked_lm_positions"]] = ("int64", [predictions])
        spec[names["masked_lm_ids"]] = ("int64", [predictions])
        spec[names["masked_lm_weights"]] = ("float32", [predictions])
    return {name: {"dtype": dtype, "shape": shape} for name, (dtype, shape) in spec.items()}


def batch_signature(length: int) -> dict[str, tf.TensorSpec]:
    return {
        "input_ids": tf.TensorSpec([None, length], tf.int32),
        "segment_ids": tf.TensorSpec([None, length], tf.int32),
        "token_boundary": tf.TensorSpec([None, length], tf.int32),
        "length": tf.TensorSpec([None], tf.int32),
        "label": tf.TensorSpec([None], tf.int32),
    }


def parse_spec(features: dict[str, dict[str, Any]]) -> dict[str, tf.io.FixedLenFeature]:
    """tf.io parsing spec of a manifest's `features` (see `feature_spec`)."""
    return {
        name: tf.io.FixedLenFeature(
            meta["shape"], tf.float32 if meta["dtype"] == "float32" else tf.int64
        )
        for name, meta in features.items()
    }


def mask_padded(
    ids: tf.Tensor,
    boundary: tf.Tensor,
    lengths: tf.Tensor,
    seed: tf.Tensor,
    config: BuildConfig,
    special_ids: Sequence[int],
    mask_id: int,
    vocab_size: int,
) -> dict[str, tf.Tensor]:
    """NgramMask on padded rows [B, L] with real lengths [B]; row i draws from
    (seed[0], seed[1] + i). Returns the masked ids [B, L] and the masked_lm_* features [B, P]
    (positions and ids in the ids' dtype, weights float32)."""
    from pretrain_records.ops import ngram_mask

    predictions = config.max_predictions_per_seq
    ragged_ids = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
    ragged_boundary = ragged_ids.with_values(
        tf.RaggedTensor.from_tensor(boundary, lengths=lengths).values
    )
    masked, positions, labels = ngram_mask(
        ragged_ids,
        ragged_boundary,
        seed,
        max_n=config.max_n,
        mask_ratio=config.mask_ratio,
        max_predictions=predictions,
        favor_shorter_ngram=config.favor_shorter_ngram,
        whole_word=config.whole_word,
        special_ids=special_ids,
        mask_id=mask_id,
        vocab_size=vocab_size,
    )
    return {
        "input_ids": masked.to_tensor(default_value=0, shape=[None, config.max_seq_length]),
        "masked_lm_positions": tf.cast(
            positions.to_tensor(default_value=0, shape=[None, predictions]), ids.dtype
        ),
        "masked_lm_ids": labels.to_tensor(default_value=0, shape=[None, predictions]),
        "masked_lm_weights": tf.sequence_mask(
            positions.row_lengths(), predictions, dtype=tf.float32
        ),
    }


def record_batches(
    batches: tf.data.Dataset,
    config: BuildConfig,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    seed0: int,
) -> tf.data.Dataset:
    """Maps (index, batch of padded instances) to serialized records framed as TFRecords:
    NgramMask (static masking) then EncodeExamples.

    Row i of batch b draws from seed (seed0, b * MASK_BATCH + i): the masks of an instance
    depend on its position in the stream only, never on parallelism.
    """
    to_records = _records_function(config, special_ids, mask_id, vocab_size)
    seed = tf.constant(seed0, tf.int64)
    return batches.map(
        tf.autograph.experimental.do_not_convert(
            lambda index, batch: to_records(index, batch, seed)
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


@functools.lru_cache(maxsize=8)
def _records_function(
    config: BuildConfig, special_ids: tuple[int, ...], mask_id: int, vocab_size: int
) -> Any:
    """One traced function per setting, shared by the pipelines of every unit of a build."""
    signature = [
        tf.TensorSpec([], tf.int64),
        batch_signature(config.max_seq_length),
        tf.TensorSpec([], tf.int64),
    ]

    @tf.function(input_signature=signature, autograph=False)
    def to_records(index: tf.Tensor, batch: dict[str, tf.Tensor], seed0: tf.Tensor) -> tf.Tensor:
        if config.masking == "static":
            seed = tf.stack([seed0, index * MASK_BATCH])
            batch = {
                **batch,
                **mask_padded(
                    batch["input_ids"],
                    batch["token_boundary"],
                    batch["length"],
                    seed,
                    config,
                    special_ids,
                    mask_id,
                    vocab_size,
                ),
            }
        return encode_batch(batch, config, tfrecord_frame=True)

    return to_records


def encode_batch(
    batch: dict[str, tf.Tensor], config: BuildConfig, tfrecord_frame: bool = False
) -> tf.Tensor:
    """Serialized tf.train.Example records [B] of a padded batch (the EncodeExamples op),
    optionally framed as TFRecords."""
    from pretrain_records.ops import encode_examples

    names = feature_names(config.feature_names)
    ids = batch["input_ids"]
    ints = {
        names["input_ids"]: ids,
        names["input_mask"]: tf.sequence_mask(batch["length"], config.max_seq_length, ids.dtype),
        names["segment_ids"]: tf.cast(batch["segment_ids"], ids.dtype),
        names["token_boundary"]: tf.cast(batch["token_boundary"], ids.dtype),
        names["next_sentence_labels"]: tf.cast(batch["label"], ids.dtype)[:, None],
    }
    floats = {}
    if config.masking == "static":
        ints[names["masked_lm_positions"]] = tf.cast(batch["masked_lm_positions"], ids.dtype)
        ints[names["masked_lm_ids"]] = tf.cast(batch["masked_lm_ids"], ids.dtype)
        floats[names["masked_lm_weights"]] = batch["masked_lm_weights"]
    return encode_examples(ints, floats, tfrecord_frame)


def serialize(batch: dict[str, np.ndarray], config: BuildConfig) -> list[bytes]:
    """tf.train.Example bytes for each row of a numpy batch (see `encode_batch`)."""
    tensors = {k: tf.constant(v) for k, v in batch.items()}
    return encode_batch(tensors, config).numpy().tolist()


def serialize_with_protobuf(batch: dict[str, np.ndarray], config: BuildConfig) -> Iterator[bytes]:
    """The same records through tf.train.Example (the reference the fast encoder must match)."""
    names = feature_names(config.feature_names)
    rows = len(batch["length"])
    positions = np.arange(config.max_seq_length)

    def ints(values: np.ndarray) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))

    for r in range(rows):
        features = {
            names["input_ids"]: ints(batch["input_ids"][r]),
            names["input_mask"]: ints((positions < batch["length"][r]).astype(np.int64)),
            names["segment_ids"]: ints(batch["segment_ids"][r]),
            names["token_boundary"]: ints(batch["token_boundary"][r]),
            names["next_sentence_labels"]: ints(batch["label"][r : r + 1]),
        }
        if config.masking == "static":
            features[names["masked_lm_positions"]] = ints(batch["masked_lm_positions"][r])
            features[names["masked_lm_ids"]] = ints(batch["masked_lm_ids"][r])
            features[names["masked_lm_weights"]] = tf.train.Feature(
                float_list=tf.train.FloatList(value=batch["masked_lm_weights"][r].tolist())
            )
        example = tf.train.Example(features=tf.train.Features(feature=features))
        yield example.SerializeToString(deterministic=True)
