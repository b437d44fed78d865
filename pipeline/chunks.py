"""Documents tokenized in chunks into flat arrays.

A chunk is about CHUNK_CHARACTERS of text (or CHUNK_DOCUMENTS documents): per-chunk costs
(tf.data elements, the cache, calls into SentencePiece and C++) are paid per chunk, not per
document, and a chunk's Python lists stay small (memory flat in corpus size).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator

import numpy as np
from pretrain_records.pipeline import tokenize
from pretrain_records.pipeline.instances import Documents

CHUNK_CHARACTERS = int(os.environ.get("MPR_CHUNK_CHARACTERS", 1 << 18))  # env: for tests
CHUNK_DOCUMENTS = 512


def chunked(
    documents: Iterable[list[str]], on_document: Callable[[], None] | None = None
) -> Iterator[list[list[str]]]:
    """Groups documents (lists of sentences) into chunks."""
    chunk: list[list[str]] = []
    size = 0
    for document in documents:
        chunk.append(document)
        size += sum(map(len, document))
        if on_document is not None:
            on_document()
        if size >= CHUNK_CHARACTERS or len(chunk) >= CHUNK_DOCUMENTS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def tokenize_chunk(documents: list[list[str]], tokenizer: tokenize.Tokenizer) -> Documents:
    """A chunk as the instance stream takes it (`instances.Documents`); empty sentences are
    dropped."""
    encoded = tokenizer.encode([s for document in documents for s in document])
    ids = np.fromiter(itertools.chain.from_iterable(encoded), np.int32)
    lengths = np.fromiter(map(len, encoded), np.int32, len(encoded))
    per_document = np.fromiter(map(len, documents), np.int64, len(documents))
    # Sentences kept per document: the non-empty ones.
    nonempty = np.r_[0, np.cumsum(lengths > 0)]
    ends = np.cumsum(per_document)
    kept = nonempty[ends] - nonempty[ends - per_document]
    return ids, tokenizer.word_start[ids], lengths[lengths > 0], kept.astype(np.int32)
