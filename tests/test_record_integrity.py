"""Records that are right or a clear refusal: the tokenizer's sample, a kept tokenizer or unit
that is not what it claims, config identity, foreign manifests (real CLI runs, real reads)."""

from __future__ import annotations

import json
import random
import signal
from pathlib import Path

import pytest
import sentencepiece as spm
import tensorflow as tf
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.reading.pieces import Piece
from pretrain_records.pipeline.tokenizer import tokenizer_sample

from tests.conftest import (
    ARGS,
    current_build,
    invoke,
    one_error_line,
    run_cli,
    shard_hashes,
    shard_paths,
    start_paused,
)

SMALL_UNITS = ["--unit-bytes", 40000]


def english_lines(count: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    words = ["river", "stone", "quiet", "window", "garden", "letter", "morning", "travel"]
    return "".join(" ".join(rng.choices(words, k=6)) + ".\n" for _ in range(count))


def korean_lines(count: int, seed: int = 2) -> str:
    rng = random.Random(seed)
    words = ["하늘", "바다", "사람", "마음", "노래", "친구", "학교", "시간", "이야기", "사랑"]
    return "".join(" ".join(rng.choices(words, k=5)) + ".\n" for _ in range(count))


def piece(path: Path) -> Piece:
    return Piece(str(path), path.name, "none", 0, None)


def test_the_sample_spreads_over_every_file_in_proportion_and_ignores_their_order(tmp_path):
    (tmp_path / "a-english.txt").write_text(english_lines(9000))
    (tmp_path / "b-korean.txt").write_text(korean_lines(1000))
    pieces = [piece(tmp_path / "a-english.txt"), piece(tmp_path / "b-korean.txt")]
    config = BuildConfig(seed=5)

    def sample(order: list[Piece]) -> tokenizer_sample.Sample:
        return tokenizer_sample.sample_sentences(order, config, lambda t: [t], max_sentences=2000)

    drawn = sample(pieces)
    assert drawn.seen == 10000 and len(drawn.sentences) == 2000 and drawn.too_long == 0
    korean = sum(any("\uac00" <= c <= "\ud7a3" for c in s) for s in drawn.sentences)
    # A uniform sample of 2000 of 10000: 200 Korean expected, sd ~12.7 (hypergeometric).
    assert 140 < korean < 260
    assert sorted(sample(pieces[::-1]).sentences) == sorted(drawn.sentences)
    assert sample(pieces).sentences == drawn.sentences  # the same seed, the same sample
    other = tokenizer_sample.sample_sentences(
        pieces, BuildConfig(seed=6), lambda t: [t], max_sentences=2000
    )
    assert other.sentences != drawn.sentences


def test_the_sample_is_bounded_by_characters_and_leaves_out_overlong_sentences(tmp_path):
    long = "x" * (tokenizer_sample.MAX_SENTENCE_BYTES + 1)
    (tmp_path / "a.txt").write_text(english_lines(3000) + long + "\n")
    drawn = tokenizer_sample.sample_sentences(
        [piece(tmp_path / "a.txt")], BuildConfig(), lambda t: [t], max_characters=20_000
    )
    assert drawn.seen == 3001 and drawn.too_long == 1
    assert 0 < sum(map(len, drawn.sentences)) <= 20_000
    everything = tokenizer_sample.sample_sentences(
        [piece(tmp_path / "a.txt")], BuildConfig(), lambda t: [t]
    )
    # A budget keeps the sentences of smallest keys: a prefix of the whole sample's order.
    assert everything.sentences[: len(drawn.sentences)] == drawn.sentences


def test_a_file_sorted_after_a_big_one_still_teaches_the_tokenizer(tmp_path, monkeypatch):
    # As a Korean file sorted after a 2M-line English one, at a test's scale: the tokenizer's
    # sample budget cut to 3000 sentences of the 12,000.
    monkeypatch.setattr(tokenizer_sample, "MAX_SENTENCES", 3000)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a-english.txt").write_text(english_lines(11000).replace(".\n", ".\n\n", 500))
    (folder / "b-korean.txt").write_text(korean_lines(1000))
    out = tmp_path / "out"
    result = invoke("build", folder, "-o", out, "--vocab-size", 300, "--dupe-factor", 1, "--json")
    summary = json.loads(result.stdout)
    assert summary["tokenizer_sample"] == {"sentences": 3000, "of": 12000, "too_long": 0}
    sp = spm.SentencePieceProcessor(model_file=str(current_build(out) / "spm.model"))
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    assert sum(any("\uac00" <= c <= "\ud7a3" for c in p) for p in pieces) >= 10


def test_lines_all_too_long_for_a_tokenizer_are_a_data_error_in_the_tools_words(tmp_path):
    path = tmp_path / "one-line-books.txt"
    path.write_text("\n\n".join(("word " * 14000).strip() + "." for _ in range(3)) + "\n")
    result = run_cli("build", path, "-o", tmp_path / "out", "--vocab-size", 300, check=1)
    line = one_error_line(result.stderr)
    assert "all 3 sentences of the input are longer than 65,536 bytes" in line
    assert "INTERNAL" not in line


def test_a_kept_tokenizer_serves_only_the_config_that_trained_it(tmp_path, three_files):
    clean = tmp_path / "clean"
    invoke("build", three_files, "-o", clean, *ARGS)
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS)
    stopped = start_paused(
        "chunk", "build", three_files, "-o", out, *ARGS, "--vocab-size", 850, "--force"
    )
    stopped.send_signal(signal.SIGKILL)
    stopped.wait()
    summary = json.loads(run_cli("build", three_files, "-o", out, *ARGS, "--json").stdout)
    assert summary["tokenizer"] == "trained"
    assert shard_hashes(out) == shard_hashes(clean)
    assert (current_build(out) / "spm.model").read_bytes() == (
        current_build(clean) / "spm.model"
    ).read_bytes()
    run_cli("verify", out)


def test_a_damaged_kept_unit_is_rebuilt_before_anything_is_published(tmp_path, three_files):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["units"]) >= 3
    damaged = manifest["units"][0]["fingerprint"]
    run = out / ".mpr" / "units" / damaged / "run-0.bin"
    data = bytearray(run.read_bytes())
    data[len(data) - 100] ^= 0x01  # inside the last record's bytes
    run.write_bytes(bytes(data))
    changed = three_files / "part-2.txt"
    changed.write_text(changed.read_text() + "\n새로운 리뷰 한 줄.\n")
    clean = tmp_path / "clean"
    invoke(
        "build",
        three_files,
        "-o",
        clean,
        *ARGS,
        *SMALL_UNITS,
        "--spm-model",
        current_build(out) / "spm.model",
    )
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--json").stdout
    )
    assert summary["units"]["damaged"] == 1
    assert summary["units"]["rebuilt"] >= 2
    assert shard_hashes(out) == shard_hashes(clean)
    run_cli("verify", out)
    for shard in shard_paths(out):
        assert sum(1 for _ in tf.data.TFRecordDataset(str(shard))) > 0  # no DataLossError


def test_a_failed_first_build_reruns_with_the_suggested_fix_without_force(tmp_path, three_files):
    (three_files / "part-1.txt").write_bytes(
        (three_files / "part-1.txt").read_bytes() + b"\n\xff\xfe broken\n"
    )
    out = tmp_path / "out"
    result = run_cli("build", three_files, "-o", out, *ARGS, check=1)
    assert "invalid UTF-8" in one_error_line(result.stderr)
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, "--bad-lines", "skip", "--json").stdout
    )
    assert summary["status"] == "ok" and summary["skipped"]["bad_lines"] == 1


def test_a_model_is_the_same_config_however_its_path_is_spelled(tmp_path, three_files, monkeypatch):
    model_dir = tmp_path / "spm"
    model_dir.mkdir()
    invoke("build", three_files, "-o", tmp_path / "first", *ARGS)
    (model_dir / "m.model").write_bytes(
        (current_build(tmp_path / "first") / "spm.model").read_bytes()
    )
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, "--spm-model", "./spm/m.model")
    before = shard_hashes(out)
    summary = json.loads(
        invoke(
            "build", three_files, "-o", out, *ARGS, "--spm-model", model_dir / "m.model", "--json"
        ).stdout
    )
    assert summary["status"] == "up-to-date" and summary["units"]["rebuilt"] == 0
    assert shard_hashes(out) == before


@pytest.mark.parametrize(
    "change", [["--num-shards", 3], ["--compression", "gzip"]], ids=["num_shards", "compression"]
)
def test_merge_only_keys_recut_the_kept_records_without_force(tmp_path, three_files, change):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, *change, "--json").stdout
    )
    assert summary["status"] == "ok"
    assert summary["units"]["rebuilt"] == 0 and summary["tokenizer"] == "reused"
    clean = tmp_path / "clean"
    invoke("build", three_files, "-o", clean, *ARGS, *SMALL_UNITS, *change)
    assert shard_hashes(out) == shard_hashes(clean)
    run_cli("verify", out)


def test_a_manifest_without_the_tools_marks_is_foreign_with_everything_beside_it(
    tmp_path, three_files
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("my: own config\n")
    (out / "spm.vocab").write_text("my vocabulary\n")
    fake = {"config": {}, "shards": [], "files": [{"name": "config.yaml", "bytes": 15}]}
    (out / "manifest.json").write_text(json.dumps(fake))
    result = run_cli("build", three_files, "-o", out, *ARGS, "--force", check=2)
    assert "manifest.json exists and was not written by this tool" in one_error_line(result.stderr)
    assert (out / "config.yaml").read_text() == "my: own config\n"
    assert (out / "spm.vocab").read_text() == "my vocabulary\n"
