"""Record features: names, the parsing spec, padding, static masking in tf.data, serialization."""

from __future__ import annotations

from collections.abc import Iterator
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


def padded_signature(length: int) -> dict[str, tf.TensorSpec]:
    return {
        "input_ids": tf.TensorSpec([length], tf.int32),
        "segment_ids": tf.TensorSpec([length], tf.int32),
        "token_boundary": tf.TensorSpec([length], tf.int32),
        "length": tf.TensorSpec([], tf.int32),
        "label": tf.TensorSpec([], tf.int32),
    }


def pad_instance(instance: Any, length: int) -> dict[str, np.ndarray]:
    """Pads an Instance to `length` (pad id 0)."""
    n = len(instance.input_ids)
    ids = np.zeros(length, np.int32)
    segments = np.zeros(length, np.int32)
    boundary = np.zeros(length, np.int32)
    ids[:n] = instance.input_ids
    segments[:n] = instance.segment_ids
    boundary[:n] = instance.token_boundary
    return {
        "input_ids": ids,
        "segment_ids": segments,
        "token_boundary": boundary,
        "length": np.int32(n),
        "label": np.int32(instance.label),
    }


def mask_batches(
    batches: tf.data.Dataset,
    config: BuildConfig,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    seed0: int,
) -> tf.data.Dataset:
    """Maps (index, batch of padded instances) through the NgramMask op.

    Row i of batch b draws from seed (seed0, b * MASK_BATCH + i): the masks of an instance
    depend on its position in the stream only, never on parallelism.
    """
    from pretrain_records.ops import ngram_mask

    predictions = config.max_predictions_per_seq

    def mask(index: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        lengths = batch["length"]
        ids = tf.RaggedTensor.from_tensor(batch["input_ids"], lengths=lengths)
        boundary = ids.with_values(
            tf.RaggedTensor.from_tensor(batch["token_boundary"], lengths=lengths).values
        )
        seed = tf.stack([tf.constant(seed0, tf.int64), index * MASK_BATCH])
        masked, positions, labels = ngram_mask(
            ids,
            boundary,
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
        length = config.max_seq_length
        out = dict(batch)
        out["input_ids"] = masked.to_tensor(default_value=0, shape=[None, length])
        out["masked_lm_positions"] = tf.cast(
            positions.to_tensor(default_value=0, shape=[None, predictions]), tf.int32
        )
        out["masked_lm_ids"] = labels.to_tensor(default_value=0, shape=[None, predictions])
        out["masked_lm_weights"] = tf.sequence_mask(
            positions.row_lengths(), predictions, dtype=tf.float32
        )
        return out

    return batches.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _int64_feature(values: np.ndarray) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values.tolist()))


def serialize(batch: dict[str, np.ndarray], config: BuildConfig) -> Iterator[bytes]:
    """tf.train.Example bytes (deterministic serialization) for each row of a numpy batch."""
    names = feature_names(config.feature_names)
    static = config.masking == "static"
    rows = len(batch["length"])
    length = config.max_seq_length
    positions = np.arange(length)
    for r in range(rows):
        real = (positions < batch["length"][r]).astype(np.int64)
        features = {
            names["input_ids"]: _int64_feature(batch["input_ids"][r]),
            names["input_mask"]: _int64_feature(real),
            names["segment_ids"]: _int64_feature(batch["segment_ids"][r]),
            names["token_boundary"]: _int64_feature(batch["token_boundary"][r]),
            names["next_sentence_labels"]: _int64_feature(batch["label"][r : r + 1]),
        }
        if static:
            features[names["masked_lm_positions"]] = _int64_feature(batch["masked_lm_positions"][r])
            features[names["masked_lm_ids"]] = _int64_feature(batch["masked_lm_ids"][r])
            features[names["masked_lm_weights"]] = tf.train.Feature(
                float_list=tf.train.FloatList(value=batch["masked_lm_weights"][r].tolist())
            )
        example = tf.train.Example(features=tf.train.Features(feature=features))
        yield example.SerializeToString(deterministic=True)
