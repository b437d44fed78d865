"""Record features: names, the parsing spec, padding, static masking in tf.data, serialization."""

from __future__ import annotations

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


def pad_batch(instances: list[Any], length: int) -> dict[str, np.ndarray]:
    """Instances padded to `length` (pad id 0) and stacked."""
    rows = len(instances)
    ids = np.zeros((rows, length), np.int32)
    segments = np.zeros((rows, length), np.int32)
    boundary = np.zeros((rows, length), np.int32)
    lengths = np.zeros(rows, np.int32)
    labels = np.zeros(rows, np.int32)
    for r, instance in enumerate(instances):
        n = len(instance.input_ids)
        ids[r, :n] = instance.input_ids
        segments[r, :n] = instance.segment_ids
        boundary[r, :n] = instance.token_boundary
        lengths[r] = n
        labels[r] = instance.label
    return {
        "input_ids": ids,
        "segment_ids": segments,
        "token_boundary": boundary,
        "length": lengths,
        "label": labels,
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

    def mask(index: tf.Tensor, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        seed = tf.stack([tf.constant(seed0, tf.int64), index * MASK_BATCH])
        masked = mask_padded(
            batch["input_ids"],
            batch["token_boundary"],
            batch["length"],
            seed,
            config,
            special_ids,
            mask_id,
            vocab_size,
        )
        return {**batch, **masked}

    return batches.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _packed_varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varint bytes of a [rows, n] array of non-negative ints, all rows in one buffer, and
    each row's end offset in it."""
    v = values.astype(np.uint64)
    sizes = np.ones(v.shape, np.int64)
    width = 1  # bytes of the longest varint: ids of a 32k vocabulary need 3, flags 1
    while width < 10 and (v >= np.uint64(1 << (7 * width))).any():
        sizes += v >= np.uint64(1 << (7 * width))
        width += 1
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = ((v[..., None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    position = np.arange(width)
    groups |= np.where(position < sizes[..., None] - 1, 0x80, 0).astype(np.uint8)
    keep = position < sizes[..., None]
    return groups[keep].tobytes(), np.cumsum(sizes.sum(axis=1))


def _length_prefixed(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


class _FeatureColumn:
    """The serialized `Feature` of one feature for every row of a batch."""

    def __init__(self, values: np.ndarray, is_float: bool) -> None:
        self.is_float = is_float
        if is_float:
            self.buffer = values.astype("<f4").tobytes()
            self.ends = np.arange(1, len(values) + 1) * values.shape[1] * 4
        else:
            if values.size and values.min() < 0:
                raise ValueError("negative ids cannot be serialized as packed varints")
            self.buffer, self.ends = _packed_varints(values)

    def row(self, r: int) -> bytes:
        start = int(self.ends[r - 1]) if r else 0
        packed = self.buffer[start : int(self.ends[r])]
        # Feature { Int64List int64_list = 3 | FloatList float_list = 2 { packed value = 1 } }
        return _length_prefixed(0x12 if self.is_float else 0x1A, _length_prefixed(0x0A, packed))


def serialize(batch: dict[str, np.ndarray], config: BuildConfig) -> Iterator[bytes]:
    """tf.train.Example bytes for each row of a numpy batch.

    Encoded directly (the proto wire format, map entries sorted by key), byte for byte what
    `tf.train.Example.SerializeToString(deterministic=True)` gives, at a fraction of the cost.
    """
    names = feature_names(config.feature_names)
    rows = len(batch["length"])
    length = config.max_seq_length
    real = (np.arange(length)[None, :] < batch["length"][:, None]).astype(np.int64)
    columns = {
        names["input_ids"]: (batch["input_ids"], False),
        names["input_mask"]: (real, False),
        names["segment_ids"]: (batch["segment_ids"], False),
        names["token_boundary"]: (batch["token_boundary"], False),
        names["next_sentence_labels"]: (batch["label"].reshape(rows, 1), False),
    }
    if config.masking == "static":
        columns[names["masked_lm_positions"]] = (batch["masked_lm_positions"], False)
        columns[names["masked_lm_ids"]] = (batch["masked_lm_ids"], False)
        columns[names["masked_lm_weights"]] = (batch["masked_lm_weights"], True)
    encoded = [
        (_length_prefixed(0x0A, name.encode()), _FeatureColumn(*columns[name]))
        for name in sorted(columns)
    ]
    for r in range(rows):
        features = b"".join(
            _length_prefixed(0x0A, key + _length_prefixed(0x12, column.row(r)))
            for key, column in encoded
        )
        yield _length_prefixed(0x0A, features)


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
