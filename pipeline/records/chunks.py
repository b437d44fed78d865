"""A unit's documents read, split into sentences and tokenized in chunks (numpy arrays).

A chunk is about CHUNK_CHARACTERS of text (or CHUNK_DOCUMENTS documents), whatever files its
documents come from: per-chunk costs (tf.data elements, the cache, calls into SentencePiece and
the ops) are paid per chunk, not per document nor per file, so a unit of many small files costs
what its bytes cost; and a chunk's Python lists stay small (memory flat in corpus size). Each
chunk says which piece of the unit each of its documents comes from (records are traced back
to their files). A document longer than CHUNK_CHARACTERS is a chunk of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
from pretrain_records.pipeline.reading.pieces import ReadStats
from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

CHUNK_CHARACTERS = 1 << 18
CHUNK_DOCUMENTS = 512

# One chunk as the MakeInstances op takes it: token ids and word-start flags (every sentence of
# every document, concatenated), the sentences' lengths and the documents' sentence counts;
# then the input bytes it accounts for, the reading statistics read since the last chunk, and
# the piece of each document (see `unit_chunks`).
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.int64, np.ndarray, np.ndarray]
Document = tuple[list[str], int]  # sentences, and the piece of the unit they come from


def chunked(documents: Iterable[Document]) -> Iterator[tuple[list[Document], int]]:
    """Groups documents into chunks; yields (chunk, its characters)."""
    chunk: list[Document] = []
    size = 0
    for document in documents:
        chunk.append(document)
        size += sum(map(len, document[0]))
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


class _StatsDelta:
    """What the reading statistics gained since the last call."""

    def __init__(self, stats: ReadStats) -> None:
        self.stats, self.reported = stats, np.zeros(len(stats.as_list()), np.int64)

    def take(self) -> np.ndarray:
        now = np.array(self.stats.as_list(), np.int64)
        delta, self.reported = now - self.reported, now
        return delta


def unit_chunks(
    documents: Iterable[Document], tokenizer: Tokenizer, stats: ReadStats, unit_bytes: int
) -> Iterator[tuple[Chunk, bool]]:
    """(chunk, whether it closes the unit): tokenized chunks of a unit's documents, then an
    empty chunk closing the unit. Each carries the statistics read since the chunk before
    (filled in by reading `documents`) and its share of the unit's input bytes, so that the
    unit reports both exactly once."""
    reported = 0
    delta = _StatsDelta(stats)
    for chunk, characters in chunked(documents):
        step = min(characters, max(unit_bytes - reported, 0))
        reported += step
        texts = [sentences for sentences, _ in chunk]
        pieces = np.fromiter((piece for _, piece in chunk), np.int32, len(chunk))
        yield (*tokenize_chunk(texts, tokenizer), np.int64(step), delta.take(), pieces), False
    empty = np.zeros(0, np.int32)
    closing_bytes = np.int64(max(unit_bytes - reported, 0))
    yield (empty, np.zeros(0, np.int8), empty, empty, closing_bytes, delta.take(), empty), True
