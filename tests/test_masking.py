"""The NgramMask op through its Python face: rules, statistics, determinism, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.ops import compile_library, library, ngram_mask
from pretrain_records.ops.reference import budget, numpy_ngram_mask, tf_ngram_mask

CLS, SEP, MASK, UNK, VOCAB = 2, 3, 4, 1, 500
SPECIALS = (UNK, CLS, SEP, MASK)
SETTINGS = dict(special_ids=SPECIALS, mask_id=MASK, vocab_size=VOCAB)


def make_row(rng: np.random.Generator, words: int, max_word_tokens: int = 3, pad: int = 0):
    """[CLS] A [SEP] B [SEP] + padding, words of 1..max_word_tokens tokens."""
    ids, boundary = [CLS], [1]
    split = words // 2
    for w in range(words):
        if w == split:
            ids.append(SEP)
            boundary.append(1)
        n = int(rng.integers(1, max_word_tokens + 1))
        ids.extend(rng.integers(10, VOCAB, size=n).tolist())
        boundary.extend([1] + [0] * (n - 1))
    ids += [SEP] + [0] * pad
    boundary += [1] + [0] * pad
    return np.array(ids, np.int64), np.array(boundary, np.int64)


def make_batch(seed: int, rows: int, words: int = 60, max_word_tokens: int = 3):
    rng = np.random.default_rng(seed)
    pairs = [
        make_row(rng, int(rng.integers(words // 2, words + 1)), max_word_tokens)
        for _ in range(rows)
    ]
    ids = tf.ragged.constant([p[0] for p in pairs], dtype=tf.int64)
    boundary = tf.ragged.constant([p[1] for p in pairs], dtype=tf.int64)
    return ids, boundary


def masked_runs(positions: np.ndarray, ids: np.ndarray, boundary: np.ndarray) -> list[int]:
    """Lengths, in words, of maximal runs of masked words."""
    word_starts = set(np.flatnonzero(boundary).tolist())
    chosen = set(positions.tolist())
    runs, current = [], 0
    for t in range(len(ids)):
        if ids[t] in SPECIALS or ids[t] == 0 or t not in chosen:
            if current:
                runs.append(current)
            current = 0
        elif t in word_starts:
            current += 1
    if current:
        runs.append(current)
    return runs


def test_budget_is_exact_and_spans_are_clean_whole_words():
    ids, boundary = make_batch(1, 400, words=80, max_word_tokens=1)
    masked, positions, labels = ngram_mask(ids, boundary, [5, 6], mask_ratio=0.2, **SETTINGS)
    for row, (row_ids, row_pos) in enumerate(zip(ids.numpy(), positions.numpy(), strict=True)):
        n_tokens = len(row_ids)
        assert len(row_pos) == budget(n_tokens, 0.2, 20), row
    ids, boundary = make_batch(2, 400, words=80, max_word_tokens=3)
    masked, positions, labels = ngram_mask(ids, boundary, [5, 6], mask_ratio=0.2, **SETTINGS)
    for row_ids, row_b, row_masked, row_pos, row_lab in zip(
        ids.numpy(),
        boundary.numpy(),
        masked.numpy(),
        positions.numpy(),
        labels.numpy(),
        strict=True,
    ):
        limit = budget(len(row_ids), 0.2, 20)
        assert limit - 2 <= len(row_pos) <= limit  # 3-token words may leave up to 2 unfilled
        assert np.all(np.diff(row_pos) > 0), "positions ascending, no overlaps"
        assert not np.isin(row_ids[row_pos], SPECIALS + (0,)).any(), "specials never masked"
        np.testing.assert_array_equal(row_lab, row_ids[row_pos])
        chosen = np.zeros(len(row_ids), bool)
        chosen[row_pos] = True
        inside_word = (row_b == 0) & ~np.isin(row_ids, SPECIALS + (0,))
        np.testing.assert_array_equal(chosen[inside_word], chosen[np.flatnonzero(inside_word) - 1])
        untouched = ~chosen
        np.testing.assert_array_equal(row_masked[untouched], row_ids[untouched])


def test_padding_is_neither_counted_nor_masked():
    rng = np.random.default_rng(3)
    ids, boundary = make_row(rng, 40, 1, pad=60)
    masked, positions, _ = ngram_mask(
        ids, boundary, [1, 1], mask_ratio=1.0, max_predictions=500, **SETTINGS
    )
    real = np.flatnonzero(~np.isin(ids, SPECIALS + (0,)))
    np.testing.assert_array_equal(positions.numpy(), real)


def test_replacement_shares_are_80_10_10_and_random_ids_never_special():
    ids, boundary = make_batch(4, 3000)
    masked, positions, labels = ngram_mask(ids, boundary, [9, 9], mask_ratio=0.2, **SETTINGS)
    now = tf.gather(
        masked.values, positions.values + tf.repeat(ids.row_starts(), positions.row_lengths())
    ).numpy()
    original = labels.values.numpy()
    total = len(now)
    assert total > 50000
    shares = {
        "mask": np.mean(now == MASK),
        "random": np.mean((now != MASK) & (now != original)),
        "kept": np.mean(now == original),
    }
    collide = 0.1 / (VOCAB - 5)  # a random id equal to the original counts as kept
    for name, p in (("mask", 0.8), ("random", 0.1 - collide), ("kept", 0.1 + collide)):
        se = math.sqrt(p * (1 - p) / total)
        assert abs(shares[name] - p) < 4 * se, (name, shares[name], p)
    assert not np.isin(now, (0, UNK, CLS, SEP)).any()
    assert now.min() >= 0 and now.max() < VOCAB


def test_same_seed_same_masks_other_seed_different():
    ids, boundary = make_batch(5, 50)
    first = ngram_mask(ids, boundary, [1, 2], **SETTINGS)
    again = ngram_mask(ids, boundary, [1, 2], **SETTINGS)
    other = ngram_mask(ids, boundary, [1, 3], **SETTINGS)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.flat_values.numpy(), b.flat_values.numpy())
    assert not np.array_equal(first[1].flat_values.numpy(), other[1].flat_values.numpy())


def test_batched_equals_row_by_row():
    ids, boundary = make_batch(6, 40)
    batch = ngram_mask(ids, boundary, [11, 100], **SETTINGS)
    for i in range(40):
        single = ngram_mask(ids[i], boundary[i], [11, 100 + i], **SETTINGS)
        for b, s in zip(batch, single, strict=True):
            np.testing.assert_array_equal(b[i].numpy(), s.numpy())


def test_dtypes_int32_and_bool_boundaries_give_the_same_masks():
    ids, boundary = make_batch(7, 20)
    reference = ngram_mask(ids, boundary, [3, 4], **SETTINGS)
    other = ngram_mask(tf.cast(ids, tf.int32), tf.cast(boundary, tf.bool), [3, 4], **SETTINGS)
    assert other[0].dtype == tf.int32
    for a, b in zip(reference, other, strict=True):
        np.testing.assert_array_equal(a.flat_values.numpy(), b.flat_values.numpy())


def test_eager_tf_function_and_dataset_map_agree_at_any_parallelism():
    ids, boundary = make_batch(8, 64)
    seeds = np.stack([np.full(64, 21), np.arange(64)], axis=1)

    def mask_one(row_ids, row_boundary, seed):
        return ngram_mask(row_ids, row_boundary, seed, **SETTINGS)

    eager = [mask_one(ids[i], boundary[i], seeds[i]) for i in range(64)]
    graph = tf.function(mask_one)
    traced = [graph(ids[i], boundary[i], tf.constant(seeds[i])) for i in range(64)]
    dataset = tf.data.Dataset.from_tensor_slices((ids, boundary, seeds))
    options = tf.data.Options()
    options.deterministic = True
    results = {}
    for parallel in (1, tf.data.AUTOTUNE):
        mapped = dataset.map(mask_one, num_parallel_calls=parallel).with_options(options)
        results[parallel] = list(mapped.as_numpy_iterator())
    for i in range(64):
        for k in range(3):
            expected = eager[i][k].numpy()
            np.testing.assert_array_equal(traced[i][k].numpy(), expected)
            np.testing.assert_array_equal(results[1][i][k], expected)
            np.testing.assert_array_equal(results[tf.data.AUTOTUNE][i][k], expected)


def _run_length_shares(runs: list[int], max_run: int) -> np.ndarray:
    counts = np.bincount(np.minimum(runs, max_run), minlength=max_run + 1)[1:]
    return counts / counts.sum(), counts.sum()


@pytest.mark.parametrize("favor_shorter", [True, False])
def test_span_statistics_agree_with_numpy_and_tf_references(favor_shorter):
    """Two independent implementations and the op: one distribution of masked-run lengths."""
    settings = dict(mask_ratio=0.2, max_n=3, favor_shorter_ngram=favor_shorter, **SETTINGS)
    rows = 1500
    ids, boundary = make_batch(10 + favor_shorter, rows, words=50, max_word_tokens=2)
    _, positions, _ = ngram_mask(ids, boundary, [7, 0], **settings)
    runs = {"op": [], "numpy": [], "tf": []}
    rng = np.random.default_rng(99)
    tf.random.set_seed(7)
    row_spec = tf.TensorSpec([None], tf.int64)
    tf_reference = tf.function(
        lambda i, b: tf_ngram_mask(i, b, **settings)[1], input_signature=[row_spec, row_spec]
    )
    for r in range(rows):
        row_ids, row_b = ids[r].numpy(), boundary[r].numpy()
        runs["op"] += masked_runs(positions[r].numpy(), row_ids, row_b)
        _, pos, _ = numpy_ngram_mask(row_ids, row_b, rng, **settings)
        runs["numpy"] += masked_runs(pos, row_ids, row_b)
        pos = tf_reference(tf.constant(row_ids), tf.constant(row_b)).numpy()
        runs["tf"] += masked_runs(pos, row_ids, row_b)
    op_shares, op_total = _run_length_shares(runs["op"], 6)
    for name in ("numpy", "tf"):
        shares, total = _run_length_shares(runs[name], 6)
        for k in range(6):
            pooled = (op_shares[k] * op_total + shares[k] * total) / (op_total + total)
            se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / op_total + 1 / total))
            assert abs(op_shares[k] - shares[k]) < 4.5 * se, (name, k + 1, op_shares, shares)
    # The law itself is visible (adjacent spans merge into longer runs, so compare means):
    # 1/n gives runs of about 1.67 words on average here, the reverse about 2.16.
    mean_run = float(np.mean(runs["op"]))
    assert (mean_run < 1.85) if favor_shorter else (mean_run > 2.0), mean_run


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(max_n=0), "max_n must be >= 1"),
        (dict(mask_ratio=0.0), "mask_ratio must be in (0, 1]"),
        (dict(mask_ratio=1.5), "mask_ratio must be in (0, 1]"),
        (dict(mask_id=VOCAB), "mask_id must be in [0, vocab_size)"),
        (dict(max_predictions=0), "max_predictions must be >= 1"),
    ],
)
def test_invalid_settings_raise_invalid_argument(settings, message):
    merged = {**SETTINGS, **settings}
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        ngram_mask(tf.constant([CLS, 10, 11, SEP]), tf.constant([1, 1, 1, 1]), [1, 2], **merged)


def test_mismatched_shapes_and_bad_seed_raise_invalid_argument():
    ids = tf.constant([CLS, 10, 11, SEP])
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not match"):
        ngram_mask(ids, tf.constant([1, 1, 1]), [1, 2], **SETTINGS)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seed must have shape \[2\]"):
        ngram_mask(ids, tf.constant([1, 1, 1, 1]), [1, 2, 3], **SETTINGS)
    ragged = tf.ragged.constant([[CLS, 10, SEP], [CLS, 11, 12, SEP]])
    shifted = tf.ragged.constant([[1, 1, 1, 1], [1, 1, 1]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="rows do not match"):
        ngram_mask(ragged, shifted, [1, 2], **SETTINGS)
    # Inside tf.function the same checks give the same error type (the kernel validates).
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seed must have shape \[2\]"):
        tf.function(lambda i, b: ngram_mask(i, b, tf.constant([[1, 2]], tf.int64), **SETTINGS))(
            ids, tf.constant([1, 1, 1, 1])
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="does not match"):
        tf.function(lambda i, b: ngram_mask(i, b, [1, 2], **SETTINGS))(ids, tf.constant([1, 1]))


def test_missing_or_stale_library_raises_import_error_naming_make_ops(tmp_path, monkeypatch):
    monkeypatch.setattr(library, "_library", None)
    monkeypatch.setattr(compile_library, "LIBRARY", tmp_path / "missing.so")
    with pytest.raises(ImportError, match="make ops"):
        library.load()
    fake = tmp_path / "lib.so"
    fake.write_bytes(b"")
    stamp = tmp_path / "stamp.json"
    digest = compile_library.sources_digest()
    stamp.write_text(json.dumps({"tensorflow": "1.0.0", "sources_sha256": digest}))
    monkeypatch.setattr(compile_library, "LIBRARY", fake)
    monkeypatch.setattr(compile_library, "STAMP", stamp)
    with pytest.raises(ImportError, match=r"built for TensorFlow 1\.0\.0.*make ops"):
        library.load()
    stamp.write_text(json.dumps({"tensorflow": tf.__version__, "sources_sha256": "0" * 64}))
    with pytest.raises(ImportError, match="older than its C\\+\\+ sources.*make ops"):
        library.load()
