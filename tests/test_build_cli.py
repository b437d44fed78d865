"""`make-pretrain-records build` end to end (in process), and the records it writes."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.conftest import (
    REPO,
    corpus,
    current_build,
    invoke,
    one_error_line,
    shard_hashes,
    shard_paths,
)


def build_sample(out: Path, model: Path | str, *options: object, check: int = 0):
    """`build` of BERT's sample text with a given SentencePiece model."""
    return invoke(
        "build",
        corpus("en/bert_sample_text.txt"),
        "-o",
        out,
        "--spm-model",
        model,
        *options,
        check=check,
    )


def model_garden_spec(length: int, predictions: int, v2: bool = False) -> dict:
    """BertPretrainDataLoader's feature spec (written here, not imported from tf-models)."""
    ids, segments = ("input_word_ids", "input_type_ids") if v2 else ("input_ids", "segment_ids")
    return {
        ids: tf.io.FixedLenFeature([length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([length], tf.int64),
        segments: tf.io.FixedLenFeature([length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([predictions], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([predictions], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([predictions], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def read_records(out: Path, spec: dict, compression: str = "") -> list[dict]:
    shards = sorted(str(p) for p in shard_paths(out))
    data = tf.data.TFRecordDataset(shards, compression_type=compression)
    return list(data.map(lambda r: tf.io.parse_single_example(r, spec)).as_numpy_iterator())


@pytest.fixture(scope="module")
def ten_documents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 one-sentence documents in `lines` format, each far shorter than 64 tokens."""
    text = corpus("en/bert_sample_text.txt").read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in text if 20 < len(s.strip()) < 120][:10]
    assert len(sentences) == 10
    path = tmp_path_factory.mktemp("ten") / "ten.txt"
    path.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return path


def test_exact_record_count_and_shard_split(tmp_path, ten_documents, english_model):
    # sentence_task none, no short sequences: exactly one record per document per pass.
    out = tmp_path / "out"
    summary = json.loads(
        invoke(
            "build",
            ten_documents,
            "-o",
            out,
            "--spm-model",
            english_model,
            "--sentence-task",
            "none",
            "--short-seq-prob",
            0,
            "--max-seq-length",
            64,
            "--max-predictions-per-seq",
            10,
            "--dupe-factor",
            3,
            "--num-shards",
            4,
            "--json",
        ).stdout
    )
    assert summary["records"] == 30 and summary["documents"] == 10 and summary["shards"] == 4
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in manifest["shards"]] == [
        f"build-00001/train-0000{i}-of-00004.tfrecord" for i in range(4)
    ]
    # Ranks [s*N/S, (s+1)*N/S): shards differ by one record at most.
    assert [s["records"] for s in manifest["shards"]] == [7, 8, 7, 8]
    assert manifest["totals"]["records"] == 30
    for entry in manifest["shards"] + manifest["files"]:
        path = out / entry["name"]
        assert path.stat().st_size == entry["bytes"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
    assert sum(1 for _ in tf.data.TFRecordDataset([str(p) for p in shard_paths(out)])) == 30
    assert sorted(p.name for p in out.iterdir() if p.name != ".mpr") == [
        "build-00001",
        "manifest.json",
    ]
    assert sorted(f"build-00001/{p.name}" for p in (out / "build-00001").iterdir()) == sorted(
        e["name"] for e in manifest["shards"] + manifest["files"]
    )
    private = sorted(p.name for p in (out / ".mpr").iterdir())
    assert private == [
        "builds.json",
        "config.json",
        "lock",
        "plan-cache.json",
        "units",
    ]
    assert not list((out / ".mpr").rglob("*.partial-*"))
    assert (current_build(out) / "spm.model").read_bytes() == english_model.read_bytes()


@pytest.mark.parametrize("names", ["v1", "v2"])
def test_records_parse_with_model_garden_spec_and_are_consistent(tmp_path, english_model, names):
    out = tmp_path / "out"
    build_sample(
        out,
        english_model,
        "--sentence-task",
        "nsp",
        "--max-seq-length",
        64,
        "--max-predictions-per-seq",
        10,
        "--mask-ratio",
        0.2,
        "--dupe-factor",
        3,
        "--feature-names",
        names,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    cls, sep, mask = (manifest["tokenizer"][k] for k in ("cls_id", "sep_id", "mask_id"))
    specials = set(manifest["tokenizer"]["special_ids"])
    spec = model_garden_spec(64, 10, v2=names == "v2")
    spec["token_boundary"] = tf.io.FixedLenFeature([64], tf.int64)
    records = read_records(out, spec)
    assert len(records) == manifest["totals"]["records"] > 20
    ids_key, seg_key = (
        ("input_word_ids", "input_type_ids") if names == "v2" else ("input_ids", "segment_ids")
    )
    for r in records:
        ids, mask_, seg = r[ids_key], r["input_mask"], r[seg_key]
        n = int(mask_.sum())
        assert np.all(mask_[:n] == 1) and np.all(mask_[n:] == 0)
        assert np.all(ids[n:] == 0) and np.all(seg[n:] == 0)
        assert ids[0] == cls and ids[n - 1] == sep
        seps = np.flatnonzero(ids[:n] == sep)
        assert len(seps) == 2, "[CLS] A [SEP] B [SEP]"
        assert np.all(seg[: seps[0] + 1] == 0) and np.all(seg[seps[0] + 1 : n] == 1)
        weights = r["masked_lm_weights"]
        k = int(weights.sum())
        budget = min(10, max(1, round(n * 0.2)))
        assert 1 <= k <= budget
        assert np.all(weights[:k] == 1.0) and np.all(weights[k:] == 0.0)
        positions = r["masked_lm_positions"][:k]
        assert np.all(np.diff(positions) > 0) and np.all(r["masked_lm_positions"][k:] == 0)
        assert np.all((positions > 0) & (positions < n))
        assert not set(r["masked_lm_ids"][:k].tolist()) & specials
        assert not set(ids[positions].tolist()) & (specials - {mask})
        assert r["token_boundary"][0] == 1 and np.all(r["token_boundary"][n:] == 0)
        assert r["next_sentence_labels"][0] in (0, 1)


@pytest.mark.parametrize("task", ["nsp", "sop"])
def test_sentence_labels_are_balanced_on_a_multi_document_korean_corpus(tmp_path, task):
    out = tmp_path / "out"
    invoke(
        "build",
        corpus("ko/nsmc_reviews_sample.txt"),
        "-o",
        out,
        "--language",
        "ko",
        "--vocab-size",
        3000,
        "--sentence-task",
        task,
        "--dupe-factor",
        2,
    )
    spec = {"next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64)}
    labels = np.array([r["next_sentence_labels"][0] for r in read_records(out, spec)])
    assert len(labels) > 1000
    tolerance = 4 * math.sqrt(0.25 / len(labels))
    assert abs(labels.mean() - 0.5) < tolerance, (labels.mean(), tolerance)


def test_english_book_and_korean_jsonl_end_to_end_with_gzip(tmp_path):
    out_en = tmp_path / "en"
    result = invoke(
        "build",
        corpus("en/botchan.txt"),
        "-o",
        out_en,
        "--input-format",
        "text",
        "--vocab-size",
        2000,
        "--dupe-factor",
        1,
        "--compression",
        "gzip",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok" and summary["documents"] == 1
    assert [p.name for p in shard_paths(out_en)] == ["train-00000-of-00001.tfrecord.gz"]
    spec = {"input_ids": tf.io.FixedLenFeature([128], tf.int64)}
    assert len(read_records(out_en, spec, "GZIP")) == summary["records"] > 100

    out_ko = tmp_path / "ko"
    result = invoke(
        "build",
        corpus("jsonl/nsmc_movies_sample.jsonl.gz"),
        "-o",
        out_ko,
        "--input-format",
        "jsonl",
        "--language",
        "ko",
        "--vocab-size",
        3000,
        "--dupe-factor",
        1,
        "--json",
    )
    assert json.loads(result.stdout)["documents"] == 40
    invoke("verify", out_ko)
    shown = invoke("inspect", out_ko, "-n", 1, "--stats").stdout
    assert "[[" in shown and "masked share" in shown and "sentence labels" in shown
    assert "mixing over 1 input files" in shown


def test_same_seed_gives_identical_shards_other_seed_differs(tmp_path, english_model):
    args = [
        "--max-seq-length",
        64,
        "--max-predictions-per-seq",
        10,
        "--dupe-factor",
        2,
        "--num-shards",
        2,
        "--sentence-task",
        "nsp",
    ]
    build_sample(tmp_path / "a", english_model, *args)
    build_sample(tmp_path / "b", english_model, *args)
    build_sample(tmp_path / "c", english_model, *args, "--seed", 99)
    a, b, c = (shard_hashes(tmp_path / x) for x in "abc")
    assert len(a) == 2 and a == b
    assert all(a[name] != c[name] for name in a)


def test_dynamic_masking_writes_no_masked_lm_features(tmp_path, english_model):
    out = tmp_path / "out"
    build_sample(out, english_model, "--masking", "dynamic", "--max-seq-length", 64)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["features"]) == sorted(
        ["input_ids", "input_mask", "segment_ids", "token_boundary", "next_sentence_labels"]
    )
    record = next(iter(tf.data.TFRecordDataset([str(p) for p in shard_paths(out)])))
    example = tf.train.Example.FromString(record.numpy())
    assert sorted(example.features.feature) == sorted(manifest["features"])


def test_config_precedence_cli_over_yaml_over_defaults(tmp_path, english_model):
    config = tmp_path / "c.yaml"
    config.write_text("max_seq_length: 64\nmax_predictions_per_seq: 12\nmax_n: 2\n")
    out = tmp_path / "out"
    build_sample(out, english_model, "--config", config, "--max-n", 4, "--dupe-factor", 1)
    written = yaml.safe_load((current_build(out) / "config.yaml").read_text())
    assert written["max_seq_length"] == 64 and written["max_predictions_per_seq"] == 12
    assert written["max_n"] == 4 and written["mask_ratio"] == 0.15


def test_missing_input_exits_2_naming_it(tmp_path):
    result = invoke("build", tmp_path / "nothing-*.txt", "-o", tmp_path / "out", check=2)
    assert f"no file matches {tmp_path}/nothing-*.txt" in one_error_line(result.stderr)
    result = invoke("build", tmp_path / "nothing.txt", "-o", tmp_path / "out", check=2)
    assert f"no such file: {tmp_path}/nothing.txt" in one_error_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_model_without_specials_is_refused_naming_what_is_missing(tmp_path):
    import sentencepiece as spm

    prefix = tmp_path / "plain"
    spm.SentencePieceTrainer.train(
        input=str(corpus("en/bert_sample_text.txt")),
        model_prefix=str(prefix),
        vocab_size=300,
        minloglevel=2,
        hard_vocab_limit=False,
    )
    result = build_sample(tmp_path / "out", f"{prefix}.model", check=2)
    assert "lacks [CLS], [SEP], [MASK], pad id 0 (its pad id is -1)" in result.stderr
    assert not (tmp_path / "out").exists()


def test_help_and_version_do_not_import_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner;"
        "from pretrain_records.cli.main import main;"
        "r = CliRunner().invoke(main, ['build', '--help']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(main, ['--version']); assert '0.1.0' in r.output;"
        "assert 'tensorflow' not in sys.modules; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_single_document_corpus_refuses_nsp_but_makes_sop(tmp_path, english_model):
    sample = REPO / "configs" / "sample" / "us-constitution.txt"
    args = ["--input-format", "text", "--spm-model", english_model, "--dupe-factor", 1]
    result = invoke(
        "build", sample, "-o", tmp_path / "nsp", *args, "--sentence-task", "nsp", check=1
    )
    assert one_error_line(result.stderr).endswith(
        "sentence_task nsp needs at least two documents; the input has 1 (use sentence_task: sop)"
    )
    assert not list((tmp_path / "nsp").glob("train-*"))
    assert not (tmp_path / "nsp" / "manifest.json").exists()
    invoke("build", sample, "-o", tmp_path / "sop", *args, "--sentence-task", "sop")
    assert (tmp_path / "sop" / "manifest.json").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_output_that_cannot_be_one_is_exit_2_before_any_work(tmp_path, english_model, dry_run):
    a_file = tmp_path / "outfile"
    a_file.write_text("mine")
    inside = tmp_path / "other" / ".mpr"
    extra = ["--dry-run"] if dry_run else []
    result = build_sample(a_file, english_model, *extra, check=2)
    assert "not a directory" in one_error_line(result.stderr)
    assert a_file.read_text() == "mine"
    result = build_sample(inside, english_model, *extra, check=2)
    assert "private .mpr folder" in one_error_line(result.stderr)
    assert not inside.exists()
