"""An output directory on gs://, end to end: the CLI in subprocesses against a GCS API server on
localhost (gcp-storage-emulator, started by tests/gcs_emulator.py), through the client the tool
uses in production (pipeline/storage/gcs.py). Builds, refreshes, kills, the lock, verify,
inspect and a reader holding its build.

What the emulator does not do as GCS does, and so what is not tested here against real GCS:
- It ignores `ifGenerationMatch` (tests/test_gcs_storage.py shows it): the lock object is
  created with `ifGenerationMatch=0`, and GCS refuses the second of two creations racing at the
  same moment; here only runs one after the other are tested (the second finds the object).
- It ignores the `generation` of a read: a reader pinned to a generation is not tested. The
  tool does not rely on it for readers: no build reuses an object name, so a reader of build k
  reads build k's objects by name until the retention deletes them (then a 404, tested here).
- Its latency, rate limits (429) and transient errors (503), which the client retries, are not
  GCS's; that an upload appears whole or not at all, and that a manifest upload is atomic, is
  GCS's guarantee (the emulator stores an object when its request ends).
- Training-side readers (`load_dataset`, Model Garden) read gs:// with TensorFlow's own GCS
  client, which does not know STORAGE_EMULATOR_HOST: the loader is not run against gs:// here.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from urllib.parse import unquote

import pytest
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.storage import gcs

from tests.conftest import (
    ARGS,
    corpus,
    invoke,
    one_error_line,
    run_cli,
    shard_hashes,
    start_paused,
)

pytest_plugins = ["tests.gcs_emulator"]  # the fixtures gcs_emulator and gcs_bucket

SMALL_UNITS = ["--unit-bytes", 40000]  # the three test files make several units


@pytest.fixture(scope="module")
def korean_model(tmp_path_factory):
    """A SentencePiece model of the Korean reviews (given to every build: none trains one)."""
    prefix = tmp_path_factory.mktemp("spm") / "ko"
    invoke("train-tokenizer", corpus("ko/nsmc_reviews_sample.txt"), "-o", prefix,
           "--vocab-size", 1500, "--language", "ko")  # fmt: skip
    return f"{prefix}.model"


@pytest.fixture()
def gs_args(korean_model):
    return [*ARGS, *SMALL_UNITS, "--spm-model", korean_model]


def change(three_files, number: int) -> None:
    """A new review appended to one of the three files (a refresh with new records)."""
    path = three_files / f"part-{number % 3}.txt"
    path.write_text(path.read_text() + f"\n새로운 리뷰 {number}번입니다. 정말 재미있었어요.\n")


def manifest_of(out: str) -> dict:
    return json.loads(storage.read_bytes(f"{out}/manifest.json"))


def published(out: str) -> dict[str, bytes]:
    """manifest.json and every object it names, by name: what a reader trusting it reads."""
    manifest = manifest_of(out)
    names = [e["name"] for e in manifest["shards"] + manifest["files"]]
    return {"manifest.json": storage.read_bytes(f"{out}/manifest.json")} | {
        name: storage.read_bytes(f"{out}/{name}") for name in names
    }


def gs_shard_hashes(out: str) -> dict[str, str]:
    """Each published shard's file name (without its build folder) -> sha256."""
    return {
        shard["name"].rsplit("/", 1)[1]: storage.file_sha256(f"{out}/{shard['name']}")[1]
        for shard in manifest_of(out)["shards"]
    }


def reader_view(out: str) -> str | None:
    """No build (None), or the folder of the one manifest.json names, every object of which
    matches it, with no stray shard beside them (`verify` exits 0)."""
    if not storage.exists(f"{out}/manifest.json"):
        return None
    result = run_cli("verify", out, check=None)
    assert result.returncode == 0, result.stderr
    return manifest_of(out)["build_dir"]


def ledger(out: str) -> dict[str, str]:
    builds = json.loads(storage.read_bytes(f"{out}/.mpr/builds.json"))["builds"]
    return {b["dir"]: b["state"] for b in builds}


def age_the_lock(out: str) -> None:
    """The lock object of a killed run, made as old as one not refreshed for an hour (GCS has
    no flock: a dead holder's lock is taken over once it is stale, after 10 minutes)."""
    path = f"{out}/.mpr/lock.json"
    held = json.loads(storage.read_bytes(path))
    storage.write_bytes(path, json.dumps({**held, "time": time.time() - 3600}).encode())


def kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture()
def clean(tmp_path, three_files, gs_args):
    """What a refresh must give: a local build of the changed input (change 1), uninterrupted;
    the inputs are put back as they were."""
    original = {p: p.read_bytes() for p in three_files.iterdir()}
    change(three_files, 1)
    invoke("build", three_files, "-o", tmp_path / "clean", *gs_args)
    for path, data in original.items():
        path.write_bytes(data)
    return shard_hashes(tmp_path / "clean")


def test_build_refresh_verify_inspect_and_current_on_gs(gcs_bucket, three_files, gs_args, tmp_path):
    out = f"{gcs_bucket}/out"
    summary = json.loads(run_cli("build", three_files, "-o", out, *gs_args, "--json").stdout)
    assert summary["status"] == "ok" and summary["build_dir"] == "build-00001"
    assert summary["input_path"] == f"{out}/build-00001/train-*-of-*.tfrecord"
    assert storage.listdir(out) == [".mpr", "build-00001", "manifest.json"]
    manifest = manifest_of(out)
    assert sorted(storage.listdir(f"{out}/build-00001")) == sorted(
        e["name"].split("/")[1] for e in manifest["shards"] + manifest["files"]
    )
    assert run_cli("verify", out).stdout == (
        f"{out}: every file matches the manifest and every record's CRCs\n"
    )
    assert run_cli("current", out).stdout == summary["input_path"] + "\n"
    assert run_cli("current", out, "--files").stdout.splitlines() == [
        f"{out}/{s['name']}" for s in manifest["shards"]
    ]

    # inspect reads the records through the tool's GCS client: the same text as for the same
    # build on a local disk (paths aside, which it does not print).
    local = tmp_path / "local"
    invoke("build", three_files, "-o", local, *gs_args)
    assert shard_hashes(local) == gs_shard_hashes(out)
    shown = run_cli("inspect", out, "-n", 2, "--stats").stdout
    assert shown == invoke("inspect", local, "-n", 2, "--stats").stdout
    assert "--- example 1:" in shown and "mixing over 3 input files" in shown
    first = manifest["shards"][0]["name"]
    one = run_cli("inspect", f"{out}/{first}", "-n", 1).stdout
    assert one == invoke("inspect", local / first, "-n", 1).stdout
    assert one.startswith("--- example 0:")

    assert json.loads(run_cli("build", three_files, "-o", out, *gs_args, "--json").stdout)[
        "status"
    ] == ("up-to-date")
    change(three_files, 1)
    refreshed = json.loads(run_cli("build", three_files, "-o", out, *gs_args, "--json").stdout)
    assert refreshed["status"] == "ok" and refreshed["build_dir"] == "build-00002"
    assert refreshed["units"]["rebuilt"] == 1
    assert storage.listdir(out) == [".mpr", "build-00001", "build-00002", "manifest.json"]
    for entry in manifest["shards"] + manifest["files"]:  # the previous one, retained
        assert storage.file_sha256(f"{out}/{entry['name']}") == (entry["bytes"], entry["sha256"])
    invoke("build", three_files, "-o", local, *gs_args)
    assert shard_hashes(local) == gs_shard_hashes(out)
    assert reader_view(out) == "build-00002"
    assert not storage.exists(f"{out}/.mpr/lock.json")  # released


def test_publication_on_gs_copies_and_rewrites_no_shard(gcs_bucket, three_files, gs_args, tmp_path):
    """No object is copied (GCS's rename is a copy) nor written again: a build's shards are
    uploaded once, into their folder, and published by the manifest's upload."""
    out = f"{gcs_bucket}/out"
    log = tmp_path / "requests.log"
    env = {gcs.COUNT_ENV: str(log)}
    run_cli("build", three_files, "-o", out, *gs_args, env=env)
    change(three_files, 1)
    kill(start_paused("publish#1", "build", three_files, "-o", out, *gs_args))
    staged = json.loads(storage.read_bytes(f"{out}/.mpr/staged.json"))
    names = [e["name"] for e in staged["shards"] + staged["files"]]
    generations = {name: gcs.stat(f"{out}/{name}") for name in names}
    age_the_lock(out)
    log.unlink()
    result = run_cli("build", three_files, "-o", out, *gs_args, env=env)
    assert "publishing build-00002, which an earlier run staged" in result.stderr
    assert "merging" not in result.stderr
    assert {name: gcs.stat(f"{out}/{name}") for name in names} == generations
    assert manifest_of(out) == staged
    publishing = gcs.read_request_log(str(log))
    print("requests of the run that published a staged build:", publishing)
    assert publishing["copy"] == 0
    # The staged build is checked by its objects' sizes (metadata), never downloaded.
    reads = [unquote(line) for line in log.read_text().splitlines() if line.startswith("read ")]
    assert reads and not [line for line in reads if "/out/build-00002/" in line], reads

    log.unlink()
    change(three_files, 2)
    result = run_cli("build", three_files, "-o", out, *gs_args, "--retained-builds", 0, env=env)
    assert "removed earlier builds beyond the retention (0): build-00001, build-00002" in (
        result.stderr
    )
    refresh = gcs.read_request_log(str(log))
    print("requests of a refresh that merged, published and collected:", refresh)
    assert refresh["copy"] == 0
    assert refresh["delete"] >= 2 * len(names)  # two earlier builds' objects
    assert storage.listdir(out) == [".mpr", "build-00003", "manifest.json"]
    assert reader_view(out) == "build-00003"


REFRESH_STEPS = {
    # point: (what a reader sees after the kill, what the rerun logs)
    "merge#1": ("build-00001", "merging"),
    "publish#1": ("build-00001", "which an earlier run staged"),
    "committed#1": ("build-00002", "bringing the tool's record of its builds up to date"),
    "collect#1": ("build-00002", "removed earlier builds beyond the retention (0): build-00001"),
}


@pytest.mark.parametrize("point", REFRESH_STEPS)
def test_a_kill_9_on_gs_at_each_step_of_a_publication_then_a_rerun(
    gcs_bucket, three_files, gs_args, clean, point
):
    """A refresh (retained_builds 0: it collects the build it replaces) killed at each step: a
    reader trusting manifest.json sees the old build or the new one, never a mix; the dead
    run's lock object refuses the next run (exit 75) until it is stale; the run after that
    repairs the directory and gives the shards of an uninterrupted local run."""
    out = f"{gcs_bucket}/out"
    args = ("build", three_files, "-o", out, *gs_args, "--retained-builds", 0)
    run_cli(*args)
    before = published(out)
    change(three_files, 1)
    kill(start_paused(point, *args))
    seen, repair = REFRESH_STEPS[point]
    assert reader_view(out) == seen
    if seen == "build-00001":
        assert published(out) == before
    else:
        assert gs_shard_hashes(out) == clean
    refused = run_cli(*args, check=75)
    assert f"{out} is being built by another run" in one_error_line(refused.stderr)
    age_the_lock(out)
    result = run_cli(*args, "--json")
    assert repair in result.stderr
    assert ("merging" in result.stderr) == (point == "merge#1"), result.stderr
    summary = json.loads(result.stdout)
    assert summary["units"]["rebuilt"] == 0  # every unit was complete before these steps
    assert summary["status"] == ("ok" if seen == "build-00001" else "up-to-date")
    assert gs_shard_hashes(out) == clean
    current = summary["build_dir"]
    assert storage.listdir(out) == [".mpr", current, "manifest.json"]
    assert reader_view(out) == current
    assert ledger(out) == {current: "published"}
    assert not storage.exists(f"{out}/.mpr/lock.json")


def test_a_kill_9_on_gs_while_building_a_unit_then_a_rerun(gcs_bucket, three_files, gs_args, clean):
    out = f"{gcs_bucket}/out"
    args = ("build", three_files, "-o", out, *gs_args, "--workers", 1)
    run_cli(*args)
    before = published(out)
    change(three_files, 1)
    kill(start_paused("chunk#1", *args))
    assert published(out) == before and reader_view(out) == "build-00001"
    age_the_lock(out)
    summary = json.loads(run_cli(*args, "--json").stdout)
    assert summary["units"]["rebuilt"] == 1 and summary["build_dir"] == "build-00002"
    assert gs_shard_hashes(out) == clean
    assert ledger(out) == {"build-00001": "retired", "build-00002": "published"}


def test_the_lock_on_gs(gcs_bucket, three_files, gs_args):
    """A second run while one holds the lock exits 75 naming the holder; a run stopped by
    SIGTERM (here in the merge, in its main thread: not stuck inside TensorFlow, which would end
    it as a kill -9 does) removes its lock object; a stale one (its run died long ago, on
    another host) is taken over."""
    out = f"{gcs_bucket}/out"
    args = ("build", three_files, "-o", out, *gs_args, "--workers", 1)
    holder = start_paused("merge#1", *args)
    try:
        lock = json.loads(storage.read_bytes(f"{out}/.mpr/lock.json"))
        assert lock["pid"] == holder.pid
        result = run_cli(*args, check=75)
        assert f"{out} is being built by another run (pid {holder.pid} on " in one_error_line(
            result.stderr
        )
        holder.send_signal(signal.SIGTERM)
        _, stderr = holder.communicate(timeout=120)
        assert holder.returncode == 143
        assert one_error_line(stderr) == "make-pretrain-records: error: terminated (SIGTERM)"
    finally:
        if holder.poll() is None:
            kill(holder)
    assert not storage.exists(f"{out}/.mpr/lock.json")  # a stopped run releases it

    stale = {"owner": "0" * 32, "host": "elsewhere", "pid": 1, "time": time.time() - 3600}
    storage.write_bytes(f"{out}/.mpr/lock.json", json.dumps(stale).encode())
    assert json.loads(run_cli(*args, "--json").stdout)["status"] == "ok"
    assert not storage.exists(f"{out}/.mpr/lock.json")
    fresh = {**stale, "time": time.time()}
    storage.write_bytes(f"{out}/.mpr/lock.json", json.dumps(fresh).encode())
    result = run_cli(*args, check=75)
    assert "(pid 1 on elsewhere)" in one_error_line(result.stderr)
    assert json.loads(storage.read_bytes(f"{out}/.mpr/lock.json")) == fresh  # left to its owner


def test_a_reader_holding_build_k_on_gs_reads_it_byte_for_byte_while_k_plus_1_is_published(
    gcs_bucket, three_files, gs_args
):
    out = f"{gcs_bucket}/out"
    args = ("build", three_files, "-o", out, *gs_args, "--num-shards", 3)
    run_cli(*args)
    build_k = manifest_of(out)  # the reader resolves the manifest once
    paths = [f"{out}/{s['name']}" for s in build_k["shards"]]
    readers = [storage.open_read(path) for path in paths]
    got = [readers[0].read()]  # the first shard read before the refresh, the others after
    change(three_files, 1)
    run_cli(*args)
    assert manifest_of(out)["build_dir"] == "build-00002"
    got += [reader.read() for reader in readers[1:]]
    assert [(len(data), hashlib.sha256(data).hexdigest()) for data in got] == [
        (s["bytes"], s["sha256"]) for s in build_k["shards"]
    ]
    late = storage.open_read(paths[2])  # opened while build k is kept, read once it is gone
    for number in (2, 3):  # retention 1: build k goes at the second refresh after it
        change(three_files, number)
        run_cli(*args)
    assert manifest_of(out)["build_dir"] == "build-00004"
    assert storage.listdir(out) == [".mpr", "build-00003", "build-00004", "manifest.json"]
    with pytest.raises(FileNotFoundError):
        late.read()
    for path in paths:
        with pytest.raises(FileNotFoundError):
            storage.open_read(path)
