"""Python face of the NgramMask custom op (ALBERT n-gram masking)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.ops import library as op_library

_no_splits: tf.Tensor | None = None


def _empty_splits() -> tf.Tensor:
    global _no_splits
    if _no_splits is None:
        _no_splits = tf.zeros([0], tf.int64)
    return _no_splits


def _check_same_rows(splits: tf.Tensor, other: tf.Tensor) -> None:
    message = "NgramMask: token_boundary rows do not match token_ids rows"
    other = tf.cast(other, tf.int64)
    if tf.executing_eagerly():
        # Eagerly a NumPy comparison costs a fraction of an assert op's dispatch.
        if not np.array_equal(splits.numpy(), other.numpy()):
            raise tf.errors.InvalidArgumentError(None, None, message)
    else:
        tf.debugging.assert_equal(splits, other, message=message)


@functools.lru_cache(maxsize=64)
def _attrs(
    max_n: int,
    mask_ratio: float,
    max_predictions: int,
    favor_shorter_ngram: bool,
    whole_word: bool,
    special_ids: tuple[int, ...],
    mask_id: int,
    vocab_size: int,
    mask_token_rate: float,
    random_token_rate: float,
) -> dict[str, Any]:
    """The op's attributes, built once per setting (this is on the per-call path)."""
    return dict(
        max_n=max_n,
        mask_ratio=mask_ratio,
        max_predictions=max_predictions,
        favor_shorter_ngram=favor_shorter_ngram,
        whole_word=whole_word,
        special_ids=list(special_ids),
        mask_id=mask_id,
        vocab_size=vocab_size,
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )


def ngram_mask(
    token_ids: tf.Tensor | tf.RaggedTensor,
    token_boundary: tf.Tensor | tf.RaggedTensor,
    seed: tf.Tensor | Sequence[int],
    *,
    max_n: int = 3,
    mask_ratio: float = 0.15,
    max_predictions: int = 20,
    favor_shorter_ngram: bool = True,
    whole_word: bool = True,
    special_ids: Sequence[int] = (),
    mask_id: int,
    vocab_size: int,
    mask_token_rate: float = 0.8,
    random_token_rate: float = 0.1,
) -> tuple[Any, Any, Any]:
    """Chooses ALBERT-style n-gram masks (https://arxiv.org/abs/1909.11942).

    The budget of a row is ``min(max_predictions, max(1, round(n * mask_ratio)))``
    where n counts its non-padding tokens (id 0 is padding). N-gram lengths
    1..max_n are drawn with p(n) ~ 1/n (reversed unless ``favor_shorter_ngram``),
    counted in words when ``whole_word``; spans never overlap and never cover
    padding or ``special_ids``. Chosen tokens become ``mask_id`` (80%), a random
    non-special id (10%) or stay (10%). Randomness is stateless: row i of a
    batch draws from ``(seed[0], seed[1] + i)``, a single sequence from ``seed``.

    Args:
      token_ids: int32/int64 ``[L]``, or a ``RaggedTensor`` ``[B, (L)]``.
      token_boundary: same shape; 1 (or True) where a token starts a word.
      seed: int64 ``[2]``.
      max_n, mask_ratio, max_predictions, favor_shorter_ngram, whole_word,
      special_ids, mask_id, vocab_size, mask_token_rate, random_token_rate:
        the masking settings above.

    Returns:
      ``(masked_ids, masked_positions, masked_lm_ids)``: ``masked_ids`` has
      ``token_ids``' shape and dtype; the other two are ``[n]`` for one sequence
      or ``RaggedTensor [B, (n)]`` for a batch, positions ascending.

    Raises:
      tf.errors.InvalidArgumentError: invalid settings, shapes or seed.

    Example:
      >>> ids = tf.constant([2, 15, 16, 17, 3])
      >>> masked, positions, labels = ngram_mask(
      ...     ids, tf.ones_like(ids), [1, 2], special_ids=[2, 3], mask_id=4, vocab_size=100)
    """
    library = op_library.load()
    attrs = _attrs(
        max_n,
        float(mask_ratio),
        max_predictions,
        bool(favor_shorter_ngram),
        bool(whole_word),
        tuple(int(i) for i in special_ids),
        mask_id,
        vocab_size,
        float(mask_token_rate),
        float(random_token_rate),
    )
    if isinstance(token_ids, tf.RaggedTensor):
        if not isinstance(token_boundary, tf.RaggedTensor) or token_ids.ragged_rank != 1:
            raise ValueError("a batch needs token_ids and token_boundary as RaggedTensor [B, (L)]")
        splits = token_ids.row_splits
        if splits.dtype != tf.int64:
            splits = tf.cast(splits, tf.int64)
        if token_boundary.row_splits is not token_ids.row_splits:
            _check_same_rows(splits, token_boundary.row_splits)
        masked, positions, labels, out_splits = library.ngram_mask(
            token_ids.values, token_boundary.values, splits, seed, **attrs
        )
        return (
            token_ids.with_values(masked),
            tf.RaggedTensor.from_row_splits(positions, out_splits, validate=False),
            tf.RaggedTensor.from_row_splits(labels, out_splits, validate=False),
        )
    masked, positions, labels, _ = library.ngram_mask(
        token_ids, token_boundary, _empty_splits(), seed, **attrs
    )
    return masked, positions, labels
