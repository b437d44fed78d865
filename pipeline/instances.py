"""BERT/ALBERT sentence-pair instances of a unit (NSP, SOP or single segment), shuffled and
batched.

The work is the C++ instance stream (ops/cc/core/instance_stream.h): BERT's
`create_instances_from_document` (target length, `short_seq_prob`, random split point,
truncation from a random end) with every draw keyed by (seed, pass, document), so output is
reproducible; NSP's random segment comes from a bounded window of *other* documents (256 before
and after, 4M tokens); SOP splits a single-sentence chunk inside the sentence instead of
borrowing text from another document; a bounded seeded buffer shuffles the instances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from pretrain_records.ops.instance_stream import InstanceStream, InstanceStreamError
from pretrain_records.pipeline.config import BuildConfig

InstanceError = InstanceStreamError  # the corpus cannot make the requested instances

SHUFFLE_BUFFER = 10_000  # instances shuffled within a unit

# Tokenized documents: token ids and word-start flags (concatenated over every sentence of every
# document), the sentences' lengths and the documents' sentence counts.
Documents = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def instance_batches(
    documents: Callable[[], Iterable[Documents]],
    config: BuildConfig,
    cls_id: int,
    sep_id: int,
    seed: int,
    shuffle_seed: int,
    batch_size: int,
) -> Iterator[dict[str, np.ndarray]]:
    """Padded batches of `batch_size` instances (the last may be smaller) over every dupe pass
    of `documents()` (called once per pass, yielding chunks of documents)."""
    stream = InstanceStream(
        max_seq_length=config.max_seq_length,
        short_seq_prob=config.short_seq_prob,
        sentence_task=config.sentence_task,
        cls_id=cls_id,
        sep_id=sep_id,
        seed=seed,
        shuffle_seed=shuffle_seed,
        shuffle_buffer=SHUFFLE_BUFFER,
    )
    passes = config.dupe_factor if config.masking == "static" else 1
    for dupe_pass in range(passes):
        stream.start_pass(dupe_pass)
        for chunk in documents():
            stream.add(*chunk)
            while stream.ready() >= batch_size:
                yield stream.take(batch_size)
        stream.end_pass()
    stream.finish()
    while stream.ready():
        yield stream.take(batch_size)
