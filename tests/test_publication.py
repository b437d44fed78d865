"""Builds in folders of their own, published by one write of manifest.json (publication.py).

In process, every test runs on a local directory and on TensorFlow's ram:// filesystem (a
tf.io.gfile filesystem: the tool's remote code paths, no flock, no fsync, sizes and not sha256
checked before a publication). The kills of a real run (kill -9 at each step) are in
tests/test_cron_safety.py, and on a GCS API server in tests/test_gcs_output.py; the end-to-end
tests here (retention through the CLI, a reader holding its build across refreshes, the glob a
trainer takes) run the command on local directories.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, UsageError
from pretrain_records.pipeline.outdir import publication
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.outdir.publication import Publication
from pretrain_records.pipeline.readback.loader import load_dataset
from pretrain_records.pipeline.records import manifest as manifest_lib

from tests.conftest import ARGS, current_build, invoke, run_cli, shard_paths

_ram = itertools.count()


@pytest.fixture(params=["local", "ram"])
def out_path(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return f"ram://publication-test-{os.getpid()}-{next(_ram)}/out"


def shards_of(build: int) -> dict[str, bytes]:
    """Build `build`'s shards: two of them, their bytes saying whose they are."""
    return {f"train-0000{i}-of-00002.tfrecord": f"build {build} shard {i}".encode() for i in (0, 1)}


def stage(pub: Publication, build: int, shards: dict[str, bytes] | None = None) -> dict:
    """Stages build `build` complete (its shards, tokenizer, config, manifest); returns the
    manifest."""
    folder = pub.start(f"id-{build}")
    entries = [
        {**pub.stage_bytes(name, data), "records": 1}
        for name, data in (shards or shards_of(build)).items()
    ]
    files = [pub.stage_bytes("spm.model", b"model"), pub.stage_bytes("config.yaml", b"c: 1\n")]
    manifest = {
        "format": manifest_lib.FORMAT,
        "tool": manifest_lib.TOOL,
        "build": f"id-{build}",
        "build_dir": folder,
        "config": {"compression": "none"},
        "shards": entries,
        "files": files,
    }
    pub.stage_manifest(manifest)
    return manifest


def refresh(out_path: str, build: int, retained: int = 1, inputs: tuple[str, ...] = ()) -> dict:
    """One run's part in the directory: reconcile, stage, publish, collect."""
    out = OutputDir(out_path)
    with out.locked():
        pub = Publication(out)
        pub.reconcile(print)
        manifest = stage(pub, build)
        pub.publish(manifest, print)
        pub.collect(retained, inputs, print)
    return manifest


def folders(out_path: str) -> list[str]:
    return [n for n in storage.listdir(out_path) if publication.BUILD_DIR.fullmatch(n)]


def files_in(out_path: str, folder: str) -> list[str]:
    return storage.listdir(storage.join(out_path, folder))


def ledger(out_path: str) -> dict[str, str]:
    """The ledger's builds: folder -> state."""
    data = json.loads(storage.read_bytes(storage.join(out_path, ".mpr", "builds.json")))
    return {b["dir"]: b["state"] for b in data["builds"]}


def published(out_path: str) -> dict:
    return manifest_lib.read(out_path)


def assert_intact(out_path: str, manifest: dict) -> None:
    """Every file `manifest` names is there with its bytes."""
    for entry in manifest["shards"] + manifest["files"]:
        data = storage.read_bytes(storage.join(out_path, entry["name"]))
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["bytes"], entry["sha256"])


class Killed(BaseException):
    """A kill at a test hook point: no handler runs (it is no Exception)."""


def killed_at(monkeypatch, name: str) -> None:
    """The next `testhooks.point(name)` raises Killed."""
    real = publication.testhooks.point

    def point(where: str) -> None:
        if where == name:
            raise Killed(where)
        real(where)

    monkeypatch.setattr(publication.testhooks, "point", point)


# -- publication ------------------------------------------------------------------------------


def test_each_build_has_a_folder_of_its_own_named_by_the_manifest_alone(out_path):
    first = refresh(out_path, 1)
    assert first["build_dir"] == "build-00001"
    assert [s["name"] for s in first["shards"]] == [
        "build-00001/train-00000-of-00002.tfrecord",
        "build-00001/train-00001-of-00002.tfrecord",
    ]
    assert storage.listdir(out_path) == [".mpr", "build-00001", "manifest.json"]
    assert files_in(out_path, "build-00001") == [
        "config.yaml",
        "spm.model",
        *shards_of(1),
    ]
    assert published(out_path) == first
    second = refresh(out_path, 2)
    assert second["build_dir"] == "build-00002"
    assert storage.listdir(out_path) == [".mpr", "build-00001", "build-00002", "manifest.json"]
    assert published(out_path) == second
    assert_intact(out_path, second)
    assert_intact(out_path, first)  # the previous build, kept for its readers
    assert ledger(out_path) == {"build-00001": "retired", "build-00002": "published"}
    assert not storage.exists(storage.join(out_path, ".mpr", publication.STAGED))


def test_publication_writes_the_manifest_and_moves_no_file(tmp_path):
    out = OutputDir(str(tmp_path / "out"))
    refresh(out.path, 1)
    with out.locked():
        pub = Publication(out)
        manifest = stage(pub, 2)
        folder = tmp_path / "out" / "build-00002"
        before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
        old = {p.name: p.stat().st_ino for p in (tmp_path / "out" / "build-00001").iterdir()}
        pub.publish(manifest, print)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    assert {p.name: p.stat().st_ino for p in (tmp_path / "out" / "build-00001").iterdir()} == old
    assert published(out.path) == manifest


def test_a_staged_file_changed_before_the_publication_stops_it(out_path):
    first = refresh(out_path, 1)
    out = OutputDir(out_path)
    with out.locked():
        pub = Publication(out)
        manifest = stage(pub, 2)
        shard = storage.join(out_path, manifest["shards"][1]["name"])
        storage.write_bytes(shard, b"longer than it was staged")
        with pytest.raises(
            DataError, match="build-00002: a file of the staged build changed before publication"
        ):
            pub.publish(manifest, print)
        assert Publication(out).staged("id-2") is None  # nor published by the next run
    assert published(out_path) == first
    assert_intact(out_path, first)


def test_locally_a_staged_file_of_the_same_size_is_checked_by_its_sha256(tmp_path):
    """The next run publishes a staged build only if its files still have their sha256 (on
    an object store their sizes: hashing would download the build)."""
    out = OutputDir(str(tmp_path / "out"))
    refresh(out.path, 1)
    with out.locked():
        manifest = stage(Publication(out), 2)
        assert Publication(out).staged("id-2") == manifest
        shard = tmp_path / "out" / manifest["shards"][0]["name"]
        shard.write_bytes(shard.read_bytes().upper())
        assert Publication(out).staged("id-2") is None


def test_the_staged_build_is_found_by_its_id_and_only_while_it_is_intact(out_path):
    refresh(out_path, 1)
    out = OutputDir(out_path)
    with out.locked():
        manifest = stage(Publication(out), 2)
        fresh = Publication(out)  # the next run's
        assert fresh.staged("id-3") is None
        assert fresh.staged("id-2") == manifest and fresh.folder == "build-00002"
        storage.remove(storage.join(out_path, manifest["files"][0]["name"]))
        assert Publication(out).staged("id-2") is None


def test_an_unpublished_folder_is_cleared_of_the_tools_files_when_the_next_build_starts(out_path):
    refresh(out_path, 1)
    out = OutputDir(out_path)
    with out.locked():
        stage(Publication(out), 2)  # then the run dies before publishing
        storage.write_bytes(
            storage.join(out_path, "build-00002", "train-00001-of-00002.tfrecord.partial-77"), b"x"
        )
        storage.write_bytes(storage.join(out_path, "build-00002", "notes.txt"), b"the user's")
        pub = Publication(out)
        assert pub.start("id-3") == "build-00003"  # 00002 still holds the user's file
        assert files_in(out_path, "build-00002") == ["notes.txt"]
        assert ledger(out_path) == {"build-00001": "published", "build-00003": "staging"}
        assert not storage.exists(storage.join(out_path, ".mpr", publication.STAGED))
    assert_intact(out_path, published(out_path))


def test_a_run_killed_before_the_manifest_write_leaves_the_old_build_and_its_staged_one(
    out_path, monkeypatch
):
    first = refresh(out_path, 1)
    killed_at(monkeypatch, "publish")
    with pytest.raises(Killed):
        refresh(out_path, 2)
    assert published(out_path) == first
    assert_intact(out_path, first)
    monkeypatch.undo()
    out = OutputDir(out_path)
    with out.locked():  # the next run: its staged build is published as it is
        pub = Publication(out)
        pub.reconcile(print)
        staged = pub.staged("id-2")
        assert staged is not None and staged["build_dir"] == "build-00002"
        pub.publish(staged, print)
        pub.collect(1, (), print)
    assert published(out_path) == staged
    assert_intact(out_path, staged)
    assert ledger(out_path) == {"build-00001": "retired", "build-00002": "published"}


def test_a_run_killed_after_the_manifest_write_is_recorded_by_the_next(out_path, monkeypatch):
    refresh(out_path, 1)
    killed_at(monkeypatch, "committed")
    with pytest.raises(Killed):
        refresh(out_path, 2)
    assert published(out_path)["build_dir"] == "build-00002"
    assert ledger(out_path) == {"build-00001": "published", "build-00002": "staging"}
    monkeypatch.undo()
    out = OutputDir(out_path)
    logged = []
    with out.locked():
        pub = Publication(out)
        pub.reconcile(logged.append)
        assert ledger(out_path) == {"build-00001": "retired", "build-00002": "published"}
        pub.collect(0, (), logged.append)
    assert logged == [
        "bringing the tool's record of its builds up to date",
        "removed earlier builds beyond the retention (0): build-00001",
    ]
    assert folders(out_path) in (["build-00002"], ["build-00001", "build-00002"])  # ram://
    assert files_in(out_path, "build-00001") == []


def test_a_run_killed_while_collecting_leaves_the_rest_to_the_next(out_path, monkeypatch):
    for build in (1, 2):
        refresh(out_path, build)
    killed_at(monkeypatch, "collect")
    with pytest.raises(Killed):
        refresh(out_path, 3, retained=0)
    current = published(out_path)
    assert current["build_dir"] == "build-00003"
    assert_intact(out_path, current)
    assert len(files_in(out_path, "build-00001")) == 4  # the kill came before its deletion
    monkeypatch.undo()
    out = OutputDir(out_path)
    with out.locked():
        Publication(out).collect(0, (), print)
    assert ledger(out_path) == {"build-00003": "published"}
    assert files_in(out_path, "build-00001") == files_in(out_path, "build-00002") == []


def test_a_journal_of_an_older_version_is_refused_and_nothing_is_touched(out_path):
    first = refresh(out_path, 1)
    journal = storage.join(out_path, ".mpr", "journal.json")
    storage.write_bytes(journal, b'{"phase": "new"}')
    out = OutputDir(out_path)
    with out.locked(), pytest.raises(UsageError, match="interrupted; finish it with that version"):
        Publication(out).reconcile(print)
    assert published(out_path) == first
    assert storage.read_bytes(journal) == b'{"phase": "new"}'


# -- retention --------------------------------------------------------------------------------


@pytest.mark.parametrize("retained", [0, 1, 2])
def test_the_retention_keeps_that_many_earlier_builds(out_path, retained):
    manifests = {}
    for build in range(1, 6):
        manifests[build] = refresh(out_path, build, retained)
        kept = list(range(max(1, build - retained), build + 1))
        present = [b for b in manifests if files_in(out_path, f"build-0000{b}")]
        assert present == kept, (build, present)
        for b in kept:
            assert_intact(out_path, manifests[b])
        assert ledger(out_path) == {
            f"build-0000{b}": "published" if b == build else "retired" for b in kept
        }
        assert published(out_path) == manifests[build]


def test_folder_numbers_are_never_reused_after_a_collection(out_path):
    refresh(out_path, 1, retained=0)
    refresh(out_path, 2, retained=0)
    assert refresh(out_path, 3, retained=0)["build_dir"] == "build-00003"


def test_collection_deletes_only_the_tools_files(out_path):
    refresh(out_path, 1)
    notes = storage.join(out_path, "build-00001", "notes.txt")
    storage.write_bytes(notes, b"the user's")
    changed = storage.join(out_path, "build-00001", "config.yaml")
    storage.write_bytes(changed, b"edited by hand, longer than it was\n")
    refresh(out_path, 2, retained=0)
    assert files_in(out_path, "build-00001") == ["config.yaml", "notes.txt"]
    assert storage.read_bytes(notes) == b"the user's"
    assert storage.read_bytes(changed) == b"edited by hand, longer than it was\n"
    assert "build-00001" in storage.listdir(out_path)  # a folder with someone's files stays


def test_an_input_inside_an_old_build_folder_is_never_collected(tmp_path):
    out = str(tmp_path / "out")
    refresh(out, 1)
    model = tmp_path / "out" / "build-00001" / "spm.model"
    refresh(out, 2, retained=0, inputs=(str(model),))
    assert sorted(p.name for p in model.parent.iterdir()) == ["spm.model"]
    assert model.read_bytes() == b"model"
    refresh(out, 3, retained=0, inputs=(str(model),))
    assert model.read_bytes() == b"model"
    refresh(out, 4, retained=0)  # no input of this run any more: the tool's file goes
    assert not model.parent.exists()


def test_an_earlier_build_of_the_first_layout_is_collected_like_any_other(out_path):
    """The first versions kept a build's files at OUT's top level (no build folder, its
    provenance in .mpr): refreshed into build-00001, then collected, the user's files aside."""
    storage.makedirs(out_path)
    entries = []
    for name, data in shards_of(0).items():
        storage.write_bytes(storage.join(out_path, name), data)
        entries.append({"name": name, "bytes": len(data), "records": 1})
        entries[-1]["sha256"] = hashlib.sha256(data).hexdigest()
    storage.makedirs(storage.join(out_path, ".mpr"))
    files = []
    for name, data in (("spm.model", b"model"), (manifest_lib.LEGACY_PROVENANCE, b"prov")):
        storage.write_bytes(manifest_lib.safe_member(out_path, name), data)
        files.append({"name": name, "bytes": len(data)})
        files[-1]["sha256"] = hashlib.sha256(data).hexdigest()
    legacy = {
        "format": 2,
        "tool": manifest_lib.TOOL,
        "build": "id-0",
        "config": {"compression": "none"},
        "shards": entries,
        "files": files,
    }
    storage.write_bytes(storage.join(out_path, "manifest.json"), json.dumps(legacy).encode())
    storage.write_bytes(storage.join(out_path, "notes.txt"), b"the user's")
    assert_intact(out_path, legacy)
    first = refresh(out_path, 1)
    assert first["build_dir"] == "build-00001"
    assert_intact(out_path, legacy)  # retained_builds 1: kept for its readers
    assert ledger(out_path) == {"": "retired", "build-00001": "published"}
    refresh(out_path, 2)
    assert storage.listdir(out_path) == [
        ".mpr",
        "build-00001",
        "build-00002",
        "manifest.json",
        "notes.txt",
    ]
    assert not storage.exists(storage.join(out_path, ".mpr", "provenance.bin"))


# -- through the command ----------------------------------------------------------------------

SMALL_UNITS = ["--unit-bytes", 40000]


def change(three_files: Path, number: int) -> None:
    """A new review appended to one of the three files (a refresh with new records)."""
    path = three_files / f"part-{number % 3}.txt"
    path.write_text(path.read_text() + f"\n새로운 리뷰 {number}번입니다. 정말 재미있었어요.\n")


def test_retention_through_the_cli_and_the_users_files(tmp_path, three_files):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    first = json.loads((out / "manifest.json").read_text())
    (out / "build-00001" / "notes.txt").write_text("mine")
    change(three_files, 1)
    summary = json.loads(
        invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--json").stdout
    )
    assert summary["build_dir"] == "build-00002"
    assert_intact(str(out), first)  # the previous build survives one refresh
    assert run_cli("verify", out).returncode == 0
    change(three_files, 2)
    result = invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    assert "removed earlier builds beyond the retention (1): build-00001" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        ".mpr",
        "build-00001",
        "build-00002",
        "build-00003",
        "manifest.json",
    ]
    assert [p.name for p in (out / "build-00001").iterdir()] == ["notes.txt"]
    assert len(list((out / "build-00002").iterdir())) == len(first["shards"]) + 4
    change(three_files, 3)
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS, "--retained-builds", 0)
    assert sorted(p.name for p in out.iterdir()) == [
        ".mpr",
        "build-00001",
        "build-00004",
        "manifest.json",
    ]
    run_cli("verify", out)


def test_the_users_tokenizer_in_an_old_build_folder_is_never_collected(tmp_path, three_files):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, *SMALL_UNITS)
    model = out / "build-00001" / "spm.model"
    kept = model.read_bytes()
    args = [*ARGS, *SMALL_UNITS, "--spm-model", model, "--retained-builds", 0]
    change(three_files, 1)
    invoke("build", three_files, "-o", out, *args, "--force")  # a given model: another config
    assert current_build(out).name == "build-00002"
    assert [p.name for p in model.parent.iterdir()] == ["spm.model"]
    assert model.read_bytes() == kept
    change(three_files, 2)
    result = invoke("build", three_files, "-o", out, *args)
    assert f"kept {model}: an input of this run" in result.stderr
    assert model.read_bytes() == kept
    assert sorted(p.name for p in out.iterdir()) == [
        ".mpr",
        "build-00001",
        "build-00003",
        "manifest.json",
    ]
    assert (current_build(out) / "spm.model").read_bytes() == kept
    run_cli("verify", out)


def test_current_prints_the_glob_of_exactly_the_manifests_shards(tmp_path, three_files):
    out = tmp_path / "out"
    args = [*ARGS, *SMALL_UNITS, "--num-shards", 3, "--json"]
    invoke("build", three_files, "-o", out, *args)
    change(three_files, 1)
    summary = json.loads(invoke("build", three_files, "-o", out, *args).stdout)
    # A stray file beside the shards that the glob must not take, and the earlier build's.
    (out / "build-00002" / "train-notes.txt").write_text("mine")
    pattern = invoke("current", out).stdout.strip()
    assert pattern == f"{out}/build-00002/train-*-of-*.tfrecord" == summary["input_path"]
    assert summary["build_dir"] == "build-00002"
    assert sorted(glob.glob(pattern)) == [str(p) for p in shard_paths(out)]
    assert sorted(tf.io.gfile.glob(pattern)) == [str(p) for p in shard_paths(out)]
    assert len(glob.glob(f"{out}/build-*/train-*-of-*.tfrecord")) == 6  # two builds' shards
    listed = invoke("current", out, "--files").stdout.splitlines()
    assert listed == [str(p) for p in shard_paths(out)]


def test_current_on_a_gzip_build_and_without_a_build(tmp_path, three_files):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS, "--compression", "gzip")
    pattern = invoke("current", out).stdout.strip()
    assert pattern == f"{out}/build-00001/train-*-of-*.tfrecord.gz"
    assert sorted(glob.glob(pattern)) == [str(p) for p in shard_paths(out)]
    result = invoke("current", tmp_path / "nothing", check=1)
    assert "no manifest (not a finished build?)" in result.stderr


# -- a reader holding its build ---------------------------------------------------------------


def records_of(out: Path, manifest: dict) -> list[bytes]:
    """The serialized records of the build `manifest` names, straight from its files."""
    files = [str(out / s["name"]) for s in manifest["shards"]]
    return [r.numpy() for r in tf.data.TFRecordDataset(files)]


def batch_rows(batch: dict) -> list[bytes]:
    """Each row of a loaded batch as bytes (static records pass through unchanged)."""
    names = sorted(batch)
    return [
        b"".join(np.asarray(batch[k][r]).tobytes() for k in names)
        for r in range(len(batch[names[0]]))
    ]


def parsed_rows(out: Path, manifest: dict, batch: int) -> list[bytes]:
    """What load_dataset (no shuffle) yields from a manifest's files, read independently."""
    spec = {
        name: tf.io.FixedLenFeature(
            feature["shape"], tf.float32 if feature["dtype"] == "float32" else tf.int64
        )
        for name, feature in manifest["features"].items()
    }
    records = records_of(out, manifest)
    rows = []
    for start in range(0, len(records) // batch * batch, batch):
        parsed = tf.io.parse_example(records[start : start + batch], spec)
        parsed = {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in parsed.items()}
        rows.extend(batch_rows({k: v.numpy() for k, v in parsed.items()}))
    return rows


def test_a_reader_holding_build_k_reads_it_byte_for_byte_while_k_plus_1_is_published(
    tmp_path, three_files
):
    out = tmp_path / "out"
    args = [*ARGS, *SMALL_UNITS, "--num-shards", 3]
    invoke("build", three_files, "-o", out, *args)
    build_k = json.loads((out / "manifest.json").read_text())
    expected = parsed_rows(out, build_k, 8)
    assert len(expected) >= 40
    dataset = load_dataset(str(out), batch_size=8, seed=1, epochs=1, shuffle_buffer=0)
    stream = iter(dataset)
    half = len(expected) // 16
    rows = [row for _ in range(half) for row in batch_rows(next(stream))]

    change(three_files, 1)
    summary = json.loads(invoke("build", three_files, "-o", out, *args, "--json").stdout)
    assert summary["status"] == "ok" and summary["build_dir"] == "build-00002"
    build_k1 = json.loads((out / "manifest.json").read_text())
    assert records_of(out, build_k1) != records_of(out, build_k)  # another build indeed

    rows += [row for batch in stream for row in batch_rows(batch)]
    assert rows == expected  # every record build k's, in order, none of build k+1's

    assert_intact(str(out), build_k)  # nothing of build k changed under its reader

    # Two more refreshes (retention 1): builds k and k+1 are collected. A dataset made on k+1
    # earlier raises when it is consumed (its files are gone), never yields another build's.
    held = load_dataset(str(out), batch_size=8, seed=1, epochs=1, shuffle_buffer=0)
    for number in (2, 3):
        change(three_files, number)
        invoke("build", three_files, "-o", out, *args)
    assert not (out / "build-00001").exists() and not (out / "build-00002").exists()
    with pytest.raises(tf.errors.NotFoundError, match=str(out / "build-00002")):
        for _ in held:
            pass
    # A job resolving build k+1's manifest again (it kept a copy) is told the build is gone.
    view = tmp_path / "view"
    view.mkdir()
    (view / "manifest.json").write_text(json.dumps(build_k1))
    (view / "build-00002").symlink_to(out / "build-00002")
    with pytest.raises(manifest_lib.ManifestError) as raised:
        load_dataset(str(view), batch_size=8, seed=1, epochs=1, shuffle_buffer=0)
    first = view / build_k1["shards"][0]["name"]
    assert str(raised.value) == (
        f"{first}: gone (build-00002 was collected after later builds: the retention keeps "
        "retained_builds earlier ones); load the current manifest again"
    )
    run_cli("verify", out)


def test_the_next_run_sweeps_only_dead_writers_temporaries_of_the_tools_files(tmp_path):
    """A kill during a whole-file write leaves `NAME.partial-PID`: the next run removes those
    of a dead process; a live writer's and a user's look-alike files stay."""
    out_path = str(tmp_path / "out")
    refresh(out_path, 1)
    dead = 2**22 + 12345  # above the kernel's pid_max: no process has it
    live = os.getppid()  # a process that runs
    left = {
        "manifest.json.partial-{p}": True,
        "notes.txt.partial-{p}": False,  # a user's file in OUT
        "build-00001/train-00000-of-00002.tfrecord.partial-{p}-7": True,
        "build-00001/draft.partial-{p}": False,  # a user's file in a build folder
        ".mpr/units/u-1/run.bin.partial-{p}": True,
    }
    for name in left:
        for pid in (dead, live):
            path = Path(out_path, name.format(p=pid))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"half")
    refresh(out_path, 2)
    for name, tool_file in left.items():
        assert Path(out_path, name.format(p=live)).exists(), name
        assert Path(out_path, name.format(p=dead)).exists() is not tool_file, name


def test_a_build_folder_linked_back_by_its_user_is_never_deleted_through(tmp_path):
    """A user moved build-00001 away to keep it and linked it back: collection, the sweep and
    the clearing of a staging folder delete nothing through the link."""
    out_path = str(tmp_path / "out")
    refresh(out_path, 1)
    archive = tmp_path / "archive"
    os.rename(Path(out_path, "build-00001"), archive)
    os.symlink(archive, Path(out_path, "build-00001"))
    (archive / "train-00000-of-00002.tfrecord.partial-4194999").write_bytes(b"x")
    before = sorted(p.name for p in archive.iterdir())
    refresh(out_path, 2, retained=0)
    assert sorted(p.name for p in archive.iterdir()) == before
    assert "build-00001" not in ledger(out_path)  # forgotten, not deleted


def test_a_manifest_naming_files_outside_its_build_folder_is_refused(tmp_path):
    out_path = str(tmp_path / "out")
    manifest = refresh(out_path, 1)
    victim = tmp_path / "victim"
    victim.mkdir()
    for hostile in (
        {**manifest, "build_dir": "../victim"},
        {**manifest, "files": [*manifest["files"], {"name": "notes.txt", "bytes": 1}]},
    ):
        with pytest.raises(DataError, match="refusing build folder|outside its build's folder"):
            manifest_lib.parse(json.dumps(hostile).encode(), out_path)
    assert victim.is_dir()


def test_a_failure_collecting_an_old_build_is_a_warning_after_the_publication(
    tmp_path, monkeypatch
):
    out_path = str(tmp_path / "out")
    refresh(out_path, 1)
    real_remove = storage.remove

    def refused(path, *args, **kwargs):
        if "build-00001" in path:
            raise PermissionError(1, "Operation not permitted", path)
        real_remove(path, *args, **kwargs)

    monkeypatch.setattr(publication.storage, "remove", refused)
    logged = []
    out = OutputDir(out_path)
    with out.locked():
        pub = Publication(out)
        pub.reconcile(logged.append)
        manifest = stage(pub, 2)
        pub.publish(manifest, logged.append)
        assert pub.collect(0, (), logged.append) == []
    assert published(out_path)["build_dir"] == "build-00002"
    assert any("warning: could not remove build-00001" in line for line in logged), logged
    assert ledger(out_path)["build-00001"] == "retired"  # tried again by the next run


def test_inspect_of_an_earlier_builds_folder_shows_its_records_not_the_current_totals(
    tmp_path, three_files
):
    out = tmp_path / "out"
    invoke("build", three_files, "-o", out, *ARGS)
    (three_files / "more.txt").write_text("One more line of text here.\nAnd another one.\n" * 40)
    invoke("build", three_files, "-o", out, *ARGS)
    assert current_build(out).name == "build-00002"
    for path in (out / "build-00001", next((out / "build-00001").glob("train-*"))):
        shown = run_cli("inspect", path, "-n", "1", "--stats").stdout
        assert "input tokens" not in shown, shown  # build 2's totals are not build 1's
        assert "records:" in shown
    assert "input tokens" in run_cli("inspect", out, "-n", "1", "--stats").stdout
