"""A piece's documents read, split into sentences and tokenized in chunks (numpy arrays).

A chunk is about CHUNK_CHARACTERS of text (or CHUNK_DOCUMENTS documents): per-chunk costs
(tf.data elements, the cache, calls into SentencePiece and the ops) are paid per chunk, not per
document, and a chunk's Python lists stay small (memory flat in corpus size). A document longer
than MAX_CHUNK_CHARACTERS is a chunk of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
from pretrain_records.pipeline.documents import ReadStats
from pretrain_records.pipeline.tokenize import Tokenizer

CHUNK_CHARACTERS = 1 << 18
CHUNK_DOCUMENTS = 512

# One chunk as the MakeInstances op takes it: token ids and word-start flags (every sentence of
# every document, concatenated), the sentences' lengths and the documents' sentence counts;
# then the input characters it came from and the reading statistics it closes (see `chunked`).
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.int64, np.ndarray]


def chunked(documents: Iterable[list[str]]) -> Iterator[tuple[list[list[str]], int]]:
    """Groups documents (lists of sentences) into chunks; yields (chunk, its characters)."""
    chunk: list[list[str]] = []
    size = 0
    for document in documents:
        chunk.append(document)
        size += sum(map(len, document))
        if size >= CHUNK_CHARACTERS or len(chunk) >= CHUNK_DOCUMENTS:
            yield chunk, size
            chunk, size = [], 0
    if chunk:
        yield chunk, size


def tokenize_chunk(documents: list[list[str]], tokenizer: Tokenizer) -> tuple[np.ndarray, ...]:
    """(ids, word starts, sentence lengths, sentences per document); empty sentences dropped."""
    encoded = tokenizer.encode([s for document in documents for s in document])
    ids = np.fromiter(itertools.chain.from_iterable(encoded), np.int32)
    lengths = np.fromiter(map(len, encoded), np.int32, len(encoded))
    per_document = np.fromiter(map(len, documents), np.int64, len(documents))
    nonempty = np.r_[0, np.cumsum(lengths > 0)]
    ends = np.cumsum(per_document)
    kept = nonempty[ends] - nonempty[ends - per_document]
    return ids, tokenizer.word_start[ids], lengths[lengths > 0], kept.astype(np.int32)


def piece_chunks(
    documents: Iterable[list[str]], tokenizer: Tokenizer, stats: ReadStats, piece_bytes: int
) -> Iterator[Chunk]:
    """Tokenized chunks of a piece's documents, then an empty chunk closing the piece: it
    carries the reading statistics (filled in by reading `documents`) and whatever input bytes
    the chunks did not account for, so that every piece reports its bytes and statistics
    exactly once."""
    reported = 0
    for chunk, characters in chunked(documents):
        step = min(characters, max(piece_bytes - reported, 0))
        reported += step
        yield (*tokenize_chunk(chunk, tokenizer), np.int64(step), np.zeros(5, np.int64))
    empty = np.zeros(0, np.int32)
    yield (
        empty,
        np.zeros(0, np.int8),
        empty,
        empty,
        np.int64(max(piece_bytes - reported, 0)),
        np.array(stats.as_list(), np.int64),
    )
