"""Python face of the EncodeExamples custom op (tf.train.Example serialization)."""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
from pretrain_records.ops import library


def encode_examples(
    ints: Mapping[str, tf.Tensor],
    floats: Mapping[str, tf.Tensor] | None = None,
    tfrecord_frame: bool = False,
) -> tf.Tensor:
    """Serializes each row of a batch as a tf.train.Example: byte for byte what
    ``SerializeToString(deterministic=True)`` gives, without a proto per row.

    Args:
      ints: feature name -> int32 or int64 ``[rows, width]`` (all the same dtype), written as
        Int64List.
      floats: feature name -> float32 ``[rows, width]``, written as FloatList.
      tfrecord_frame: frame each record as in a TFRecord file (length, masked CRC-32C, the
        Example, masked CRC-32C), so the records of a file are simply concatenated.

    Returns:
      string ``[rows]``.

    Raises:
      tf.errors.InvalidArgumentError: shapes disagree or a name is given twice.
    """
    if not ints:
        raise ValueError("encode_examples needs at least one int feature")
    floats = floats or {}
    return library.load().encode_examples(
        list(ints.values()),
        [tf.cast(v, tf.float32) for v in floats.values()],
        int_names=list(ints),
        float_names=list(floats),
        tfrecord_frame=tfrecord_frame,
    )
