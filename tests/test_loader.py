"""The loader: static shapes, TPU types, dynamic masks per epoch, host sharding, and training."""

from __future__ import annotations

import collections
import itertools
import json
import math
import shutil

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.pipeline.readback.loader import load_dataset

from tests.conftest import corpus, current_build, invoke, shard_paths

L, P, BATCH = 64, 10, 16


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Static and dynamic records from the same Korean corpus and tokenizer, and dynamic records
    masked token by token (`dynamic-tokens`: with whole words, the word boundaries of two
    different records mostly hide shared draws; token by token, shared draws mask the same
    positions of any two full-length rows)."""
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
    invoke(
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
    invoke(
        "build",
        corpus("ko/nsmc_reviews_sample.txt"),
        "-o",
        root / "dynamic",
        "--spm-model",
        current_build(root / "static") / "spm.model",
        "--masking",
        "dynamic",
        *common,
    )
    invoke(
        "build",
        corpus("ko/nsmc_reviews_sample.txt"),
        "-o",
        root / "dynamic-tokens",
        "--spm-model",
        current_build(root / "static") / "spm.model",
        "--masking",
        "dynamic",
        "--whole-word",
        "false",
        *common,
    )
    return root


def batches(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


KEY = ("input_ids", "segment_ids", "token_boundary", "next_sentence_labels")


def row_key(row: dict) -> bytes:
    """A record's unmasked content as bytes (its masks aside)."""
    return b"".join(np.asarray(row[name], np.int64).tobytes() for name in KEY)


def stored_rows(directory) -> list[bytes]:
    """Every record's `row_key`, read straight from the shards in manifest order."""
    manifest = json.loads((directory / "manifest.json").read_text())
    spec = {
        name: tf.io.FixedLenFeature(manifest["features"][name]["shape"], tf.int64) for name in KEY
    }
    files = [str(directory / shard["name"]) for shard in manifest["shards"]]
    raw = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec))
    return [row_key(row) for row in raw.as_numpy_iterator()]


def loaded_rows(batch: dict) -> list[bytes]:
    """`row_key` of each row of a dynamically masked batch: masked_lm_ids put back in place."""
    ids = batch["input_ids"].copy()
    rows, cols = np.nonzero(batch["masked_lm_weights"])
    ids[rows, batch["masked_lm_positions"][rows, cols]] = batch["masked_lm_ids"][rows, cols]
    return [
        row_key({**{k: batch[k][r] for k in KEY}, "input_ids": ids[r]}) for r in range(len(ids))
    ]


def load_host(directory, hosts, host, **kwargs):
    """Host `host` of `hosts`, one replica each: per-host batches of BATCH."""
    context = tf.distribute.InputContext(hosts, host, hosts)
    return load_dataset(str(directory), BATCH * hosts, 7, context, **kwargs)


def mask_positions(directory, hosts) -> list[np.ndarray]:
    """masked_lm_positions of each host's epoch: [host][step, row, P]."""
    return [
        np.stack(
            [
                b["masked_lm_positions"]
                for b in batches(load_host(directory, hosts, h, epochs=1), 1000)
            ]
        )
        for h in range(hosts)
    ]


def identical_mask_rows(positions: list[np.ndarray]) -> tuple[int, int, int, int]:
    """Identical mask rows between row i of two hosts: (at the same step, pairs compared, at
    different steps, pairs compared), over every pair of hosts and their common steps."""
    steps = min(len(p) for p in positions)
    same = same_pairs = other = other_pairs = 0
    for a, b in itertools.combinations([p[:steps] for p in positions], 2):
        equal = np.all(a[:, None] == b[None, :], axis=-1)  # [step on a, step on b, row]
        diagonal = equal[np.arange(steps), np.arange(steps)]
        same, same_pairs = same + int(diagonal.sum()), same_pairs + diagonal.size
        other += int(equal.sum() - diagonal.sum())
        other_pairs += equal.size - diagonal.size
    return same, same_pairs, other, other_pairs


def hypergeometric_tail(hits: int, draws: int, successes: int, population: int) -> float:
    """P(X >= hits), X the successes among `draws` of `population` items without replacement."""
    ways = sum(
        math.comb(successes, k) * math.comb(population - successes, draws - k)
        for k in range(hits, min(successes, draws) + 1)
    )
    return ways / math.comb(population, draws)


def contains(big: list, small: list) -> bool:
    """`small` is a sub-multiset of `big`."""
    return not collections.Counter(small) - collections.Counter(big)


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
    tokenizer = json.loads((records / kind / "manifest.json").read_text())["tokenizer"]
    specials = [tokenizer["cls_id"], tokenizer["sep_id"]]
    rows_seen = rows_checked = 0
    for batch in batches(ds, 3):
        weights = batch["masked_lm_weights"]
        # Whole-word masking (as BERT's) predicts none of a row whose every word is longer than
        # its budget (round(0.15 n)); every other row gets predictions.
        for row, ids, mask, starts in zip(
            weights, batch["input_ids"], batch["input_mask"], batch["token_boundary"], strict=True
        ):
            n = int(mask.sum())
            begins = np.flatnonzero(starts[:n])
            words = np.diff(np.append(begins, n))[~np.isin(ids[begins], specials)]
            rows_seen += 1
            if words.min() <= max(1, round(0.15 * n)):
                rows_checked += 1
                assert row.sum() >= 1, (n, words)
        rows, cols = np.nonzero(weights)
        positions = batch["masked_lm_positions"][rows, cols]
        assert np.all(batch["input_mask"][rows, positions] == 1)
    assert rows_checked >= 0.9 * rows_seen > 0  # the rule above held for nearly every row


def test_dynamic_masks_are_fresh_each_epoch_and_repeat_for_the_seed(records):
    path = str(records / "dynamic")
    n = len(stored_rows(records / "dynamic"))
    kept = n // BATCH * BATCH  # rows of each epoch: the tail that does not fill a batch is dropped

    def two_epochs(seed, calls=tf.data.AUTOTUNE):
        ds = load_dataset(path, BATCH, seed, epochs=2, shuffle_buffer=0, num_parallel_calls=calls)
        rows = list(batches(ds, 1000))
        return (
            np.concatenate([b["input_ids"] for b in rows]),
            np.concatenate([b["masked_lm_positions"] for b in rows]),
        )

    ids, first = two_epochs(7)
    assert len(first) == 2 * kept and n > 5 * BATCH
    # Record i of both epochs: the same record (no shuffle; equal outside both masks), masked
    # anew (a row drawing the same ~9 positions of 64 again is rare).
    for i in range(kept):
        a, b = ids[i].copy(), ids[kept + i].copy()
        a[first[i]] = b[first[i]] = a[first[kept + i]] = b[first[kept + i]] = 0
        assert np.array_equal(a, b)
    _, again = two_epochs(7, calls=1)
    assert np.array_equal(first, again)
    _, other = two_epochs(8)
    assert not np.array_equal(first, other)
    # Epoch 2 draws anew: it repeats epoch 1's masks no more often than an independent draw
    # (another seed) does by chance (short rows with few maskable words do repeat); 4 sigma.
    same = sum(np.array_equal(first[i], first[kept + i]) for i in range(kept))
    chance = sum(np.array_equal(first[i], other[i]) for i in range(kept))
    assert same <= chance + 4 * np.sqrt(chance + 1), (same, chance)
    assert chance < 0.1 * kept


def test_static_records_pass_through_unchanged(records):
    ds = load_dataset(str(records / "static"), BATCH, seed=3, epochs=1, shuffle_buffer=0)
    loaded = np.concatenate([b["masked_lm_positions"] for b in batches(ds, 1000)])
    spec = {"masked_lm_positions": tf.io.FixedLenFeature([P], tf.int64)}
    shards = sorted(str(p) for p in shard_paths(records / "static"))
    raw = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec))
    stored = np.stack([r["masked_lm_positions"] for r in raw.as_numpy_iterator()])
    # The same records (the tail that does not fill a batch is dropped).
    assert len(stored) - BATCH < len(loaded) <= len(stored)
    stored_set = {tuple(r) for r in stored.tolist()}
    assert all(tuple(r) in stored_set for r in loaded.tolist())


def test_without_a_shuffle_buffer_records_come_shard_after_shard_in_manifest_order(records):
    directory = records / "static"
    assert len(json.loads((directory / "manifest.json").read_text())["shards"]) == 3
    everything = stored_rows(directory)
    ds = load_dataset(str(directory), BATCH, seed=3, epochs=1, shuffle_buffer=0)
    rows = [
        row_key({k: batch[k][r] for k in KEY}) for batch in batches(ds, 1000) for r in range(BATCH)
    ]
    assert len(everything) > 3 * BATCH
    assert rows == everything[: len(everything) // BATCH * BATCH]


@pytest.mark.parametrize("hosts", [2, 5])
def test_every_epoch_reads_each_record_once_over_hosts_in_equal_batch_counts(records, hosts):
    everything = stored_rows(records / "dynamic")
    n = len(everything)
    per_epoch = n // hosts // BATCH  # batches of every host, from the smallest host share
    assert per_epoch >= 5
    for epochs in (1, 2):
        counts = [
            sum(1 for _ in load_host(records / "dynamic", hosts, h, epochs=epochs))
            for h in range(hosts)
        ]
        assert counts == [epochs * per_epoch] * hosts
    epoch_rows = []  # [host][epoch] -> row keys
    for h in range(hosts):
        ds = load_host(records / "dynamic", hosts, h, epochs=2)
        rows = [row for batch in batches(ds, 1000) for row in loaded_rows(batch)]
        epoch_rows.append([rows[: per_epoch * BATCH], rows[per_epoch * BATCH :]])
        share = everything[h * n // hosts : (h + 1) * n // hosts]
        # Each epoch: records of this host's contiguous share only, each at most once; the
        # second epoch is reshuffled (and drops other records).
        assert all(contains(share, epoch) for epoch in epoch_rows[h])
        assert epoch_rows[h][0] != epoch_rows[h][1]
    for epoch in range(2):
        union = [row for host_rows in epoch_rows for row in host_rows[epoch]]
        assert contains(everything, union)  # no record on two hosts, nor twice on one
        assert 0 <= n - len(union) < hosts * (BATCH + 1)


@pytest.mark.parametrize("kind", ["dynamic", "dynamic-tokens"])
@pytest.mark.parametrize("hosts", [2, 5])
def test_hosts_do_not_share_masks_at_a_step_beyond_chance(records, kind, hosts):
    same, same_pairs, other, other_pairs = identical_mask_rows(
        mask_positions(records / kind, hosts)
    )
    # Chance level: row i of two hosts at different steps, whose draws are independent under
    # any keying. Without shared draws, how many of the identical pairs fall on equal steps is
    # hypergeometric (a one-sided Fisher exact test); shared draws put them there (the old
    # (seed, element) keying, 2 hosts, token-level masks: 72 of 336 rows, 0 of 6720).
    p_value = hypergeometric_tail(same, same_pairs, same + other, same_pairs + other_pairs)
    assert p_value > 1e-6, (same, same_pairs, other, other_pairs)


@pytest.mark.parametrize("hosts", [2, 5])
def test_the_seed_and_host_count_give_the_same_batches_whatever_the_parallelism(records, hosts):
    path = records / "dynamic"
    for h in range(hosts):
        first = batches(load_host(path, hosts, h, epochs=2), 1000)
        again = batches(load_host(path, hosts, h, epochs=2, num_parallel_calls=1), 1000)
        forever = batches(load_host(path, hosts, h), len(first))  # epochs=None: the same stream
        assert len(first) >= 10
        for run in (again, forever):
            assert len(run) == len(first)
            for x, y in zip(first, run, strict=True):
                assert all(np.array_equal(x[k], y[k]) for k in x)


def test_too_little_data_for_one_batch_per_host_is_a_clear_error(records):
    path = records / "dynamic"
    n = sum(s["records"] for s in json.loads((path / "manifest.json").read_text())["shards"])
    half = n // 2
    message = f"{n} records over 2 hosts give {half} per host, fewer than the per-host batch of "
    message += f"{half + 1}$"
    for epochs in (1, None):
        with pytest.raises(ValueError, match=message):
            context = tf.distribute.InputContext(2, 0, 2)
            load_dataset(str(path), 2 * (half + 1), 7, context, epochs=epochs)
    with pytest.raises(ValueError, match=f"{n} records, fewer than the batch of {n + 1}$"):
        load_dataset(str(path), n + 1, 7)
    # Just enough: one batch of `half` on each host.
    for h in range(2):
        ds = load_dataset(str(path), 2 * half, 7, tf.distribute.InputContext(2, h, 2), epochs=1)
        assert len(batches(ds, 10)) == 1


def test_shards_holding_fewer_records_than_the_manifest_says_fail(records, tmp_path):
    # Hosts would otherwise get unequal batch counts, and stall a pod at the end of an epoch.
    copy = tmp_path / "short"
    shutil.copytree(records / "dynamic", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"][0]["records"] += 40
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(tf.errors.FailedPreconditionError, match="expected to contain"):
        batches(load_host(copy, 2, 0, epochs=1), 1000)


def test_a_shard_gone_or_of_another_size_is_a_clear_error_before_any_record(records, tmp_path):
    """A build the retention collected (or a shard replaced by hand) never yields records of
    another build: the loader checks each shard the manifest names is there, with its size."""
    from pretrain_records.pipeline.records.manifest import ManifestError

    copy = tmp_path / "copy"
    shutil.copytree(records / "static", copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    first, last = shard_paths(copy)[0], shard_paths(copy)[-1]
    last.write_bytes(last.read_bytes() + b"\0")
    size = last.stat().st_size
    with pytest.raises(ManifestError) as raised:
        load_dataset(str(copy), BATCH, 7)
    assert str(raised.value) == (
        f"{last}: {size} bytes, its manifest says {size - 1}: not the build it names"
    )
    first.unlink()
    with pytest.raises(ManifestError) as raised:
        load_dataset(str(copy), BATCH, 7)
    assert str(raised.value) == (
        f"{first}: gone ({manifest['build_dir']} was collected after later builds: the "
        "retention keeps retained_builds earlier ones); load the current manifest again"
    )


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
