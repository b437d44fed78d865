"""Documents tokenized in chunks into flat arrays, in helper processes for big units.

A chunk is about CHUNK_CHARACTERS of text (or CHUNK_DOCUMENTS documents): per-chunk costs
(tf.data elements, calls into C++) are paid per chunk, not per document. For a unit of at least
HELPER_MIN_BYTES, sentence splitting and SentencePiece encoding run in helper processes (one per
core, ordered, at most two chunks each in flight) while this process reads the next chunks and
builds records: the output does not depend on where a chunk was tokenized.
"""

from __future__ import annotations

import atexit
import collections
import itertools
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
from pretrain_records.pipeline import sources, tokenize

CHUNK_CHARACTERS = int(os.environ.get("MPR_CHUNK_CHARACTERS", 1 << 18))  # env: for tests
CHUNK_DOCUMENTS = 512
HELPER_MIN_BYTES = 4 << 20
HELPERS_ENV = "MPR_TOKENIZER_PROCESSES"  # number of helper processes (0: none), else automatic

# Token ids and word-start flags of every sentence of every document, the sentences' lengths
# and the documents' sentence counts (see instances.Documents).
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def chunked(documents: Iterable[list[str]], on_document: Any = None) -> Iterator[list[list[str]]]:
    """Groups documents into chunks."""
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


def tokenize_chunk(documents: list[list[str]], tokenizer: tokenize.Tokenizer) -> Arrays:
    """The arrays of a chunk; empty sentences are dropped."""
    encoded = tokenizer.encode([s for document in documents for s in document])
    ids = np.fromiter(itertools.chain.from_iterable(encoded), np.int32)
    lengths = np.fromiter(map(len, encoded), np.int32, len(encoded))
    per_document = np.fromiter(map(len, documents), np.int64, len(documents))
    # Sentences kept per document: the non-empty ones.
    nonempty = np.r_[0, np.cumsum(lengths > 0)]
    ends = np.cumsum(per_document)
    kept = nonempty[ends] - nonempty[ends - per_document]
    return ids, tokenizer.word_start[ids], lengths[lengths > 0], kept.astype(np.int32)


def helper_count(unit_bytes: int) -> int:
    """Helper processes for a unit of `unit_bytes`: one per core for big units, else none."""
    if HELPERS_ENV in os.environ:
        return max(0, int(os.environ[HELPERS_ENV]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) if unit_bytes >= HELPER_MIN_BYTES and (cores or 1) > 1 else 0


class ChunkTokenizer:
    """Tokenizes chunks of documents here or in helper processes, in order."""

    def __init__(
        self, tokenizer: tokenize.Tokenizer, language: str, split: bool, helpers: int
    ) -> None:
        """`split`: the documents' paragraphs still need sentence splitting (done with the
        tokenizing, in the helpers); `helpers`: 0 tokenizes in this process."""
        self._tokenizer = tokenizer
        self._split = sources.make_splitter(language) if split else None
        self._pool = _pool(tokenizer.model_proto, language, helpers) if helpers else None
        self._in_flight = 2 * helpers

    def map(self, chunks: Iterable[list[list[str]]]) -> Iterator[Arrays]:
        if self._pool is None:
            for chunk in chunks:
                yield _tokenize(chunk, self._tokenizer, self._split)
            return
        pending: collections.deque[Any] = collections.deque()
        for chunk in chunks:
            pending.append(self._pool.submit(_tokenize_in_helper, chunk, self._split is not None))
            if len(pending) >= self._in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _tokenize(
    chunk: list[list[str]], tokenizer: tokenize.Tokenizer, split: sources.Splitter | None
) -> Arrays:
    if split is not None:
        chunk = [[s for paragraph in document for s in split(paragraph)] for document in chunk]
    return tokenize_chunk(chunk, tokenizer)


_pools: dict[tuple[bytes, str, int], ProcessPoolExecutor] = {}
_helper: dict[str, Any] = {}


def _pool(model: bytes, language: str, helpers: int) -> ProcessPoolExecutor:
    """One pool per (tokenizer, language, size) for the life of the process."""
    key = (model, language, helpers)
    if key not in _pools:
        import multiprocessing

        _pools[key] = ProcessPoolExecutor(
            helpers,
            mp_context=multiprocessing.get_context("spawn"),  # TensorFlow does not survive fork
            initializer=_start_helper,
            initargs=(model, language, os.getpid()),
        )
    return _pools[key]


def _start_helper(model: bytes, language: str, parent: int) -> None:
    _helper["tokenizer"] = tokenize.Tokenizer(model, name="spm.model")
    _helper["split"] = sources.make_splitter(language)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    """Ends this helper when the build that started it is gone (killed: no shutdown came)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def _tokenize_in_helper(chunk: list[list[str]], split: bool) -> Arrays:
    return _tokenize(chunk, _helper["tokenizer"], _helper["split"] if split else None)


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=False, cancel_futures=True)
