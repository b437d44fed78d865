"""Every input a user can point at and every mistake they can make: the right result or one
clear line with the right exit code (in process, click's CliRunner)."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import zlib

import pytest

from tests.conftest import (
    CLI,
    corpus,
    invoke,
    one_error_line,
    run_cli,
    shard_hashes,
    shard_paths,
    summary_of,
)

SAMPLE = corpus("en/bert_sample_text.txt")


def test_two_folders_with_one_file_name_and_content_build_again_and_again(tmp_path, model_args):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        shutil.copy(SAMPLE, tmp_path / "in" / folder / "part-0.txt")
    out = tmp_path / "out"
    for _ in range(2):
        summary = summary_of(invoke("build", tmp_path / "in", "-o", out, *model_args, "--json"))
    assert summary["documents"] == 6
    units = json.loads((out / "manifest.json").read_text())["units"]
    assert len({u["key"] for u in units}) == len(units)
    invoke("build", tmp_path / "in", "-o", out, *model_args, "--force")


def test_the_same_bytes_under_any_name_give_the_same_records(tmp_path, model_args):
    hashes = []
    for name in ("c.txt", "star*.txt", "-dash.txt"):
        path = tmp_path / name
        shutil.copy(SAMPLE, path)
        invoke("build", path, "-o", tmp_path / f"out{len(hashes)}", *model_args)
        hashes.append(list(shard_hashes(tmp_path / f"out{len(hashes)}").values()))
    assert hashes[0] == hashes[1] == hashes[2]


def test_a_file_named_twice_is_read_once(tmp_path, model_args, monkeypatch):
    folder = tmp_path / "d2"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "a.txt")
    os.symlink(folder / "a.txt", tmp_path / "link.txt")
    monkeypatch.chdir(tmp_path)
    once = summary_of(invoke("build", "d2/a.txt", "-o", "o1", *model_args, "--json"))
    for args in (["d2", "./d2/a.txt"], [str(folder / "a.txt"), "d2/a.txt"], ["link.txt", "d2"]):
        again = summary_of(invoke("build", *args, "-o", "o2", *model_args, "--json", "--force"))
        assert again["documents"] == once["documents"] == 3
        assert again["records"] == once["records"]


def test_a_file_name_with_glob_characters_is_taken_literally(tmp_path, model_args):
    path = tmp_path / "data[1].txt"
    shutil.copy(SAMPLE, path)
    summary = summary_of(invoke("build", path, "-o", tmp_path / "out", *model_args, "--json"))
    assert summary["documents"] == 3


def test_walks_skip_the_output_hidden_folders_and_fifos(tmp_path, model_args):
    data = tmp_path / "data"
    (data / ".git").mkdir(parents=True)
    shutil.copy(SAMPLE, data / "a.txt")
    (data / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    os.mkfifo(data / "pipe")
    out = data / "out"
    first = summary_of(invoke("build", data, "-o", out, *model_args, "--json"))
    second = summary_of(invoke("build", data, "-o", out, *model_args, "--json"))
    for summary in (first, second):
        assert summary["documents"] == 3
    assert first["skipped"]["hidden"] == 1 and first["skipped"]["not_regular"] == 1
    assert second["skipped"]["output_dir"] == 1 and second["status"] == "up-to-date"


def test_a_jsonl_document_longer_than_a_mebibyte_parses(tmp_path, model_args):
    book = " ".join(["It was a dark and stormy night."] * 60000)  # ~1.9 MB on one line
    path = tmp_path / "books.jsonl"
    path.write_text(json.dumps({"text": book}) + "\n" + json.dumps({"text": "Short one."}) + "\n")
    args = [*model_args, "--input-format", "jsonl", "--json"]
    summary = summary_of(invoke("build", path, "-o", tmp_path / "out", *args))
    assert summary["documents"] == 2 and summary["records"] > 100


def test_nsp_over_one_document_jsonl_files_works(tmp_path, model_args):
    folder = tmp_path / "in"
    folder.mkdir()
    for i, line in enumerate(SAMPLE.read_text().split("\n\n")):
        (folder / f"{i}.jsonl").write_text(json.dumps({"text": line}) + "\n")
    args = [*model_args, "--input-format", "jsonl", "--sentence-task", "nsp", "--json"]
    summary = summary_of(invoke("build", folder, "-o", tmp_path / "out", *args))
    assert summary["documents"] == 3
    one = folder / "0.jsonl"
    result = invoke("build", one, "-o", tmp_path / "one", *args, check=1)
    assert "nsp needs at least two documents; the input has 1" in one_error_line(result.stderr)


@pytest.mark.parametrize(
    "name, pack",
    [
        ("a.txt.gz", gzip.compress),
        ("a.txt.bz2", bz2.compress),
        ("a.txt.xz", lzma.compress),
        ("a.txt.zz", zlib.compress),
        ("renamed.txt", gzip.compress),  # recognised by its bytes, not its name
    ],
)
def test_compressed_inputs_are_recognised_by_their_magic_bytes(tmp_path, model_args, name, pack):
    (tmp_path / name).write_bytes(pack(SAMPLE.read_bytes()))
    invoke("build", SAMPLE, "-o", tmp_path / "plain", *model_args)
    invoke("build", tmp_path / name, "-o", tmp_path / "packed", *model_args)
    assert list(shard_hashes(tmp_path / "packed").values()) == list(
        shard_hashes(tmp_path / "plain").values()
    )


def test_an_unsupported_compression_is_named(tmp_path, model_args):
    path = tmp_path / "a.txt.lz4"
    path.write_bytes(b"\x04\x22\x4d\x18" + os.urandom(200))
    result = invoke("build", path, "-o", tmp_path / "out", *model_args, check=1)
    assert one_error_line(result.stderr).endswith(
        f"{path}: lz4-compressed input is not supported (use gzip, bz2, xz, zstd)"
    )
    path = tmp_path / "a.txt.zst"  # zstd is read: random bytes after its magic are corrupt
    path.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(200))
    result = invoke("build", path, "-o", tmp_path / "out", *model_args, check=1)
    assert f"{path}: corrupt or unreadable" in one_error_line(result.stderr)


def test_jsonl_errors_name_the_files_real_line_numbers(tmp_path, model_args):
    lines = [json.dumps({"text": f"Document {i}."}).encode() for i in range(8)]
    lines[2] = b'{"text": "bad \xff utf-8"}'
    lines[5] = b'{"text": broken'
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    args = [*model_args, "--input-format", "jsonl", "--bad-lines", "skip"]
    result = invoke("build", path, "-o", tmp_path / "out", *args, check=1)
    assert one_error_line(result.stderr).endswith(f"{path}:6: invalid JSON (Expecting value)")


def test_a_missing_or_bad_tokenizer_is_a_usage_error_before_any_work(tmp_path):
    for model in (tmp_path / "missing.model", SAMPLE):
        result = invoke("build", SAMPLE, "-o", tmp_path / "out", "--spm-model", model, check=2)
        assert str(model) in one_error_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_train_tokenizer_makes_the_folder_of_its_prefix(tmp_path):
    prefix = tmp_path / "spm" / "sub" / "en"
    invoke("train-tokenizer", SAMPLE, "-o", prefix, "--vocab-size", 300)
    assert (tmp_path / "spm" / "sub" / "en.model").stat().st_size > 1000
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("train-tokenizer", SAMPLE, "-o", blocker / "en", check=2)
    assert "cannot create" in one_error_line(result.stderr)


def test_quiet_json_beam_runs_say_nothing_on_stderr(tmp_path, english_model):
    args = ["--spm-model", english_model, "--dupe-factor", 1, "--runner", "direct"]
    result = subprocess.run(
        [str(CLI), "build", str(SAMPLE), "-o", str(tmp_path / "out"), *map(str, args)]
        + ["--workers", "2", "-q", "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["status"] == "ok"


def test_inspect_names_a_corrupt_shard(tmp_path, model_args):
    out = tmp_path / "out"
    invoke("build", SAMPLE, "-o", out, *model_args, "--compression", "gzip")
    shard = shard_paths(out)[0]
    shard.write_bytes(shard.read_bytes()[:-40])
    result = invoke("inspect", out, "--stats", check=1)
    assert one_error_line(result.stderr).startswith(
        f"make-pretrain-records: error: {shard}: unreadable ("
    )


def test_an_input_inside_the_tools_directory_is_refused_before_anything_is_touched(
    tmp_path, model_args
):
    out = tmp_path / "out"
    invoke("build", SAMPLE, "-o", out, "--vocab-size", 400, "--dupe-factor", 1)
    kept = out / ".mpr" / "tokenizer" / "spm.model"
    before = kept.read_bytes()
    result = invoke("build", SAMPLE, "-o", out, "--spm-model", kept, "--force", check=2)
    assert "is inside" in one_error_line(result.stderr)
    assert kept.read_bytes() == before


def test_fifos_and_devices_as_config_or_model_are_usage_errors(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for option in (["--config", fifo], ["--spm-model", fifo], ["--spm-model", "/dev/zero"]):
        result = invoke("build", SAMPLE, "-o", tmp_path / "out", *option, check=2)
        assert "not a regular file" in one_error_line(result.stderr)


def test_a_failed_force_run_leaves_the_published_config_in_charge(tmp_path, model_args):
    out = tmp_path / "out"
    invoke("build", SAMPLE, "-o", out, *model_args)
    (tmp_path / "in").mkdir()
    empty = tmp_path / "in" / "empty.txt"
    empty.write_text("")
    result = invoke("build", empty, "-o", out, *model_args, "--seed", 7, "--force", check=1)
    assert "no text to build from" in one_error_line(result.stderr)
    invoke("build", SAMPLE, "-o", out, *model_args)  # no "built with another config"
    invoke("verify", out)


def test_a_stopped_force_run_of_a_new_config_resumes_without_force(tmp_path, model_args):
    """--force to a new config, the run stopped after its units were kept: the rerun (with or
    without --force) reuses them instead of refusing or dropping them."""
    out = tmp_path / "out"
    invoke("build", SAMPLE, "-o", out, *model_args)
    new = [*model_args, "--seed", 7, "--json"]
    failed = run_cli(
        "build", SAMPLE, "-o", out, *new, "--force", env={"MPR_TEST_HOOKS": "raise=merge"}, check=1
    )
    assert "test hook" in one_error_line(failed.stderr)
    summary = json.loads(run_cli("build", SAMPLE, "-o", out, *new).stdout)
    assert summary["units"]["rebuilt"] == 0 and summary["units"]["reused"] >= 1
    invoke("verify", out)


def test_changing_bad_lines_is_a_config_change(tmp_path, model_args):
    path = tmp_path / "bad.txt"
    path.write_bytes(SAMPLE.read_bytes() + b"\nbad \xff line\n")
    out = tmp_path / "out"
    invoke("build", path, "-o", out, *model_args, "--bad-lines", "skip")
    result = invoke("build", path, "-o", out, *model_args, check=2)
    assert "changed: bad_lines" in one_error_line(result.stderr)
    result = invoke("build", path, "-o", out, *model_args, "--force", check=1)
    assert f"{path}:" in one_error_line(result.stderr) and "invalid UTF-8" in result.stderr


def test_an_input_changed_after_planning_is_refused(tmp_path):
    from pretrain_records.pipeline.reading import inputs, pieces, scanning

    path = tmp_path / "a.txt"
    path.write_bytes(SAMPLE.read_bytes())
    found, _ = inputs.expand([str(path)])
    scanned = scanning.scan(found[0], "lines", 1 << 20, {})
    piece = scanned.piece(scanned.pieces[0])
    pieces.check_unchanged(piece)
    with open(path, "a") as stream:
        stream.write("appended while building\n")
    with pytest.raises(pieces.DataError, match="changed while the build was reading it"):
        pieces.check_unchanged(piece)
