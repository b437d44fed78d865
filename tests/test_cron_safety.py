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
    current_build,
    invoke,
    is_alive,
    one_error_line,
    run_cli,
    shard_hashes,
    shard_paths,
    start_paused,
    worker_pids,
)

HOOKS = "MPR_TEST_HOOKS"
SMALL_UNITS = ["--unit-bytes", 40000]  # the three test files make several units


def kill(process):
    process.send_signal(signal.SIGKILL)
    process.wait()


def snapshot(out):
    """Every file's bytes under OUT, by relative path (the tool's private directory aside)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.relative_to(out).parts[0] != ".mpr"
    }


def published(out):
    """manifest.json and every file it names, by name: what a reader trusting it reads."""
    manifest = json.loads((out / "manifest.json").read_text())
    names = [e["name"] for e in manifest["shards"] + manifest["files"]]
    return {"manifest.json": (out / "manifest.json").read_bytes()} | {
        name: (out / name).read_bytes() for name in names
    }


def reader_view(out):
    """What a reader trusting manifest.json sees: no build (None), or the folder of one whose
    every file matches it, with no stray shard beside them (`verify` exits 0)."""
    if not (out / "manifest.json").exists():
        return None
    result = run_cli("verify", out, check=None)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "manifest.json").read_text())["build_dir"]


def ledger(out):
    """The tool's ledger of its builds: folder -> state."""
    builds = json.loads((out / ".mpr" / "builds.json").read_text())["builds"]
    return {b["dir"]: b["state"] for b in builds}


def tidy(out, *folders, partials=True):
    """OUT holds the manifest and exactly these build folders, the ledger lists them (the last
    one published), and nothing is left half done: no partial file, no unpublished build
    waiting (a staged manifest left by a run killed right after its commit names the
    published build: harmless, the next build's start removes it)."""
    names = sorted(p.name for p in out.iterdir() if partials or ".partial-" not in p.name)
    assert names == [".mpr", *sorted(folders), "manifest.json"]
    assert reader_view(out) == folders[-1]
    assert ledger(out) == {f: "published" if f == folders[-1] else "retired" for f in folders}
    staged = out / ".mpr" / "staged.json"
    if staged.exists():
        current = json.loads((out / "manifest.json").read_text())
        assert json.loads(staged.read_text())["build"] == current["build"]
    if partials:
        assert not list(out.rglob("*.partial-*"))


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
    shutil.copy(current_build(out) / "spm.model", model)
    invoke("build", three_files, "-o", clean, *ARGS, *SMALL_UNITS, "--spm-model", model)
    return out, clean


@pytest.mark.parametrize("point", ["chunk#1", "merge#1"])
def test_kill_9_while_building_then_rerun_gives_the_bytes_of_a_clean_run(built, three_files, point):
    """The refresh has one unit to build (the one the change to part-1.txt touched; the other
    six are kept). Killed at its first chunk, that unit is not complete and the rerun builds it;
    killed at the merge, every unit is complete and the rerun builds none."""
    out, clean = built
    before = published(out)
    victim = start_paused(point, "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    kill(victim)
    assert published(out) == before  # nothing published was touched
    assert reader_view(out) == "build-00001"
    summary = json.loads(
        run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--json").stdout
    )
    assert shard_hashes(out) == shard_hashes(clean)
    rebuilt = {"chunk#1": 1, "merge#1": 0}[point]
    assert summary["units"]["rebuilt"] == rebuilt and summary["units"]["reused"] == 7 - rebuilt
    tidy(out, "build-00001", summary["build_dir"])  # a killed merge's folder is cleared


REFRESH_STEPS = {
    # point: (what a reader sees after the kill, what the rerun logs)
    "merge#1": ("old", "merging"),
    "publish#1": ("old", "which an earlier run staged"),
    "committed#1": ("new", "bringing the tool's record of its builds up to date"),
    "collect#1": ("new", "removed earlier builds beyond the retention (0): build-00001"),
}


@pytest.mark.parametrize("point", REFRESH_STEPS)
def test_a_kill_9_at_each_step_of_a_publication_then_a_rerun(built, three_files, point):
    """A refresh (retained_builds 0, so that it collects the build it replaces) killed at each
    step: a reader trusting manifest.json sees the old build or the new one, whole and
    verify-clean; the rerun repairs the directory (publishes a complete staged build without
    merging again, merges again, or tidies) and gives the shards of an uninterrupted run."""
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--retained-builds", 0)
    before = published(out)
    kill(start_paused(point, *args))
    seen, repair = REFRESH_STEPS[point]
    if seen == "old":
        assert reader_view(out) == "build-00001"
        assert published(out) == before
    else:
        assert reader_view(out) == "build-00002"
        assert shard_hashes(out) == shard_hashes(clean)
    result = run_cli(*args, "--json")
    assert repair in result.stderr
    summary = json.loads(result.stdout)
    assert summary["units"]["rebuilt"] == 0  # every unit was complete before these steps
    merged = "merging" in result.stderr
    assert merged == (point == "merge#1"), result.stderr
    assert summary["status"] == ("ok" if seen == "old" else "up-to-date")
    assert shard_hashes(out) == shard_hashes(clean)
    tidy(out, summary["build_dir"])


CRASH_SYSCALLS = ("rename", "unlink", "rmdir")  # how the tool replaces and deletes files


def kill_points(syscall: str, count: int) -> list[int]:
    """Every rename (each one a step of the protocol); of the unlinks and rmdirs (deletions
    of the same kind, one file after another), the first and last four and an even spread of
    the rest, 16 at most: the suite's time stays bounded whatever the build's file count."""
    if syscall == "rename" or count <= 16:
        return list(range(1, count + 1))
    spread = range(5, count - 3, max(1, (count - 8) // 8))
    return sorted({*range(1, 5), *spread, *range(count - 3, count + 1)})


def syscall_counts(log: str, pid: int) -> dict[str, int]:
    """How many times process `pid` (its main thread) made each of CRASH_SYSCALLS, from an
    `strace -f -o` log."""
    counts = dict.fromkeys(CRASH_SYSCALLS, 0)
    for line in log.splitlines():
        found, _, call = line.partition(" ")
        name = call.strip().split("(", 1)[0]
        if found == str(pid) and name in counts:
            counts[name] += 1
    return counts


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (its --inject)")
def test_a_kill_at_every_rename_unlink_and_rmdir_of_a_refresh(built, three_files, tmp_path):
    """strace kills the refresh (retained_builds 0: it collects the build it replaces) at the
    N-th rename, unlink or rmdir of its main thread, for every N of its renames and a spread of
    its unlinks and rmdirs (kill_points), from the same state
    each time; no hook in the code. Each time, a reader trusting manifest.json sees the old
    build or the new one, verify-clean; the next run repairs the directory and gives the shards
    of an uninterrupted run."""
    from pretrain_records.pipeline.readback.verification import verify

    out, clean = built
    template = tmp_path / "template"
    shutil.copytree(out, template, symlinks=True)
    before = published(out)
    refresh = [str(CLI), "build", str(three_files), "-o", str(out), *map(str, ARGS)]
    refresh += [*map(str, SMALL_UNITS), "--retained-builds", "0", "--workers", "1", "-q"]
    log = tmp_path / "strace.log"
    traced = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(log), "-e", f"trace={','.join(CRASH_SYSCALLS)}"] + refresh
    )
    assert traced.wait(timeout=600) == 0
    counts = syscall_counts(log.read_text(), int(log.read_text().split(" ", 1)[0]))
    assert counts["rename"] >= 8 and counts["unlink"] >= 5, counts
    assert shard_hashes(out) == shard_hashes(clean)
    seen, leftovers = set(), {}
    for syscall, count in counts.items():
        for nth in kill_points(syscall, count):
            shutil.rmtree(out)
            shutil.copytree(template, out, symlinks=True)
            inject = f"--inject={syscall}:signal=KILL:when={nth}"
            killed = subprocess.run(
                ["strace", "-f", "-qq", "-o", os.devnull, inject] + refresh, timeout=600
            )
            assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), (syscall, nth)
            if (out / "manifest.json").exists():
                assert verify(str(out)) == [], (syscall, nth)
                view = json.loads((out / "manifest.json").read_text())["build_dir"]
                assert view in ("build-00001", "build-00002"), (syscall, nth)
                if view == "build-00001":
                    assert published(out) == before, (syscall, nth)
                seen.add(view)
            else:
                seen.add(None)
            invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--retained-builds", 0)
            assert shard_hashes(out) == shard_hashes(clean), (syscall, nth)
            tidy(out, current_build(out).name, partials=False)
            left = sorted(str(p.relative_to(out)) for p in out.rglob("*.partial-*"))
            if left:
                leftovers[f"{syscall} #{nth}"] = left
    assert seen == {"build-00001", "build-00002"}  # never no build: it is a refresh
    # Checked last, so that every kill point is checked above: a temporary file of a write the
    # kill interrupted is not left behind by the next run.
    assert leftovers == {}


@pytest.mark.parametrize("point", ["merge#1", "publish#1"])
def test_a_full_disk_before_the_commit_leaves_the_old_build(built, three_files, point):
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    before = published(out)
    result = run_cli(*args, env={HOOKS: f"fail={point}"}, check=1)
    assert "No space left on device" in one_error_line(result.stderr)
    assert published(out) == before
    assert reader_view(out) == "build-00001"
    summary = json.loads(run_cli(*args, "--json").stdout)
    assert summary["status"] == "ok" and summary["units"]["rebuilt"] == 0
    assert shard_hashes(out) == shard_hashes(clean)
    tidy(out, "build-00001", current_build(out).name)


def test_a_refresh_whose_inputs_became_empty_keeps_the_last_good_build(built, three_files):
    out, _ = built
    before = snapshot(out)
    assert any(name.startswith("build-00001/train-") for name in before)
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
    given = out / "build-00001" / "spm.model"
    model = given.read_bytes()
    args = ("build", three_files, "-o", out, *ARGS, "--spm-model", given, "--retained-builds", 0)
    run_cli(*args, "--force")
    assert given.read_bytes() == model
    assert [p.name for p in given.parent.iterdir()] == ["spm.model"]  # the tool's files went
    assert (current_build(out) / "spm.model").read_bytes() == model
    run_cli("verify", out)


def test_the_users_files_at_the_top_level_are_left_as_they_are(tmp_path, three_files):
    """Builds write in folders of their own: a config.yaml, spm.model or train-* file of the
    user's at OUT's top level is in nobody's way; a manifest.json not the tool's still is."""
    out = tmp_path / "out"
    out.mkdir()
    mine = {
        "config.yaml": b"mine: true\n",
        "spm.model": b"my model",
        "train-00000-of-00001.tfrecord": b"my records",
    }
    for name, data in mine.items():
        (out / name).write_bytes(data)
    run_cli("build", three_files, "-o", out, *ARGS, "--retained-builds", 0)
    (three_files / "part-0.txt").write_text((three_files / "part-0.txt").read_text() + "\n끝.\n")
    run_cli("build", three_files, "-o", out, *ARGS, "--retained-builds", 0)
    assert {name: (out / name).read_bytes() for name in mine} == mine
    assert reader_view(out) == "build-00002"

    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text('{"name": "my package"}')
    result = run_cli("build", three_files, "-o", other, *ARGS, check=2)
    assert f"{other}/manifest.json exists and was not written by this tool" in one_error_line(
        result.stderr
    )
    assert (other / "manifest.json").read_text() == '{"name": "my package"}'
    assert sorted(p.name for p in other.iterdir()) == [".mpr", "manifest.json"]


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


def test_a_stray_shard_fails_verify_and_is_never_collected(built, three_files):
    """A train-* file in the build folder that the manifest does not name would be read by a
    trainer's glob: verify reports it. The next refresh publishes a folder of its own without
    it, and collecting the old build leaves it (it is not the tool's), with its folder."""
    out, _ = built
    stray = out / "build-00001" / "train-00099-of-00099.tfrecord"
    shutil.copy(shard_paths(out)[0], stray)
    result = run_cli("verify", out, check=1)
    assert result.stderr.splitlines() == [
        f"make-pretrain-records: verify: {stray}: looks like a shard but is not in the manifest "
        "(a reader globbing the build's train-* would read it)"
    ]
    run_cli("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--retained-builds", 0)
    assert reader_view(out) == "build-00002"
    assert [p.name for p in stray.parent.iterdir()] == [stray.name]


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
    assert not list(out.rglob("train-*")) and not (out / "manifest.json").exists()


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
    before = published(out)
    victim = start_paused("merge#1", "build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    code, stderr = stopped(victim, signal.SIGTERM)
    assert code == 143
    assert one_error_line(stderr) == "make-pretrain-records: error: terminated (SIGTERM)"
    assert published(out) == before
    assert reader_view(out) == "build-00001"
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


def test_sigterm_right_after_the_commit_keeps_the_new_build(built, three_files):
    """SIGTERM just after the new manifest is in place, before the ledger records it: nothing is
    undone under it; the next run brings the ledger up to date."""
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    code, stderr = stopped(start_paused("committed#1", *args), signal.SIGTERM)
    assert code == 143 and "terminated (SIGTERM)" in one_error_line(stderr)
    assert reader_view(out) == "build-00002"
    assert shard_hashes(out) == shard_hashes(clean)
    assert ledger(out) == {"build-00001": "published", "build-00002": "staging"}
    summary = json.loads(run_cli(*args, "--json").stdout)
    assert summary["status"] == "up-to-date" and summary["build_dir"] == "build-00002"
    tidy(out, "build-00001", "build-00002")


def test_a_staged_build_changed_before_its_publication_is_merged_again(built, three_files):
    """A run stopped before publishing leaves a staged build; a shard of it changed meanwhile
    (same size, other bytes) is not published as it is: the next run merges again."""
    out, clean = built
    args = ("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    kill(start_paused("publish#1", *args))
    staged = sorted((out / "build-00002").glob("train-*"))
    assert staged and (out / ".mpr" / "staged.json").exists()
    staged[0].write_bytes(staged[0].read_bytes()[:-1] + b"\0")
    result = run_cli(*args)
    assert "merging" in result.stderr and "which an earlier run staged" not in result.stderr
    assert shard_hashes(out) == shard_hashes(clean)
    tidy(out, "build-00001", current_build(out).name)
