"""The EncodeExamples op against tf.train.Example's deterministic serialization and
TensorFlow's TFRecord writer; the shard writer's files read back."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.ops import encode_examples
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.records.features import serialize, serialize_with_protobuf


@pytest.mark.parametrize(
    "settings",
    [dict(), dict(feature_names="v2"), dict(masking="dynamic"), dict(max_seq_length=512)],
)
def test_fast_encoder_matches_protobuf_byte_for_byte(settings):
    config = dataclasses.replace(BuildConfig(max_seq_length=128), **settings)
    rng = np.random.default_rng(0)
    rows, length, p = 64, config.max_seq_length, config.max_predictions_per_seq
    lengths = rng.integers(5, length + 1, size=rows)
    real = np.arange(length)[None, :] < lengths[:, None]
    # Ids over every varint width: 1 byte (< 128) up to 5 (>= 2^28).
    ids = rng.choice([0, 1, 127, 128, 16383, 16384, 2**21, 2**28 + 5, 31999], size=(rows, length))
    weights = np.arange(p)[None, :] < rng.integers(0, p + 1, size=rows)[:, None]
    batch = {
        "input_ids": np.where(real, ids, 0).astype(np.int32),
        "segment_ids": (real & (np.arange(length) > 10)).astype(np.int32),
        "token_boundary": real.astype(np.int32),
        "length": lengths.astype(np.int32),
        "label": rng.integers(0, 2, size=rows).astype(np.int32),
        "masked_lm_positions": np.where(weights, rng.integers(1, 100, size=(rows, p)), 0),
        "masked_lm_ids": np.where(weights, rng.integers(5, 32000, size=(rows, p)), 0),
        "masked_lm_weights": weights.astype(np.float32),
    }
    fast = list(serialize(batch, config))
    reference = list(serialize_with_protobuf(batch, config))
    assert len(fast) == rows
    assert fast == reference


def test_encoder_handles_negative_and_wide_ids_as_int64_list_does():
    values = np.array([[-1, 0, 2**31 - 1], [-(2**31), 5, 127]], np.int32)
    for dtype in (np.int32, np.int64):
        records = encode_examples({"x": tf.constant(values.astype(dtype))}).numpy().tolist()
        for row, record in zip(values, records, strict=True):
            example = tf.train.Example()
            example.features.feature["x"].int64_list.value.extend(row.tolist())
            assert record == example.SerializeToString(deterministic=True)


@pytest.mark.parametrize(
    "ints, message",
    [
        ({"a": tf.zeros([2, 3], tf.int32), "b": tf.zeros([3, 3], tf.int32)}, "with the rows"),
        ({"a": tf.zeros([2], tf.int32)}, "must have shape [rows, width]"),
    ],
)
def test_encoder_rejects_bad_shapes(ints, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        encode_examples(ints)


def test_encoder_rejects_a_name_given_twice():
    with pytest.raises(tf.errors.InvalidArgumentError, match="feature name 'a' given twice"):
        encode_examples({"a": tf.zeros([1, 1], tf.int32)}, {"a": tf.zeros([1, 1])})


def test_framed_records_are_what_tfrecordwriter_writes(tmp_path):
    ids = tf.constant(np.arange(3 * 40).reshape(3, 40) * 997, tf.int32)
    plain = encode_examples({"ids": ids}).numpy().tolist()
    framed = encode_examples({"ids": ids}, tfrecord_frame=True).numpy().tolist()
    with tf.io.TFRecordWriter(str(tmp_path / "reference")) as writer:
        for record in plain:
            writer.write(record)
    assert b"".join(framed) == (tmp_path / "reference").read_bytes()


def encode_frames(records: list[bytes]) -> list[bytes]:
    """TFRecord frames of arbitrary byte strings (8-byte length, its masked CRC-32C, the
    bytes, their masked CRC-32C), with a bitwise CRC-32C independent of the C++ one."""
    return [_frame(record) for record in records]


def _frame(record: bytes) -> bytes:
    length = len(record).to_bytes(8, "little")
    return length + _masked_crc(length) + record + _masked_crc(record)


def _masked_crc(data: bytes) -> bytes:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF).to_bytes(4, "little")
