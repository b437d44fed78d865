"""What a cron or CI run meets, in real processes: kills at every step, full disks, changed and
empty inputs, overlapping runs, foreign files, tampered manifests, bad input."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import (
    ARGS,
    CLI,
    corpus,
    invoke,
    is_alive,
    one_error_line,
    run_cli,
    shard_hashes,
    start_paused,
    worker_pids,
)

HOOKS = "MPR_TEST_HOOKS"
SMALL_UNITS = ["--unit-bytes", 40000]  # the three test files make several units


def kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def snapshot(out):
    """Every published file's bytes (the tool's private directory aside)."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.name != ".mpr"}


def reader_view_is_consistent(out):
    """What a reader trusting manifest.json sees: no build, or one whose every file matches."""
    if not (out / "manifest.json").exists():
        return None
    result = run_cli("verify", out, check=None)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "manifest.json").read_text())["build"]


@pytest.fixture()
def built(tmp_path, three_files):
    """A finished build of the three files, then a change to one of them (a refresh to come),
    and a clean build of the changed input with the same tokenizer (what a refresh must give)."""
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)  # set-up: in this process
    changed = three_files / "part-1.txt"
    changed.write_text(changed.read_text() + "\n완전히 새로운 리뷰입니다. 정말 재미있었어요.\n")
    clean = tmp_path / "clean"
    model = tmp_path / "model.spm"
    shutil.copy(out / "spm.model", model)
    invoke("build", three_files, "-o", clean, *ARGS, *SMALL_UNITS, "--spm-model", model)
    return out, clean


@pytest.mark.parametrize("point", ["chunk#1", "merge#1"])
def test_kill_9_while_building_then_rerun_gives_the_bytes_of_a_clean_run(built, three_files, point):
    """The refresh has one unit to build (the one the change to part-1.txt touched; the other
    six are kept). Killed at its first chunk, that unit is not complete and the rerun builds it;
    killed at the merge, every unit is complete and the rerun builds none."""
    out, clean = built
    before = snapshot(out)
    victim = start_paused(point, "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    kill(victim)
    assert snapshot(out) == before  # nothing published was touched
    run_cli("verify", out)
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--json").stdout
    )
    assert shard_hashes(out) == shard_hashes(clean)
    rebuilt = {"chunk#1": 1, "merge#1": 0}[point]
    assert summary["units"]["rebuilt"] == rebuilt and summary["units"]["reused"] == 7 - rebuilt
    assert not list(out.rglob("*.partial-*"))
    run_cli("verify", out)


def publication_points(tmp_path, three_files) -> int:
    """How many renames and removals a refresh's publication makes (traced once)."""
    out = tmp_path / "count"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    (three_files / "part-2.txt").write_text((three_files / "part-2.txt").read_text() + "\n끝.\n")
    result = run_cli(
        "build", three_files, "-o", out, *ARGS, *SMALL_UNITS, env={HOOKS: "trace=publish"}
    )
    return result.stderr.count("MPR-POINT publish#")


def test_a_kill_at_every_publication_step_then_a_rerun(tmp_path, three_files):
    steps = publication_points(tmp_path, three_files)
    assert steps >= 8
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    old_build = reader_view_is_consistent(out)
    (three_files / "part-0.txt").write_text((three_files / "part-0.txt").read_text() + "\n새.\n")
    # The refresh staged up to its publication once (units and merge kept), then killed at each
    # publication step in turn; each time the next run repairs the directory.
    template = tmp_path / "template"
    victim = start_paused("publish#1", "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    kill(victim)
    shutil.copytree(out, template, symlinks=True)
    expected = None
    seen = set()
    for step in range(1, steps + 1):
        shutil.rmtree(out)
        shutil.copytree(template, out, symlinks=True)
        victim = start_paused(
            f"publish#{step}", "build", three_files, "-o", out, *ARGS, *SMALL_UNITS
        )
        kill(victim)
        seen.add(reader_view_is_consistent(out))
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
        hashes = shard_hashes(out)
        expected = expected or hashes
        assert hashes == expected, step
        assert reader_view_is_consistent(out) not in (None, old_build)
        assert not (out / ".mpr" / "journal.json").exists()
        assert not (out / ".mpr" / "previous").exists() or not list(
            (out / ".mpr" / "previous").iterdir()
        )
    assert None in seen and old_build in seen and len(seen) == 3  # old, none, new


def test_a_full_disk_at_every_publication_step_leaves_the_old_build(tmp_path, three_files):
    steps = publication_points(tmp_path, three_files)
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    (three_files / "part-0.txt").write_text((three_files / "part-0.txt").read_text() + "\n새.\n")
    before = snapshot(out)
    committed = False
    for step in range(1, steps + 1):
        result = run_cli(
            "build",
            three_files,
            "-o",
            out,
            *ARGS,
            *SMALL_UNITS,
            env={HOOKS: f"fail=publish#{step}"},
            check=None,
        )
        if result.returncode == 0:  # the failure came after the commit: tidying only
            committed = True
            break
        assert result.returncode == 1, result.stderr
        assert "No space left on device" in one_error_line(result.stderr)
        assert snapshot(out) == before, step
        run_cli("verify", out)
    assert committed
    run_cli("verify", out)


def test_a_refresh_whose_inputs_became_empty_keeps_the_last_good_build(built, three_files):
    out, _ = built
    before = snapshot(out)
    for path in three_files.iterdir():
        path.write_text("")
    result = run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, check=1)
    assert "no text to build from" in one_error_line(result.stderr)
    assert snapshot(out) == before
    run_cli("verify", out)


def test_a_disk_full_while_writing_units_leaves_the_previous_output(built, three_files):
    out, _ = built
    before = snapshot(out)
    result = run_cli(
        "build",
        three_files,
        "-o",
        out,
        *ARGS,
        *SMALL_UNITS,
        env={HOOKS: "disk_full_after=20000"},
        check=1,
    )
    assert "No space left on device" in one_error_line(result.stderr)
    assert snapshot(out) == before
    assert not list(out.rglob("*.partial-*"))
    run_cli("verify", out)


def test_an_exception_inside_the_tf_data_pipeline_exits_cleanly(built, three_files):
    out, _ = built
    before = snapshot(out)
    result = run_cli(
        "build",
        three_files,
        "-o",
        out,
        *ARGS,
        *SMALL_UNITS,
        "--workers",
        1,
        env={HOOKS: "raise=chunk#2"},
        check=1,
        timeout=120,
    )
    assert "unexpected" in one_error_line(result.stderr) and "chunk#2" in result.stderr
    assert snapshot(out) == before
    assert not (out / ".mpr" / "units").exists() or all(
        (d / "unit.json").exists() for d in (out / ".mpr" / "units").iterdir()
    )
    run_cli("verify", out)


def test_the_users_tokenizer_inside_out_survives_force(built, three_files):
    out, _ = built
    model = (out / "spm.model").read_bytes()
    run_cli("build", three_files, "-o", out, *ARGS, "--spm-model", out / "spm.model", "--force")
    assert (out / "spm.model").read_bytes() == model
    run_cli("verify", out)


def test_a_first_build_never_overwrites_the_users_config_yaml(tmp_path, three_files):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("mine: true\n")
    result = run_cli("build", three_files, "-o", out, *ARGS, check=2)
    assert f"{out}/config.yaml exists and was not written by this tool" in one_error_line(
        result.stderr
    )
    assert (out / "config.yaml").read_text() == "mine: true\n"


def test_gs_output_never_makes_a_local_folder(tmp_path, three_files):
    env = {"GCS_RETRY_CONFIG_MAX_RETRIES": "0"}
    result = subprocess.run(
        [str(CLI), "build", str(three_files), "-o", "gs://no-such-bucket/out", *map(str, ARGS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "gs://no-such-bucket/out" in one_error_line(result.stderr)
    assert not (tmp_path / "gs:").exists()
    bad = subprocess.run(
        [str(CLI), "build", str(three_files), "-o", "nope://bucket/out", *map(str, ARGS)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert "TensorFlow has no filesystem for nope://" in one_error_line(bad.stderr)
    assert not (tmp_path / "nope:").exists()


def test_a_stray_shard_fails_verify_and_blocks_the_next_build(built, three_files):
    out, _ = built
    shutil.copy(next(out.glob("train-*")), out / "train-00099-of-00099.tfrecord")
    result = run_cli("verify", out, check=1)
    assert "train-00099-of-00099.tfrecord: looks like a shard but is not in the manifest" in (
        result.stderr
    )
    result = run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, check=2)
    assert "train-00099-of-00099.tfrecord exists and was not written by this tool" in (
        one_error_line(result.stderr)
    )


def test_400_shards_under_an_open_file_limit_of_256(tmp_path, three_files):
    out = tmp_path / "out"
    code = (
        "import resource, subprocess, sys;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256));"
        "sys.exit(subprocess.call(sys.argv[1:]))"
    )
    args = [str(CLI), "build", str(three_files), "-o", str(out), *map(str, ARGS)]
    result = subprocess.run(
        [sys.executable, "-c", code, *args, "--num-shards", "400"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = [s["records"] for s in manifest["shards"]]
    assert len(counts) == 400 and max(counts) - min(counts) <= 1
    run_cli("verify", out)


def test_changed_config_needs_force_and_force_keeps_foreign_files(built, three_files):
    out, _ = built
    (out / "notes.txt").write_text("mine")
    result = run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--max-n", 2, check=2)
    assert "was built with another config (changed: max_n)" in one_error_line(result.stderr)
    run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--max-n", 2, "--force")
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "manifest.json").read_text())["config"]["max_n"] == 2
    run_cli("verify", out)


def test_tampered_manifest_naming_outside_files_is_refused(built, three_files, tmp_path):
    out, _ = built
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
    holder = start_paused("chunk", "build", three_files, "-o", out, *ARGS, "--workers", 1)
    try:
        result = run_cli("build", three_files, "-o", out, *ARGS, check=75)
        assert f"pid {holder.pid}" in one_error_line(result.stderr)
    finally:
        kill(holder)
    run_cli("build", three_files, "-o", out, *ARGS)
    run_cli("verify", out)


def test_corrupt_gzip_exits_1_naming_it_and_publishes_nothing(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_bytes(corpus("en/bert_sample_text.txt").read_bytes())
    noise = "".join(f"line {i} {i * 7919 % 104729}\n" for i in range(20000)).encode()
    (folder / "b.txt.gz").write_bytes(gzip.compress(noise)[:4000])
    out = tmp_path / "out"
    result = run_cli("build", folder, "-o", out, "--vocab-size", 400, check=1)
    assert one_error_line(result.stderr).endswith(
        f"{folder}/b.txt.gz: corrupt or unreadable "
        "(Compressed file ended before the end-of-stream marker was reached)"
    )
    assert not list(out.glob("train-*")) and not (out / "manifest.json").exists()


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
    args += ["--workers", 1]
    rc_small, small_mb = peak_rss_mb("build", small, "-o", tmp_path / "o1", *args)
    rc_big, big_mb = peak_rss_mb("build", big, "-o", tmp_path / "o2", *args)
    assert rc_small == 0 and rc_big == 0
    summary = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert summary["skipped"]["split_long_lines"] >= 20
    # The whole 20 MB line never sits in memory as text, tokens and instances at once.
    assert big_mb < small_mb + 400, (small_mb, big_mb)


def test_unwritable_output_exits_1_with_a_clear_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("build", corpus("en/bert_sample_text.txt"), "-o", blocker / "out", check=1)
    assert f"{blocker}/out" in one_error_line(result.stderr)


def stopped(
    process: subprocess.Popen, *signals: signal.Signals, group: bool = False
) -> tuple[int, str]:
    """Sends `signals` (a second after each other; to its whole process group with `group`, as
    `timeout` and systemd do) and returns the exit code and stderr."""
    try:
        for number, sent in enumerate(signals):
            if number:
                time.sleep(1)
            if group:
                os.killpg(process.pid, sent)
            else:
                process.send_signal(sent)
        _, stderr = process.communicate(timeout=120)
    except BaseException:
        kill(process)
        raise
    return process.returncode, stderr


def test_sigterm_while_merging_exits_143_and_the_rerun_resumes(built, three_files):
    out, clean = built
    before = snapshot(out)
    victim = start_paused("merge#1", "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    code, stderr = stopped(victim, signal.SIGTERM)
    assert code == 143
    assert one_error_line(stderr) == "make-pretrain-records: error: terminated (SIGTERM)"
    assert snapshot(out) == before
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--json").stdout
    )
    assert summary["units"]["rebuilt"] == 0  # every unit was complete before the merge
    assert shard_hashes(out) == shard_hashes(clean)


def test_ctrl_c_while_merging_exits_130(built, three_files):
    out, _ = built
    victim = start_paused("merge#1", "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    code, stderr = stopped(victim, signal.SIGINT)
    assert code == 130
    assert one_error_line(stderr) == "make-pretrain-records: error: interrupted"
    run_cli("verify", out)


def test_sigterm_with_tensorflow_stuck_ends_after_the_grace_or_a_second_signal(built, three_files):
    """The main thread waits inside tf.data for a pipeline thread that does not move: Python
    cannot run the handler there, so the watcher ends the run."""
    out, clean = built
    before = snapshot(out)
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--workers", 1)
    victim = start_paused("chunk#1", *args, hooks="stop_grace=2")
    code, stderr = stopped(victim, signal.SIGTERM)
    assert code == 143
    assert one_error_line(stderr).endswith(
        "stopped at once (still running 2 s after SIGTERM); a rerun resumes"
    )
    victim = start_paused("chunk#1", *args)  # the default grace: 30 s
    started = time.monotonic()
    code, stderr = stopped(victim, signal.SIGTERM, signal.SIGTERM)
    assert code == 143 and time.monotonic() - started < 20
    assert "stopped at once (a second SIGTERM)" in one_error_line(stderr)
    assert snapshot(out) == before
    run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    assert shard_hashes(out) == shard_hashes(clean)


def test_sigterm_to_the_group_of_a_build_with_workers_exits_143_and_stops_them(
    built, three_files, tmp_path
):
    _, clean = built
    out = tmp_path / "fresh"
    args = (
        "build",
        three_files,
        "-o",
        out,
        *ARGS,
        *SMALL_UNITS,
        "--spm-model",
        tmp_path / "model.spm",
    )
    victim = start_paused("chunk#1", *args, "--workers", 2, own_group=True)
    try:
        workers = worker_pids(victim.pid)
        assert len(workers) == 2
        code, stderr = stopped(victim, signal.SIGTERM, group=True)  # workers get it: ignored
        assert code == 143
        assert one_error_line(stderr) == "make-pretrain-records: error: terminated (SIGTERM)"
        deadline = time.monotonic() + 10
        while any(map(is_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(is_alive, workers))
    finally:
        with contextlib.suppress(ProcessLookupError):  # its own group: out of CI's reach
            os.killpg(victim.pid, signal.SIGKILL)
    assert not (out / "manifest.json").exists()
    run_cli(*args, "--workers", 2)
    assert shard_hashes(out) == shard_hashes(clean)


@pytest.mark.parametrize("hook", ["pause", "raise"])
def test_an_interrupt_or_error_right_after_the_commit_keeps_the_new_build(built, three_files, hook):
    """SIGTERM (or an error: an object store's copy-rename whose delete failed) just after the
    new manifest is in place: nothing is rolled back under it; the next run tidies."""
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    if hook == "pause":
        code, stderr = stopped(start_paused("committed#1", *args), signal.SIGTERM)
        assert code == 143 and "terminated (SIGTERM)" in one_error_line(stderr)
        assert (out / ".mpr" / "journal.json").exists()  # the tidying is left to the next run
    else:
        result = run_cli(*args, env={HOOKS: "raise=committed"})
        assert "warning: the build is published; its last step failed" in result.stderr
    assert shard_hashes(out) == shard_hashes(clean)
    run_cli("verify", out)
    summary = json.loads(run_cli(*args, "--json").stdout)
    assert summary["status"] == "up-to-date"
    assert not (out / ".mpr" / "journal.json").exists()
    assert not (out / ".mpr" / "previous").exists()
    run_cli("verify", out)


def test_a_staged_build_changed_before_its_publication_is_merged_again(built, three_files):
    """A run stopped before publishing leaves a staged build; a shard of it changed meanwhile
    is not published as it is: the next run merges again."""
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    kill(start_paused("publish#1", *args))
    staged = sorted((out / ".mpr" / "staging").glob("train-*"))
    assert staged
    staged[0].write_bytes(staged[0].read_bytes()[:-1] + b"\0")
    result = run_cli(*args)
    assert f"merging again: {staged[0]} does not match the staged manifest" in result.stderr
    assert shard_hashes(out) == shard_hashes(clean)
    run_cli("verify", out)
