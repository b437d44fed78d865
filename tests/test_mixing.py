"""Every shard a random sample of the whole corpus, in random order; refresh still cheap."""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
from pretrain_records.pipeline.readback.stats import spearman

from tests.conftest import current_build, invoke, shard_hashes, shard_paths

FILES, SHARDS = 20, 4
COMMON = ["--max-seq-length", 64, "--dupe-factor", 1, "--masking", "dynamic", "--vocab-size", 600]
COMMON += ["--unit-bytes", 30000, "--sentence-task", "sop", "--short-seq-prob", 0]


def tagged_text(file: int, documents: int, rng: random.Random) -> str:
    """`lines` documents whose every word says which file (and document) it comes from."""
    out = []
    for d in range(documents):
        sentences = [
            " ".join(f"f{file}d{d}" if k == 0 else rng.choice(WORDS) for k in range(12)) + "."
            for _ in range(6)
        ]
        out.append("\n".join(sentences))
    return "\n\n".join(out) + "\n"


WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tagged")
    rng = random.Random(7)
    for i in range(FILES):
        (folder / f"book-{i:02d}.txt").write_text(tagged_text(i, 50, rng))
    return folder


def record_sources(out) -> list[list[int]]:
    """For each shard, the file each record's text comes from (decoded from the records)."""
    sp = spm.SentencePieceProcessor(model_file=str(current_build(out) / "spm.model"))
    spec = {"input_ids": tf.io.FixedLenFeature([64], tf.int64)}
    sources = []
    for shard in shard_paths(out):
        found = []
        data = tf.data.TFRecordDataset(str(shard)).map(
            lambda r: tf.io.parse_single_example(r, spec)
        )
        for example in data.as_numpy_iterator():
            text = sp.decode([int(i) for i in example["input_ids"] if i > 4])
            tags = re.findall(r"f(\d+)d\d+", text)
            assert tags, text
            found.append(int(tags[0]))
        sources.append(found)
    return sources


def check_mixed(sources: list[list[int]], files: int) -> None:
    for shard in sources:
        n = len(shard)
        counts = np.bincount(shard, minlength=files)
        expected = n / files
        assert expected >= 20
        # Every file in every shard (P(none) < e^-20 a cell), at a binomial count (6 sigma).
        assert np.all(counts > 0), counts
        assert np.all(np.abs(counts - expected) < 6 * np.sqrt(expected)), counts
        # Order in the shard unrelated to the file order: |rho| < 5 / sqrt(n) under the null.
        assert abs(spearman(np.arange(n), np.array(shard))) < 5 / np.sqrt(n)


def test_every_shard_samples_every_file_in_random_order(tmp_path, corpus_dir):
    out = tmp_path / "out"
    invoke("build", corpus_dir, "-o", out, *COMMON, "--num-shards", SHARDS)
    sources = record_sources(out)
    assert len(sources) == SHARDS
    counts = [len(s) for s in sources]
    assert max(counts) - min(counts) <= 1
    check_mixed(sources, FILES)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["units"]) >= 4  # several units, each spread over every shard
    stats = invoke("inspect", out, "-n", 0, "--stats", "--sample", 64).stdout
    assert "100% of the files present" in stats


def test_one_big_file_is_mixed_the_same_way(tmp_path, corpus_dir):
    big = tmp_path / "all.txt"
    big.write_text("\n".join(p.read_text() for p in sorted(corpus_dir.iterdir())))
    out = tmp_path / "out"
    invoke("build", big, "-o", out, *COMMON, "--num-shards", SHARDS)
    assert len(json.loads((out / "manifest.json").read_text())["units"]) >= 4
    check_mixed(record_sources(out), FILES)


@pytest.mark.parametrize("shards", [1, 17])
def test_any_number_of_shards(tmp_path, corpus_dir, shards):
    out = tmp_path / "out"
    invoke("build", corpus_dir, "-o", out, *COMMON, "--num-shards", shards)
    manifest = json.loads((out / "manifest.json").read_text())
    counts = [s["records"] for s in manifest["shards"]]
    assert len(counts) == shards and max(counts) - min(counts) <= 1
    assert shards > len(manifest["units"]) or shards == 1
    invoke("verify", out)


def test_a_refresh_rebuilds_one_unit_and_equals_a_clean_build(tmp_path, corpus_dir):
    folder = tmp_path / "in"
    folder.mkdir()
    for path in corpus_dir.iterdir():
        (folder / path.name).write_text(path.read_text())
    out = tmp_path / "out"
    invoke("build", folder, "-o", out, *COMMON, "--num-shards", SHARDS)
    runs = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / ".mpr/units").rglob("run-*")}
    changed = folder / "book-07.txt"
    changed.write_text(changed.read_text() + "\n" + tagged_text(7, 3, random.Random(1)))
    args = [*COMMON, "--num-shards", SHARDS]
    summary = json.loads(invoke("build", folder, "-o", out, *args, "--json").stdout)
    assert summary["units"]["rebuilt"] == 1 and summary["units"]["reused"] >= 3
    after = {
        p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / ".mpr/units").rglob("run-*")
    }
    kept = set(runs) & set(after)
    assert len(kept) == len(after) - 1 and all(runs[p] == after[p] for p in kept)
    clean = tmp_path / "clean"
    model = tmp_path / "spm.model"
    model.write_bytes((current_build(out) / "spm.model").read_bytes())
    invoke("build", folder, "-o", clean, *args, "--spm-model", model)
    assert shard_hashes(out) == shard_hashes(clean)
    invoke("verify", out)
