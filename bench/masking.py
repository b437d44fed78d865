"""Benchmark of the NgramMask op against the ways one would write it without a custom op.

Sequences: L tokens, 80% of them maskable words (1-3 tokens each), the rest [CLS]/[SEP]/padding;
20% of the real tokens masked, max_n 3. Times are medians of repeated runs, in microseconds per
sequence, all measured in this one process (best of repeated runs, as timeit advises: the least
disturbed by the other work of this 2-core machine).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from pretrain_records.ops import ngram_mask
from pretrain_records.ops.reference import numpy_ngram_mask, tf_ngram_mask

CLS, SEP, MASK, VOCAB = 2, 3, 4, 30000
SETTINGS = dict(
    max_n=3, mask_ratio=0.2, special_ids=(1, CLS, SEP, MASK), mask_id=MASK, vocab_size=VOCAB
)


def make_row(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] A [SEP] B [SEP] then padding, with 80% of the `length` tokens in words."""
    words = int(length * 0.8)
    ids, boundary = [CLS], [1]
    while len(ids) - 1 < words:
        n = min(int(rng.integers(1, 4)), words - (len(ids) - 1))
        ids += rng.integers(10, VOCAB, size=n).tolist()
        boundary += [1] + [0] * (n - 1)
        if len(ids) - 1 >= words // 2 and SEP not in ids:
            ids.append(SEP)
            boundary.append(1)
    ids.append(SEP)
    boundary.append(1)
    pad = length - len(ids)
    return np.array(ids + [0] * pad, np.int64), np.array(boundary + [0] * pad, np.int64)


def best_seconds(run: Callable[[], object], repeats: int, budget_s: float = 1.5) -> float:
    """Best wall time of `run`, after a warm-up, over `repeats` runs or about `budget_s`."""
    run()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats or (len(times) < 5 and time.perf_counter() < deadline):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    return min(times)


def main() -> None:
    """Prints the table of issue 2: us per sequence and ratios, side by side in one run."""
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float]] = []
    ids, boundary = make_row(rng, 128)
    t_ids, t_boundary = tf.constant(ids), tf.constant(boundary)
    settings = dict(SETTINGS, max_predictions=128)

    spec = tf.TensorSpec([None], tf.int64)
    tf_reference = tf.function(
        lambda i, b: tf_ngram_mask(i, b, **settings), input_signature=[spec, spec]
    )
    rows.append(
        (
            "pure-TF reference, tf.function, 1 seq",
            best_seconds(lambda: tf_reference(t_ids, t_boundary), 200) * 1e6,
        )
    )
    numpy_rng = np.random.default_rng(1)
    rows.append(
        (
            "NumPy reference, 1 seq",
            best_seconds(lambda: numpy_ngram_mask(ids, boundary, numpy_rng, **settings), 500) * 1e6,
        )
    )
    seed = tf.constant([1, 2], tf.int64)
    rows.append(
        (
            "op, one eager call, 1 seq",
            best_seconds(lambda: ngram_mask(t_ids, t_boundary, seed, **settings), 3000) * 1e6,
        )
    )
    rows.append(
        (
            "tf.raw_ops.Identity, eager (dispatch floor)",
            best_seconds(lambda: tf.raw_ops.Identity(input=t_ids), 3000) * 1e6,
        )
    )
    # The same arity as the op (4 tensors in, 4 out): what any such op costs to dispatch.
    empty = tf.zeros([0], tf.int64)
    rows.append(
        (
            "tf.raw_ops.IdentityN, 4 in / 4 out, eager",
            best_seconds(lambda: tf.raw_ops.IdentityN(input=[t_ids, t_boundary, empty, seed]), 3000)
            * 1e6,
        )
    )

    batched: dict[tuple[int, int], float] = {}
    for length in (128, 512):
        batch_settings = dict(SETTINGS, max_predictions=length)
        pool = [make_row(rng, length) for _ in range(256)]
        for batch in (1, 64, 1024, 8192):
            chosen = [pool[i % len(pool)] for i in range(batch)]
            r_ids = tf.RaggedTensor.from_row_lengths(
                np.concatenate([c[0] for c in chosen]), [length] * batch
            )
            r_boundary = r_ids.with_values(np.concatenate([c[1] for c in chosen]))
            seconds = best_seconds(
                lambda r_ids=r_ids, r_boundary=r_boundary, s=batch_settings: ngram_mask(
                    r_ids, r_boundary, seed, **s
                ),
                repeats=max(5, 2000 // batch),
            )
            batched[(length, batch)] = seconds * 1e6 / batch
            rows.append((f"op, batch {batch:>4}, L={length}", batched[(length, batch)]))

    floor = dict(rows)["tf.raw_ops.Identity, eager (dispatch floor)"]
    best = min(v for (length, _), v in batched.items() if length == 128)
    print(
        "NgramMask: us per sequence (128 tokens unless L says; 80% maskable, 20% masked, max_n 3)"
    )
    print(f"{'':46} {'us/seq':>10} {'x best batched L=128':>22} {'x dispatch floor':>17}")
    for name, us in rows:
        print(f"{name:46} {us:10.2f} {us / best:22.1f} {us / floor:17.2f}")
    eager = dict(rows)["op, one eager call, 1 seq"]
    same_arity = dict(rows)["tf.raw_ops.IdentityN, 4 in / 4 out, eager"]
    print(
        f"targets: batched L=128 <= 0.5 us/seq -> {best:.3f}; "
        f"one eager call <= 1.5x floor -> {eager / floor:.2f}x "
        f"({eager / same_arity:.2f}x IdentityN of the same arity)"
    )


if __name__ == "__main__":
    main()
