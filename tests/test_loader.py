"""The loader: static shapes, TPU types, dynamic masks per epoch, host sharding, and training."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.pipeline.loader import load_dataset

from tests.conftest import corpus, run_cli

L, P, BATCH = 64, 10, 16


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Static and dynamic records from the same Korean corpus and tokenizer."""
    root = tmp_path_factory.mktemp("records")
    common = [
        "--language",
        "ko",
        "--max-seq-length",
        L,
        "--max-predictions-per-seq",
        P,
        "--num-shards",
        3,
        "--sentence-task",
        "sop",
    ]
    run_cli(
        "build",
        corpus("ko/nsmc_reviews_sample.txt"),
        "-o",
        root / "static",
        "--vocab-size",
        2000,
        "--dupe-factor",
        2,
        *common,
    )
    run_cli(
        "build",
        corpus("ko/nsmc_reviews_sample.txt"),
        "-o",
        root / "dynamic",
        "--spm-model",
        root / "static" / "spm.model",
        "--masking",
        "dynamic",
        *common,
    )
    return root


def batches(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_batches_have_static_tpu_shapes_and_int32(records, kind):
    ds = load_dataset(str(records / kind), batch_size=BATCH, seed=1)
    expected = {
        "input_ids": [BATCH, L],
        "input_mask": [BATCH, L],
        "segment_ids": [BATCH, L],
        "token_boundary": [BATCH, L],
        "masked_lm_positions": [BATCH, P],
        "masked_lm_ids": [BATCH, P],
        "masked_lm_weights": [BATCH, P],
        "next_sentence_labels": [BATCH, 1],
    }
    assert {k: v.shape.as_list() for k, v in ds.element_spec.items()} == expected
    for name, spec in ds.element_spec.items():
        assert spec.dtype == (tf.float32 if name == "masked_lm_weights" else tf.int32), name
    for batch in batches(ds, 3):
        weights = batch["masked_lm_weights"]
        assert weights.sum(axis=1).min() >= 1
        rows, cols = np.nonzero(weights)
        positions = batch["masked_lm_positions"][rows, cols]
        assert np.all(batch["input_mask"][rows, positions] == 1)


def test_dynamic_masks_are_fresh_each_epoch_and_repeat_for_the_seed(records):
    path = str(records / "dynamic")
    files = [str(p) for p in (records / "dynamic").glob("train-*")]
    n = int(sum(1 for _ in tf.data.TFRecordDataset(files)))

    def two_epochs(seed, calls=tf.data.AUTOTUNE):
        ds = load_dataset(path, BATCH, seed, epochs=2, shuffle_buffer=0, num_parallel_calls=calls)
        rows = list(batches(ds, 1000))
        return (
            np.concatenate([b["input_ids"] for b in rows]),
            np.concatenate([b["masked_lm_positions"] for b in rows]),
        )

    ids, first = two_epochs(7)
    assert 2 * n - BATCH < len(first) <= 2 * n and n > 5 * BATCH
    second = len(first) - n  # rows of the second epoch that made a full batch
    # Record i of both epochs: the same record (no shuffle; equal outside both masks), masked
    # anew (a row drawing the same ~9 positions of 64 again is rare).
    for i in range(second):
        a, b = ids[i].copy(), ids[n + i].copy()
        a[first[i]] = b[first[i]] = a[first[n + i]] = b[first[n + i]] = 0
        assert np.array_equal(a, b)
    same = sum(np.array_equal(first[i], first[n + i]) for i in range(second))
    assert same <= 0.02 * second
    _, again = two_epochs(7, calls=1)
    assert np.array_equal(first, again)
    _, other = two_epochs(8)
    assert not np.array_equal(first, other)


def test_static_records_pass_through_unchanged(records):
    ds = load_dataset(str(records / "static"), BATCH, seed=3, epochs=1, shuffle_buffer=0)
    loaded = np.concatenate([b["masked_lm_positions"] for b in batches(ds, 1000)])
    spec = {"masked_lm_positions": tf.io.FixedLenFeature([P], tf.int64)}
    shards = sorted(str(p) for p in (records / "static").glob("train-*"))
    raw = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec))
    stored = np.stack([r["masked_lm_positions"] for r in raw.as_numpy_iterator()])
    # The loader interleaves shards: the same records, in another order (the tail that does not
    # fill a batch is dropped).
    assert len(stored) - BATCH < len(loaded) <= len(stored)
    stored_rows = {tuple(r) for r in stored.tolist()}
    assert all(tuple(r) in stored_rows for r in loaded.tolist())


@pytest.mark.parametrize("hosts", [2, 5])
def test_per_host_shards_cover_every_record_exactly_once(records, hosts):
    def rows(context):
        # Global batch `hosts`, one replica per host: one record per batch on each host.
        size = hosts if context is not None else 1
        ds = load_dataset(
            str(records / "static"), size, seed=0, input_context=context, epochs=1, shuffle_buffer=0
        )
        return [tuple(b["input_ids"][0]) for b in batches(ds, 100000)]

    everything = rows(None)
    parts = [rows(tf.distribute.InputContext(hosts, i, hosts)) for i in range(hosts)]
    assert sorted(sum(parts, [])) == sorted(everything)
    assert all(parts)


class MaskedLM(tf.keras.Model):
    """A tiny BERT-like masked LM: embeddings, 2 transformer layers, logits at masked slots."""

    def __init__(self, vocab: int, width: int = 64) -> None:
        super().__init__()
        self.tokens = tf.keras.layers.Embedding(vocab, width)
        self.segments = tf.keras.layers.Embedding(2, width)
        self.positions = tf.keras.layers.Embedding(L, width)
        self.blocks = [
            (
                tf.keras.layers.MultiHeadAttention(4, width // 4),
                tf.keras.layers.LayerNormalization(),
                tf.keras.layers.Dense(width * 2, activation="gelu"),
                tf.keras.layers.Dense(width),
                tf.keras.layers.LayerNormalization(),
            )
            for _ in range(2)
        ]
        self.logits = tf.keras.layers.Dense(vocab)

    def call(self, batch: dict) -> tf.Tensor:
        x = self.tokens(batch["input_ids"]) + self.segments(batch["segment_ids"])
        x = x + self.positions(tf.range(L))[None]
        attention_mask = tf.cast(batch["input_mask"][:, None, :], tf.bool)
        for attention, norm1, hidden, out, norm2 in self.blocks:
            x = norm1(x + attention(x, x, attention_mask=attention_mask))
            x = norm2(x + out(hidden(x)))
        return self.logits(tf.gather(x, batch["masked_lm_positions"], batch_dims=1))


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_a_tiny_masked_lm_learns_from_the_records(records, kind):
    import json

    tf.keras.utils.set_random_seed(0)
    vocab = json.loads((records / kind / "manifest.json").read_text())["tokenizer"]["vocab_size"]
    model = MaskedLM(vocab)
    optimizer = tf.keras.optimizers.Adam(2e-3)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(batch)
            losses = tf.keras.losses.sparse_categorical_crossentropy(
                batch["masked_lm_ids"], logits, from_logits=True
            )
            weights = batch["masked_lm_weights"]
            loss = tf.reduce_sum(losses * weights) / tf.reduce_sum(weights)
        optimizer.apply_gradients(
            zip(
                tape.gradient(loss, model.trainable_variables),
                model.trainable_variables,
                strict=False,
            )
        )
        return loss

    ds = load_dataset(str(records / kind), batch_size=32, seed=5)
    curve = [float(step(batch)) for batch in ds.take(100)]
    print(kind, "MLM loss every 10 steps:", [round(x, 2) for x in curve[::10]], curve[-1])
    start, end = np.mean(curve[:5]), np.mean(curve[-10:])
    assert start > np.log(vocab) - 1.0, curve[:5]
    # From uniform guessing (log V ~ 7.6 nats) down by more than 1 nat: perplexity / 2.7.
    assert end < start - 1.0, (start, end)
