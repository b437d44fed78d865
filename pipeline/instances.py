"""BERT/ALBERT sentence-pair instances from tokenized documents (NSP, SOP or single segment).

Follows BERT's `create_instances_from_document` (target length, `short_seq_prob`, random split
point, truncation from a random end) with these differences: every draw comes from a generator
seeded per (seed, unit, pass, document), so output is reproducible; the random segment for NSP
comes from a bounded pool of *other* documents; SOP splits a single-sentence chunk inside the
sentence instead of borrowing text from another document.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Iterator

import numpy as np

# A tokenized sentence: token ids and word-start flags of the same length.
Sentence = tuple[np.ndarray, np.ndarray]
Document = list[Sentence]

POOL_DOCUMENTS = 256  # documents kept before and after the current one for NSP
POOL_TOKENS = 4_000_000  # and at most this many tokens in the pool, whatever the documents


class InstanceError(ValueError):
    """The corpus cannot make the requested instances (e.g. NSP from a single document)."""


@dataclasses.dataclass(frozen=True)
class InstanceSettings:
    max_seq_length: int
    short_seq_prob: float
    sentence_task: str  # nsp | sop | none
    cls_id: int
    sep_id: int


@dataclasses.dataclass
class Instance:
    """Unpadded: input ids with [CLS]/[SEP], segment ids, word-start flags, sentence label."""

    input_ids: np.ndarray
    segment_ids: np.ndarray
    token_boundary: np.ndarray
    label: int


def document_rng(seed: int, unit: int, dupe_pass: int, document: int) -> np.random.Generator:
    """The generator of one document in one pass: independent of any other draw."""
    return np.random.Generator(
        np.random.Philox(key=[seed & (2**64 - 1), 0], counter=[unit, dupe_pass, document, 0])
    )


def _concat(sentences: list[Sentence]) -> tuple[np.ndarray, np.ndarray]:
    if not sentences:
        return np.zeros(0, np.int32), np.zeros(0, np.int8)
    return (
        np.concatenate([s[0] for s in sentences]),
        np.concatenate([s[1] for s in sentences]),
    )


def _truncate_pair(
    a: list[np.ndarray], b: list[np.ndarray], max_tokens: int, rng: np.random.Generator
) -> None:
    """BERT's truncate_seq_pair on [ids, flags] pairs: one token at a time from the longer side
    (B on a tie), from its front or back by a coin. Counted on integers, sliced once."""
    la, lb = len(a[0]), len(b[0])
    excess = la + lb - max_tokens
    if excess <= 0:
        return
    fronts = (rng.random(excess) < 0.5).tolist()
    cut = {"a": [0, 0], "b": [0, 0]}  # tokens dropped at the [front, back]
    for front in fronts:
        side = "a" if la > lb else "b"
        cut[side][0 if front else 1] += 1
        if side == "a":
            la -= 1
        else:
            lb -= 1
    for pair, (head, tail) in ((a, cut["a"]), (b, cut["b"])):
        end = len(pair[0]) - tail
        pair[0], pair[1] = pair[0][head:end], pair[1][head:end]


def _assemble(
    a: list[np.ndarray], b: list[np.ndarray] | None, label: int, settings: InstanceSettings
) -> Instance:
    cls = np.array([settings.cls_id], np.int32)
    sep = np.array([settings.sep_id], np.int32)
    one = np.ones(1, np.int8)
    parts_ids = [cls, a[0], sep]
    parts_flags = [one, a[1], one]
    segments = [np.zeros(len(a[0]) + 2, np.int8)]
    if b is not None:
        parts_ids += [b[0], sep]
        parts_flags += [b[1], one]
        segments.append(np.ones(len(b[0]) + 1, np.int8))
    flags = np.concatenate(parts_flags)
    # Truncation from the front can leave a word's tail first: it starts what is left of it.
    flags[1] = 1 if len(a[0]) else flags[1]
    if b is not None and len(b[0]):
        flags[len(a[0]) + 2] = 1
    return Instance(
        input_ids=np.concatenate(parts_ids).astype(np.int32),
        segment_ids=np.concatenate(segments),
        token_boundary=flags,
        label=label,
    )


class RandomDocumentPool:
    """A bounded window of documents around the current one, the source of random segments."""

    def __init__(self, documents: Iterable[Document]) -> None:
        self._source = iter(documents)
        self._ahead: collections.deque[Document] = collections.deque()
        self._behind: collections.deque[Document] = collections.deque()
        self._tokens = 0
        self._exhausted = False
        self._fill()

    @staticmethod
    def _size(document: Document) -> int:
        return sum(len(s[0]) for s in document)

    def _fill(self) -> None:
        while (
            not self._exhausted
            and len(self._ahead) < POOL_DOCUMENTS
            and self._tokens < POOL_TOKENS // 2
        ):
            try:
                document = next(self._source)
            except StopIteration:
                self._exhausted = True
                return
            self._ahead.append(document)
            self._tokens += self._size(document)

    def __iter__(self) -> Iterator[Document]:
        while self._ahead:
            current = self._ahead.popleft()
            self._fill()
            yield current
            self._behind.append(current)
            while len(self._behind) > POOL_DOCUMENTS or (
                len(self._behind) > 1 and self._tokens > POOL_TOKENS
            ):
                self._tokens -= self._size(self._behind.popleft())
            self._fill()

    def others(self) -> list[Document]:
        """Documents other than the current one (which is neither behind nor ahead)."""
        return list(self._behind) + list(self._ahead)


def instances_from_document(
    document: Document,
    pool: RandomDocumentPool | None,
    rng: np.random.Generator,
    settings: InstanceSettings,
) -> Iterator[Instance]:
    """Instances of one document, BERT style."""
    pair = settings.sentence_task != "none"
    max_tokens = settings.max_seq_length - (3 if pair else 2)
    target = max_tokens
    if rng.random() < settings.short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    chunk: list[Sentence] = []
    length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        length += len(document[i][0])
        if i == len(document) - 1 or length >= target:
            if chunk:
                instance = _make(chunk, document, i, pool, rng, settings, target, max_tokens)
                if instance is not None:
                    made, unused = instance
                    i -= unused
                    yield made
            chunk, length = [], 0
            target = max_tokens
            if rng.random() < settings.short_seq_prob:
                target = int(rng.integers(2, max_tokens + 1))
        i += 1


def _make(
    chunk: list[Sentence],
    document: Document,
    index: int,
    pool: RandomDocumentPool | None,
    rng: np.random.Generator,
    settings: InstanceSettings,
    target: int,
    max_tokens: int,
) -> tuple[Instance, int] | None:
    task = settings.sentence_task
    if task == "none":
        a = list(_concat(chunk))
        if len(a[0]) > max_tokens:
            a = [a[0][:max_tokens], a[1][:max_tokens]]
        return (_assemble(a, None, 0, settings), 0) if len(a[0]) else None

    a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
    unused = 0
    if task == "nsp":
        if len(chunk) == 1 or rng.random() < 0.5:
            label = 1
            a = list(_concat(chunk[:a_end]))
            b = _random_segment(pool, rng, max(1, target - len(a[0])))
            unused = len(chunk) - a_end  # put back what A did not use
        else:
            label = 0
            a, b = list(_concat(chunk[:a_end])), list(_concat(chunk[a_end:]))
    else:  # sop
        if len(chunk) == 1:
            ids, flags = chunk[0]
            if len(ids) < 2:
                return None
            cut = int(rng.integers(1, len(ids)))
            a, b = [ids[:cut], flags[:cut]], [ids[cut:], flags[cut:]]
        else:
            a, b = list(_concat(chunk[:a_end])), list(_concat(chunk[a_end:]))
        label = 0
        if rng.random() < 0.5:
            a, b, label = b, a, 1
    _truncate_pair(a, b, max_tokens, rng)
    if len(a[0]) == 0 or len(b[0]) == 0:
        return None
    return _assemble(a, b, label, settings), unused


def _random_segment(
    pool: RandomDocumentPool | None, rng: np.random.Generator, target: int
) -> list[np.ndarray]:
    others = pool.others() if pool is not None else []
    others = [d for d in others if d]
    if not others:
        raise InstanceError(
            "sentence_task nsp needs at least two documents to draw random segments from; "
            "this input has one (use sentence_task: sop)"
        )
    document = others[int(rng.integers(0, len(others)))]
    start = int(rng.integers(0, len(document)))
    taken: list[Sentence] = []
    length = 0
    for sentence in document[start:]:
        taken.append(sentence)
        length += len(sentence[0])
        if length >= target:
            break
    return list(_concat(taken))
