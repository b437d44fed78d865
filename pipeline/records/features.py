"""Record features in TensorFlow: the parsing spec, static masking of padded rows, serialization."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.records.schema import feature_names


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
