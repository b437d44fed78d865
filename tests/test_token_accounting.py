"""Token accounting of a build: the input's tokens, those the records keep, those dropped, in the
manifest's totals and the `--json` summary, checked against counts made here from the same
documents and from the records themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf
from pretrain_records.pipeline.reading import sentences
from pretrain_records.pipeline.reading.documents import Piece, ReadStats, read_documents
from pretrain_records.pipeline.records.chunks import CHUNK_DOCUMENTS
from pretrain_records.pipeline.running import build_plan

from tests.conftest import ARGS, corpus, current_build, invoke, shard_paths


def build_json(inputs: list[Path], out: Path, *options: object) -> dict:
    """The `--json` summary of a build (one worker, in this process)."""
    return json.loads(invoke("build", *inputs, "-o", out, *options, "--json").stdout)


def manifest_of(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def input_tokens(inputs: list[Path], out: Path, input_format: str, language: str) -> int:
    """The tokens of every document of the inputs, counted here: documents read as the build
    reads them, every sentence encoded by the build's spm.model."""
    model = spm.SentencePieceProcessor(model_file=str(current_build(out) / "spm.model"))
    split = sentences.make_splitter(language)
    total = 0
    for path in inputs:
        piece = Piece(str(path), path.name, "none", 0, None)
        for document in read_documents(piece, input_format, split, ReadStats()):
            total += sum(len(ids) for ids in model.encode(document))
    return total


def record_tokens(out: Path) -> int:
    """The tokens of every record but [CLS] and [SEP]s: its input_mask's ones, less the
    specials (2 for sentence_task none, else 3)."""
    manifest = manifest_of(out)
    length = manifest["config"]["max_seq_length"]
    specials = 2 if manifest["config"]["sentence_task"] == "none" else 3
    spec = {"input_mask": tf.io.FixedLenFeature([length], tf.int64)}
    shards = sorted(str(p) for p in shard_paths(out))
    masks = tf.data.TFRecordDataset(shards).map(lambda r: tf.io.parse_single_example(r, spec))
    lengths = np.array([m["input_mask"].sum() for m in masks.as_numpy_iterator()])
    assert len(lengths) == manifest["totals"]["records"]
    return int((lengths - specials).sum())


def check_totals(summary: dict, out: Path) -> dict:
    """The summary's tokens are the manifest's, and they add up; returns them."""
    tokens = manifest_of(out)["totals"]["tokens"]
    assert summary["tokens"] == tokens
    assert set(tokens) == {"input", "in_records", "dropped"}
    assert tokens["dropped"] == tokens["input"] - tokens["in_records"] >= 0
    return tokens


@pytest.fixture(scope="module")
def botchan_sop(tmp_path_factory: pytest.TempPathFactory, english_model: Path) -> dict:
    """Botchan as one `text` document, sop, L = 128, dupe 1 and 2: (summary, out) per dupe."""
    built = {}
    for dupe in (1, 2):
        out = tmp_path_factory.mktemp(f"sop{dupe}") / "out"
        options = ("--input-format", "text", "--spm-model", english_model)
        options += ("--max-seq-length", 128, "--dupe-factor", dupe)
        built[dupe] = (build_json([corpus("en/botchan.txt")], out, *options), out)
    return built


def test_sop_input_is_every_token_of_the_documents(botchan_sop):
    summary, out = botchan_sop[1]
    tokens = check_totals(summary, out)
    assert tokens["input"] == input_tokens([corpus("en/botchan.txt")], out, "text", "en")


def test_sop_in_records_are_every_token_of_the_records_but_the_specials(botchan_sop):
    for dupe, (summary, out) in botchan_sop.items():
        tokens = check_totals(summary, out)
        # SOP's A and B are both the record's own document: every non-special token counts.
        assert tokens["in_records"] == record_tokens(out) // dupe
        assert 0 < tokens["in_records"] < tokens["input"]  # L = 128 truncates some


def test_input_is_per_pass_whatever_the_dupe_factor(botchan_sop):
    once = check_totals(*botchan_sop[1])
    twice = check_totals(*botchan_sop[2])
    assert twice["input"] == once["input"]
    # Each pass truncates by its own draws: near, not equal.
    assert abs(twice["in_records"] - once["in_records"]) < once["in_records"] / 20


def test_none_counts_are_exact_over_several_chunks_and_passes(tmp_path, english_model):
    """Botchan as `lines` documents of 3 lines (more than CHUNK_DOCUMENTS: several chunks),
    sentence_task none, dupe 2: every record's tokens but [CLS]/[SEP] are its own."""
    lines = corpus("en/botchan.txt").read_text(encoding="utf-8-sig").splitlines()
    book = [tmp_path / "botchan.txt"]
    book[0].write_text("\n\n".join("\n".join(lines[i : i + 3]) for i in range(0, len(lines), 3)))
    out = tmp_path / "out"
    summary = build_json(
        book,
        out,
        *("--spm-model", english_model, "--sentence-task", "none"),
        *("--max-seq-length", 64, "--dupe-factor", 2),
    )
    tokens = check_totals(summary, out)
    assert summary["documents"] > 2 * CHUNK_DOCUMENTS  # several chunks
    assert tokens["input"] == input_tokens(book, out, "lines", "en")
    assert tokens["in_records"] == record_tokens(out) // 2
    assert tokens["dropped"] > 0


def test_nsp_input_counts_each_chunk_once_not_its_neighbours(three_files):
    """Three Korean files in one unit, nsp, dupe 2: each file a chunk whose neighbours are NSP's
    pool; the input is still every document's tokens once per pass."""
    out = three_files.parent / "out"
    summary = build_json([three_files], out, *ARGS)
    tokens = check_totals(summary, out)
    files = sorted(three_files.iterdir())
    assert tokens["input"] == input_tokens(files, out, "lines", "ko")
    # A random B is another document's: not in records' own tokens.
    assert 0 < tokens["in_records"] < record_tokens(out) // 2


def test_reused_units_keep_their_counts(tmp_path, english_model):
    """A refresh that only merges again (another shard count) sums the kept units' counts; an
    up-to-date run reports the published ones."""
    book = [corpus("en/bert_sample_text.txt")]
    out = tmp_path / "out"
    options = ("--spm-model", english_model, "--dupe-factor", 3)
    first = build_json(book, out, *options)
    again = build_json(book, out, *options, "--num-shards", 2)
    assert again["units"]["reused"] == again["units"]["total"] and again["shards"] == 2
    assert again["tokens"] == first["tokens"] == check_totals(again, out)
    same = build_json(book, out, *options, "--num-shards", 2)
    assert same["status"] == "up-to-date" and same["tokens"] == first["tokens"]


def test_units_an_older_version_kept_are_rebuilt_with_counts(tmp_path, english_model, monkeypatch):
    """A unit.json of an older version has no token counts: its unit is not kept (another
    records version, another fingerprint), so the totals stay exact."""
    book = [corpus("en/bert_sample_text.txt")]
    options = ("--spm-model", english_model, "--dupe-factor", 1)
    fresh = build_json(book, tmp_path / "fresh", *options)
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(build_plan, "RECORDS_VERSION", build_plan.RECORDS_VERSION - 1)
        build_json(book, out, *options)
    units = list((out / ".mpr" / "units").glob("*/unit.json"))
    assert units
    for path in units:  # as the older version wrote them
        record = json.loads(path.read_text())
        del record["tokens"]
        path.write_text(json.dumps(record))
    summary = build_json(book, out, *options)
    assert summary["units"]["rebuilt"] == summary["units"]["total"]
    assert summary["tokens"] == fresh["tokens"] == check_totals(summary, out)
