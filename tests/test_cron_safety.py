"""Faults a cron or CI run meets: kills, changed inputs, overlapping runs, bad input, full disks."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import ARGS, CLI, corpus, run_cli
from tests.test_build_cli import one_error_line, shard_hashes


def inodes(out):
    return {p.name: p.stat().st_ino for p in out.glob("train-*")}


def start_paused(point, *args):
    """Starts a build that stops at `point` (a test hook); returns once it is there."""
    env = dict(os.environ, MPR_PAUSE_AT=point)
    process = subprocess.Popen(
        [str(CLI), *map(str, args)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines = []
    for line in process.stderr:
        lines.append(line)
        if line.startswith("MPR-PAUSED"):
            return process
    process.wait()
    raise AssertionError(f"the run ended before {point}:\n{''.join(lines)}")


@pytest.mark.parametrize("point", ["tokenizing#3", "shard#2", "manifest"])
def test_kill_9_then_rerun_gives_the_bytes_of_a_clean_run(tmp_path, three_files, point):
    run_cli("build", three_files, "-o", tmp_path / "clean", *ARGS)
    out = tmp_path / "out"
    victim = start_paused(point, "build", three_files, "-o", out, *ARGS)
    staged_before = {
        p.name: p.stat().st_ino
        for p in (out / ".mpr/units").glob("*-*")
        if ".partial-" not in p.name
    }
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (out / "manifest.json").exists()  # every pause point comes before it
    summary = json.loads(run_cli("build", three_files, "-o", out, *ARGS, "--json").stdout)
    assert shard_hashes(out) == shard_hashes(tmp_path / "clean")
    assert not list(out.rglob("*.partial-*"))
    if point == "shard#2":
        # The unit finished before the kill is published as it was, not rewritten.
        assert summary["units"] == {"total": 3, "reused": 1, "rebuilt": 2}
        assert set(staged_before.values()) <= set(inodes(out).values())
    if point == "manifest":
        assert summary["units"]["reused"] == 3
    run_cli("verify", out)


def test_changed_added_and_removed_inputs_rebuild_only_their_shards(tmp_path, three_files):
    out = tmp_path / "out"
    run_cli("build", three_files, "-o", out, *ARGS)
    model = out / "spm.model"
    before = inodes(out)
    assert len(before) == 3

    # Change one file: only its shard is rebuilt; the others keep their very files.
    changed = three_files / "part-1.txt"
    changed.write_text(changed.read_text() + "\n완전히 새로운 리뷰입니다. 정말 재미있었어요.\n")
    summary = json.loads(run_cli("build", three_files, "-o", out, *ARGS, "--json").stdout)
    assert summary["rebuilt_shards"] == ["train-00001-of-00003.tfrecord"]
    assert summary["units"] == {"total": 3, "reused": 2, "rebuilt": 1}
    after = inodes(out)
    assert after["train-00000-of-00003.tfrecord"] == before["train-00000-of-00003.tfrecord"]
    assert after["train-00002-of-00003.tfrecord"] == before["train-00002-of-00003.tfrecord"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["rebuilt_units"]) == 1 and len(manifest["reused_units"]) == 2
    # Identical to a clean build of the new inputs with the same tokenizer.
    run_cli("build", three_files, "-o", tmp_path / "clean", *ARGS, "--spm-model", model)
    assert shard_hashes(out) == shard_hashes(tmp_path / "clean")

    # Add a file: one new unit; the others are renamed (4 shards now), not rewritten.
    (three_files / "part-3.txt").write_text((three_files / "part-0.txt").read_text())
    summary = json.loads(run_cli("build", three_files, "-o", out, *ARGS, "--json").stdout)
    assert summary["rebuilt_shards"] == ["train-00003-of-00004.tfrecord"]
    assert sorted(inodes(out)) == [f"train-0000{i}-of-00004.tfrecord" for i in range(4)]
    assert set(after.values()) <= set(inodes(out).values())

    # Remove one: nothing rebuilt, its shard gone.
    (three_files / "part-0.txt").unlink()
    summary = json.loads(run_cli("build", three_files, "-o", out, *ARGS, "--json").stdout)
    assert summary["rebuilt_shards"] == [] and summary["shards"] == 3
    assert sorted(inodes(out)) == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    run_cli("verify", out)


def test_changed_config_needs_force_and_force_keeps_foreign_files(tmp_path, three_files):
    out = tmp_path / "out"
    run_cli("build", three_files, "-o", out, *ARGS)
    (out / "notes.txt").write_text("mine")
    result = run_cli("build", three_files, "-o", out, *ARGS, "--max-n", 2, check=2)
    assert "was built with another config (changed: max_n)" in result.stderr
    assert "--force" in result.stderr
    run_cli("build", three_files, "-o", out, *ARGS, "--max-n", 2, "--force")
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "manifest.json").read_text())["config"]["max_n"] == 2


def test_foreign_file_under_a_shard_name_is_never_overwritten(tmp_path, three_files):
    out = tmp_path / "out"
    out.mkdir()
    (out / "train-00000-of-00003.tfrecord").write_text("not ours")
    result = run_cli("build", three_files, "-o", out, *ARGS, check=1)
    assert "was not written by this tool; refusing to overwrite it" in one_error_line(result.stderr)
    assert (out / "train-00000-of-00003.tfrecord").read_text() == "not ours"


def test_tampered_manifest_naming_outside_files_is_refused(tmp_path, three_files):
    out = tmp_path / "out"
    run_cli("build", three_files, "-o", out, *ARGS)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"][0]["name"] = "../victim.txt"
    (out / "manifest.json").write_text(json.dumps(manifest))
    for args in (["verify", out], ["build", three_files, "-o", out, *ARGS, "--force"]):
        result = run_cli(*args, check=1)
        assert "refusing file name '../victim.txt'" in result.stderr
    assert victim.read_text() == "keep me"


def test_second_run_exits_75_naming_the_holder_and_a_dead_holders_lock_is_taken(
    tmp_path, three_files
):
    out = tmp_path / "out"
    holder = start_paused("tokenizing", "build", three_files, "-o", out, *ARGS)
    try:
        result = run_cli("build", three_files, "-o", out, *ARGS, check=75)
        assert f"pid {holder.pid}" in result.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    run_cli("build", three_files, "-o", out, *ARGS)
    run_cli("verify", out)


def test_corrupt_gzip_exits_1_naming_it_and_publishes_nothing(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    good = corpus("en/bert_sample_text.txt").read_bytes()
    (folder / "a.txt").write_bytes(good)
    noise = "".join(f"line {i} {i * 7919 % 104729}\n" for i in range(20000)).encode()
    (folder / "b.txt.gz").write_bytes(gzip.compress(noise)[:4000])
    out = tmp_path / "out"
    result = run_cli("build", folder, "-o", out, "--vocab-size", 400, check=1)
    assert one_error_line(result.stderr).endswith(
        f"{folder}/b.txt.gz: corrupt or unreadable "
        "(Compressed file ended before the "
        "end-of-stream marker was reached)"
    )
    assert not list(out.glob("train-*")) and not (out / "manifest.json").exists()


@pytest.mark.parametrize(
    "bad, message",
    [
        (b"caf\xe9 au lait", "invalid UTF-8"),
        (b"nul\x00byte", "NUL byte"),
    ],
)
def test_bad_line_names_file_and_line_or_is_skipped_and_counted(tmp_path, bad, message):
    path = tmp_path / "in.txt"
    lines = corpus("en/bert_sample_text.txt").read_bytes().split(b"\n")
    lines.insert(6, bad)
    path.write_bytes(b"\n".join(lines))
    result = run_cli("build", path, "-o", tmp_path / "out", "--vocab-size", 400, check=1)
    assert f"{path}:7: {message}" in one_error_line(result.stderr)
    summary = json.loads(
        run_cli(
            "build",
            path,
            "-o",
            tmp_path / "out",
            "--vocab-size",
            400,
            "--bad-lines",
            "skip",
            "--json",
        ).stdout
    )
    assert summary["skipped"]["bad_lines"] == 1
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["skipped"]["bad_lines"] == 1


def peak_rss_mb(*args) -> tuple[int, float]:
    """Exit code and peak RSS (MB) of the CLI run as a child of a fresh Python."""
    code = (
        "import resource, subprocess, sys;"
        f"rc = subprocess.call({[str(CLI), *map(str, args)]!r}, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL);"
        "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    rc, mb = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(rc), float(mb)


def test_a_20_mb_line_is_split_and_memory_stays_bounded(tmp_path, english_model):
    small = tmp_path / "small.txt"
    small.write_bytes(corpus("en/bert_sample_text.txt").read_bytes())
    big = tmp_path / "big.txt"
    words = corpus("en/botchan.txt").read_text(encoding="utf-8-sig").split()
    line = " ".join(words)
    with open(big, "w") as stream:
        stream.write(small.read_text() + "\n")
        written = 0
        while written < 20 << 20:
            stream.write(line + " ")
            written += len(line) + 1
        stream.write("\n")
    args = ["--spm-model", english_model, "--dupe-factor", 1, "--sentence-task", "sop"]
    rc_small, small_mb = peak_rss_mb("build", small, "-o", tmp_path / "o1", *args)
    rc_big, big_mb = peak_rss_mb("build", big, "-o", tmp_path / "o2", *args)
    assert rc_small == 0 and rc_big == 0
    summary = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert summary["skipped"]["split_long_lines"] >= 20
    # The whole 20 MB line never sits in memory as text, tokens and instances at once.
    assert big_mb < small_mb + 400, (small_mb, big_mb)


def test_empty_files_are_counted_and_an_all_empty_input_fails_clearly(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.txt").write_text("")
    (folder / "blank.txt").write_text("\n \n")
    result = run_cli("build", folder, "-o", tmp_path / "out", check=1)
    assert "no text to build from" in one_error_line(result.stderr)
    (folder / "real.txt").write_bytes(corpus("en/bert_sample_text.txt").read_bytes())
    summary = json.loads(
        run_cli("build", folder, "-o", tmp_path / "out", "--vocab-size", 400, "--json").stdout
    )
    assert summary["skipped"]["empty_files"] == 2


def test_unwritable_output_exits_1_with_a_clear_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("build", corpus("en/bert_sample_text.txt"), "-o", blocker / "out", check=1)
    assert f"{blocker}/out" in one_error_line(result.stderr)


def test_disk_full_leaves_the_previous_output_intact_and_no_temp_files(tmp_path, three_files):
    out = tmp_path / "out"
    run_cli("build", three_files, "-o", out, *ARGS)
    before = shard_hashes(out)
    manifest_before = (out / "manifest.json").read_bytes()
    changed = three_files / "part-2.txt"
    changed.write_text(changed.read_text() + "\n새 리뷰. 또 다른 문장.\n")
    env = dict(os.environ, MPR_FAULT_DISK_FULL_AFTER="20000")
    result = subprocess.run(
        [str(CLI), "build", three_files, "-o", out, *map(str, ARGS)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in one_error_line(result.stderr)
    assert shard_hashes(out) == before
    assert (out / "manifest.json").read_bytes() == manifest_before
    assert not list(out.rglob("*.partial-*"))
    run_cli("verify", out)
