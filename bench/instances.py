"""Instances per second of the stateless MakeInstances op: eager, and mapped by tf.data.

Data: the first documents of the NSMC movie corpus (`../shared/corpora/bench`, one document per
movie, one review per sentence), cut into chunks the size the pipeline makes (256 Ki characters
or 512 documents) and tokenized by an 8k SentencePiece model trained here; L = 128,
short_seq_prob 0.1:

- one chunk, one eager op call; all chunks, eager calls in turn; and the (cached) chunks,
  repeated, mapped by `tf.data` with `num_parallel_calls=AUTOTUNE` (the op is stateless:
  chunks run in parallel).

Times are the best of repeated runs (the least disturbed by other work on the machine).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf
from pretrain_records.ops import make_instances
from pretrain_records.pipeline.tokenizer import tokenize

CORPUS = Path(__file__).resolve().parents[1].parent / "shared/corpora/bench/nsmc_movies.jsonl.gz"
CHUNK_CHARACTERS = 1 << 18
CHUNK_DOCUMENTS = 512
LENGTH = 128
SHORT_SEQ_PROB = 0.1
DATA_PASSES = 16  # tf.data runs the chunks this many times, so its start-up cost is amortized

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def read_chunks(count: int) -> list[list[list[str]]]:
    """The first `count` chunks of documents (lists of sentences) of the corpus."""
    chunks: list[list[list[str]]] = [[]]
    size = 0
    with gzip.open(CORPUS, "rt", encoding="utf-8") as lines:
        for line in lines:
            document = [s for s in json.loads(line)["text"].splitlines() if s.strip()]
            chunks[-1].append(document)
            size += sum(map(len, document))
            if size >= CHUNK_CHARACTERS or len(chunks[-1]) >= CHUNK_DOCUMENTS:
                if len(chunks) == count:
                    return chunks
                chunks.append([])
                size = 0
    return [c for c in chunks if c]


def tokenize_chunk(documents: list[list[str]], tokenizer: tokenize.Tokenizer) -> Chunk:
    encoded = tokenizer.encode([s for document in documents for s in document])
    ids = np.array([i for sentence in encoded for i in sentence], np.int32)
    return (
        ids,
        tokenizer.word_start[ids],
        np.array([len(s) for s in encoded], np.int32),
        np.array([len(d) for d in documents], np.int32),
    )


def best_seconds(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Best wall time of `run` over `repeats` runs after a warm-up, and what it returned."""
    produced = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times), produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=8, help="chunks of the multi-chunk runs")
    parser.add_argument("--repeats", type=int, default=5)
    args, _ = parser.parse_known_args()  # bench/run.py passes its own arguments through

    documents = read_chunks(args.chunks)
    sentences = (s for chunk in documents for document in chunk for s in document)
    proto, _ = tokenize.train(sentences, vocab_size=8000, seed=1)
    tokenizer = tokenize.Tokenizer(proto)
    chunks = [tokenize_chunk(chunk, tokenizer) for chunk in documents]
    tokens = sum(len(c[0]) for c in chunks)
    print(
        f"MakeInstances: {len(chunks)} chunks, "
        f"{sum(len(c[3]) for c in chunks)} documents, {tokens} tokens "
        f"({len(chunks[0][0])} in the first chunk), L={LENGTH}, short_seq_prob={SHORT_SEQ_PROB}"
    )
    print(f"{'':44} {'rows':>7} {'ms':>9} {'instances/s':>12}")
    for task in ("sop", "nsp"):
        settings = dict(
            max_seq_length=LENGTH,
            short_seq_prob=SHORT_SEQ_PROB,
            sentence_task=task,
            cls_id=tokenizer.cls_id,
            sep_id=tokenizer.sep_id,
        )
        seed = tf.constant([1, 2], tf.int64)
        first = tuple(tf.constant(a) for a in chunks[0])

        def op_one_chunk(first=first, settings=settings, seed=seed) -> int:
            return int(make_instances(*first, seed, **settings)["label"].shape[0])

        signature = (
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int8),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([2], tf.int64),
        )
        with_seeds = [(*c, np.array([1, i], np.int64)) for i, c in enumerate(chunks)]
        # Cached: the warm-up run fills the cache, so timed runs measure the map, not Python.
        dataset = (
            tf.data.Dataset.from_generator(
                lambda with_seeds=with_seeds: iter(with_seeds), output_signature=signature
            )
            .cache()
            .repeat(DATA_PASSES)
            .map(
                lambda *c, settings=settings: tf.shape(make_instances(*c, **settings)["label"])[0],
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )
        )
        tensors = [tuple(tf.constant(a) for a in c) for c in with_seeds]

        def op_eager_chunks(tensors=tensors, settings=settings) -> int:
            return sum(int(make_instances(*c, **settings)["label"].shape[0]) for c in tensors)

        def op_all_chunks(dataset=dataset) -> int:
            return int(dataset.reduce(tf.constant(0), lambda total, count: total + count))

        runs = [
            ("op, 1 chunk, one eager call", op_one_chunk),
            (f"op, {len(chunks)} chunks, eager calls in turn", op_eager_chunks),
            (f"op, {len(chunks)} chunks x {DATA_PASSES}, tf.data map AUTOTUNE", op_all_chunks),
        ]
        measured = [(name, *best_seconds(run, args.repeats)) for name, run in runs]
        print(f"sentence_task {task}")
        for name, seconds, rows in measured:
            print(f"  {name:42} {rows:7d} {seconds * 1e3:9.2f} {rows / seconds:12.0f}")


if __name__ == "__main__":
    main()
