"""Python face of the MakeInstances custom op (BERT/ALBERT sentence-pair instances)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.ops import library as op_library


def _as_int8(flags: Any) -> tf.Tensor:
    """Word-start flags as int8 (bool and other integer types are accepted)."""
    if isinstance(flags, tf.Tensor | np.ndarray):
        if flags.dtype == np.int8:
            return flags
        return tf.cast(tf.cast(flags, tf.bool), tf.int8)
    return tf.convert_to_tensor(flags, tf.int8)


def make_instances(
    token_ids: Any,
    word_starts: Any,
    sentence_lengths: Any,
    document_sentences: Any,
    seed: Any,
    *,
    documents: Any = None,
    max_seq_length: int,
    short_seq_prob: float,
    sentence_task: str,
    cls_id: int,
    sep_id: int,
) -> dict[str, tf.Tensor]:
    """Makes the sentence-pair instances of a chunk of tokenized documents.

    Follows BERT's ``create_instances_from_document``
    (https://arxiv.org/abs/1810.04805): a target length (``short_seq_prob`` of
    them shorter), a random A/B split point, truncation one token at a time from
    the longer side at a random end. ``nsp``: B is the text after A (label 0) or
    text from another document of the chunk (label 1); ``sop`` (ALBERT,
    https://arxiv.org/abs/1909.11942): A and B swapped with p = 0.5 (label 1), a
    single-sentence chunk split inside the sentence; ``none``: one segment, label
    0. Documents without tokens are skipped. Rows are in document order (shuffle
    them later). Stateless: document d draws from a stream keyed by
    ``(seed[0], seed[1], d)``, so the same chunk and seed give the same rows
    eagerly, in ``tf.function`` and in ``tf.data`` maps alike.

    Args:
      token_ids: int32 ``[T]``, the tokens of every sentence of every document.
      word_starts: int8 (or bool / integer) ``[T]``, 1 where a token starts a word.
      sentence_lengths: int32 ``[S]``, tokens per sentence (0 allowed).
      document_sentences: int32 ``[D]``, sentences per document (0 allowed).
      seed: int64 ``[2]``.
      documents: int64 ``[2]``, the range of documents to make instances of (default:
        all); every document of the chunk is NSP's pool of random segments, so the
        documents around the range can serve as that pool.
      max_seq_length: L, ``[CLS]`` and ``[SEP]`` included.
      short_seq_prob: probability of a shorter target length, uniform in
        ``[2, L - 3]`` (``L - 2`` for ``none``), as BERT.
      sentence_task: ``"nsp"``, ``"sop"`` or ``"none"``.
      cls_id, sep_id: the ``[CLS]`` and ``[SEP]`` ids.

    Returns:
      A dict of int32 tensors:
      ``input_ids``, ``segment_ids``, ``token_boundary`` ``[N, L]``
      (``[CLS] A [SEP] B [SEP]`` or ``[CLS] A [SEP]``, then 0s; segment 1 for
      ``B [SEP]``; the first token of each segment starts a word), ``length``
      and ``label`` ``[N]``, ``document`` ``[N]`` (the index in the chunk of the document
      each row's A comes from), and ``own_tokens`` ``[N]``: the tokens each row
      carries from its own document (A, and B unless it is ``nsp``'s random
      segment from another document; ``[CLS]``/``[SEP]`` not counted). Their sum
      is at most the tokens of the chunk's documents (of ``documents``); the
      rest was left out by truncation (and ``sop``'s one-token documents).

    Raises:
      tf.errors.InvalidArgumentError: invalid settings or arrays (the message
        says which), or ``nsp`` on a chunk with one document with tokens
        (``sentence_task nsp needs at least two documents ...``).

    Example:
      >>> rows = make_instances(
      ...     [10, 11, 12, 13, 14], [1, 0, 1, 1, 1], [3, 2], [2], [1, 2],
      ...     max_seq_length=8, short_seq_prob=0.0, sentence_task="sop", cls_id=2, sep_id=3)
      >>> rows["input_ids"].shape, int(rows["length"][0]), int(rows["own_tokens"][0])
      (TensorShape([1, 8]), 8, 5)
    """
    outputs = op_library.load().make_instances(
        token_ids,
        _as_int8(word_starts),
        sentence_lengths,
        document_sentences,
        seed,
        tf.zeros([0], tf.int64) if documents is None else tf.cast(documents, tf.int64),
        max_seq_length=max_seq_length,
        short_seq_prob=float(short_seq_prob),
        sentence_task=sentence_task,
        cls_id=cls_id,
        sep_id=sep_id,
    )
    input_ids, segment_ids, token_boundary, lengths, labels, own, documents_of_rows = outputs
    return {
        "input_ids": input_ids,
        "segment_ids": segment_ids,
        "token_boundary": token_boundary,
        "length": lengths,
        "label": labels,
        "own_tokens": own,
        "document": documents_of_rows,
    }
