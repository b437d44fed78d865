"""The sentences a tokenizer is trained on: a seeded sample spread over the whole corpus.

Every sentence of every piece gets a 64-bit key from (seed, the piece, its ordinal in the piece);
the sample is the sentences with the smallest keys, as many as fit MAX_SENTENCES and
MAX_CHARACTERS. Each sentence is as likely to be taken as any other, so every file and unit is
represented in proportion to its size (not the first files in path order), memory is bounded by
the budgets, and the sample depends only on the inputs, the config and the seed: never on the
reading order or the number of workers. Sentences longer than SentencePiece takes
(MAX_SENTENCE_BYTES) are left out and counted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
from collections.abc import Callable, Iterable

import numpy as np
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.ground.hashing import record_keys
from pretrain_records.pipeline.reading import documents
from pretrain_records.pipeline.reading.pieces import Piece, ReadStats

MAX_SENTENCES = 2_000_000  # what SentencePiece's trainers are usually given
MAX_CHARACTERS = 256 << 20  # a few hundred MB of Python strings at most
MAX_SENTENCE_BYTES = 1 << 16  # the max_sentence_length the trainer is given
_BATCH = 8192  # sentences keyed at once (numpy)


@dataclasses.dataclass(frozen=True)
class Sample:
    """A tokenizer's training sentences (in key order: a random order) and how they were
    drawn: `seen` sentences in the input, `too_long` of them left out for their length."""

    sentences: list[str]
    seen: int
    too_long: int

    def describe(self) -> dict[str, int]:
        return {"sentences": len(self.sentences), "of": self.seen, "too_long": self.too_long}


class _Smallest:
    """The items of smallest key that fit the budgets, whatever order they come in: every
    item with a key below `threshold`, where `threshold` is the smallest key whose item (with
    all those of smaller keys) would break a budget."""

    def __init__(self, max_items: int, max_characters: int) -> None:
        self.max_items, self.max_characters = max_items, max_characters
        self.heap: list[tuple[int, str]] = []  # (-key, sentence): the largest key on top
        self.characters = 0
        self.threshold = 1 << 64

    def offer(self, key: int, sentence: str) -> None:
        if key >= self.threshold:
            return
        heapq.heappush(self.heap, (-key, sentence))
        self.characters += len(sentence)
        while len(self.heap) > self.max_items or self.characters > self.max_characters:
            negative, dropped = heapq.heappop(self.heap)
            self.characters -= len(dropped)
            self.threshold = min(self.threshold, -negative)

    def in_key_order(self) -> list[str]:
        return [sentence for _, sentence in sorted(self.heap, reverse=True)]


def _piece_seed(seed: int, piece: Piece) -> int:
    text = f"tokenizer sample\0{seed}\0{piece.relpath}\0{piece.start}"
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()[:8])


def _too_long(sentence: str) -> bool:
    return len(sentence) * 4 > MAX_SENTENCE_BYTES and (
        len(sentence.encode("utf-8", "surrogatepass")) > MAX_SENTENCE_BYTES
    )


def _keyed(chosen: _Smallest, base: int, first: int, batch: list[str]) -> None:
    """Offers a batch of a piece's sentences (ordinals `first`...) to the sample."""
    keys = record_keys(base, np.arange(first, first + len(batch), dtype=np.uint64))
    for key, sentence in zip(keys.tolist(), batch, strict=True):
        if key < chosen.threshold:
            chosen.offer(key, sentence)


def sample_sentences(
    pieces: Iterable[Piece],
    config: BuildConfig,
    split: Callable[[str], list[str]],
    max_sentences: int | None = None,
    max_characters: int | None = None,
) -> Sample:
    """The training sample of the sentences of `pieces` (see the module docstring); the
    budgets default to MAX_SENTENCES and MAX_CHARACTERS."""
    chosen = _Smallest(max_sentences or MAX_SENTENCES, max_characters or MAX_CHARACTERS)
    seen = too_long = 0
    stats = ReadStats()
    for piece in pieces:
        base, ordinal = _piece_seed(config.seed, piece), 0
        batch: list[str] = []
        for document in documents.documents_of(piece, config, split, stats):
            for sentence in document:
                seen += 1
                if _too_long(sentence):
                    too_long += 1
                    continue
                batch.append(sentence)
                if len(batch) >= _BATCH:
                    _keyed(chosen, base, ordinal, batch)
                    ordinal, batch = ordinal + len(batch), []
        _keyed(chosen, base, ordinal, batch)
    return Sample(chosen.in_key_order(), seen, too_long)
