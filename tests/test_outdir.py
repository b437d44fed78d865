"""The output directory's protocol, in process: publication, roll back, recovery, ownership.

Every test runs on a local directory and on TensorFlow's ram:// filesystem (a tf.io.gfile
filesystem: the remote code paths, no flock, no fsync). Not covered: TensorFlow's ram:// rename
is an atomic move, as a local one is, not an object store's copy then delete, so no publication
step here is ever a copy done but its delete not, and the roll back's and recovery's branches
for such a half-done copy-rename never run. A test against a GCS emulator is planned for them.
"""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline import outdir, storage
from pretrain_records.pipeline.errors import DataError, UsageError
from pretrain_records.pipeline.events import Quiet

_ram = itertools.count()


@pytest.fixture(params=["local", "ram"])
def out_path(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return f"ram://outdir-test-{next(_ram)}/out"


def entry(name: str, data: bytes) -> dict:
    return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def stage_build(out: outdir.OutputDir, shards: dict[str, bytes], build: str, model=b"model"):
    """A complete staged build: its shards, its other files, its manifest."""
    out.clear_staging()
    entries = []
    for name, data in shards.items():
        storage.write_bytes(out.staged(name), data)
        entries.append({**entry(name, data), "records": 1})
    files = [out.stage_bytes("spm.model", model), out.stage_bytes("config.yaml", b"config\n")]
    manifest = {
        "format": manifest_lib.FORMAT,
        "tool": manifest_lib.TOOL,
        "build": build,
        "config": {"compression": "none"},
        "shards": entries,
        "files": files,
    }
    out.stage_manifest(manifest)
    return manifest


def public_state(out: outdir.OutputDir) -> dict[str, bytes]:
    return {
        name: storage.read_bytes(storage.join(out.path, name))
        for name in storage.listdir(out.path)
        if name != ".mpr"
    }


OLD = {"train-00000-of-00002.tfrecord": b"old-0", "train-00001-of-00002.tfrecord": b"old-1"}
NEW = {f"train-0000{i}-of-00003.tfrecord": f"new-{i}".encode() for i in range(3)}
# A refresh whose shards keep their names: a public name then holds the old file or the new.
SAME_NAMES = {name: b"new " + data for name, data in OLD.items()}


@pytest.fixture(params=["other names", "same names"])
def new_build(request):
    return NEW if request.param == "other names" else SAME_NAMES


def published_old(out_path):
    out = outdir.OutputDir(out_path)
    with out.locked():
        stage_build(out, OLD, "old")
        out.publish(print)
    return out


def test_first_publication_and_a_refresh(out_path):
    out = published_old(out_path)
    state = public_state(out)
    assert set(state) == {*OLD, "spm.model", "config.yaml", "manifest.json"}
    assert manifest_lib.read(out.path)["build"] == "old"
    with out.locked():
        stage_build(out, NEW, "new")
        out.publish(print)
    state = public_state(out)
    assert set(state) == {*NEW, "spm.model", "config.yaml", "manifest.json"}
    assert all(state[n] == d for n, d in NEW.items())
    assert not storage.exists(out.private("journal.json"))
    assert storage.listdir(out.private("previous")) == []


def count_steps(out_path, new_build) -> int:
    """Publication steps (renames and removals) of the OLD -> new_build refresh."""
    calls = []
    out = published_old(out_path)
    original = out._step
    out._step = lambda: (calls.append(1), original())[1]
    with out.locked():
        stage_build(out, new_build, "new")
        out.publish(print)
    return len(calls)


def test_a_failure_at_any_step_before_the_commit_leaves_the_old_build(out_path, new_build):
    steps = count_steps(out_path.replace("/out", "/count"), new_build)
    commit = None
    for step in range(1, steps + 1):
        path = f"{out_path}-{step}"
        out = published_old(path)
        before = public_state(out)
        calls = []

        def failing(step=step, calls=calls):
            calls.append(1)
            if len(calls) == step:
                raise OSError(28, "No space left on device (test)")

        out._step = failing
        with out.locked():
            stage_build(out, new_build, "new")
            try:
                out.publish(lambda m: None)
                committed = True
            except OSError:
                committed = False
        after = public_state(out)
        if committed:  # failures after the commit only leave tidying for the next run
            commit = commit or step
            assert manifest_lib.read(out.path)["build"] == "new"
            assert all(after[n] == d for n, d in new_build.items())
        else:
            assert commit is None, "a failure after a commit point must not roll back"
            assert after == before, step
            assert not storage.exists(out.private("journal.json"))
            assert out.staged_manifest()["build"] == "new"  # published by the next run
    assert commit is not None and commit > 3


def test_a_kill_at_any_step_is_repaired_by_the_next_run(out_path, new_build):
    steps = count_steps(out_path.replace("/out", "/count"), new_build)
    for step in range(1, steps + 1):
        path = f"{out_path}-{step}"
        out = published_old(path)
        before = public_state(out)

        class Killed(BaseException):
            pass

        calls = []

        def kill(step=step, calls=calls):
            calls.append(1)
            if len(calls) == step:
                raise Killed()

        out._step = kill
        out._roll_back = lambda journal: None  # a kill runs no handler
        with out.locked():
            stage_build(out, new_build, "new")
            try:
                out.publish(lambda m: None)
            except Killed:
                pass
        # What a reader trusting manifest.json sees now: the old build, none, or the new one.
        seen = public_state(out)
        if "manifest.json" in seen:
            build = manifest_lib.parse(seen["manifest.json"], out.path)
            for shard in build["shards"]:
                assert hashlib.sha256(seen[shard["name"]]).hexdigest() == shard["sha256"]
        fresh = outdir.OutputDir(path)
        with fresh.locked():
            fresh.recover(lambda m: None)
            state = public_state(fresh)
            if manifest_lib.read(fresh.path)["build"] == "old":
                assert state == before, step
                fresh.publish(lambda m: None)
        assert all(public_state(fresh)[n] == d for n, d in new_build.items())
        assert manifest_lib.read(fresh.path)["build"] == "new"
        assert not storage.exists(fresh.private("journal.json"))


def test_unchanged_files_stay_where_they_are(tmp_path):
    out = published_old(str(tmp_path / "out"))
    inode = (tmp_path / "out" / "spm.model").stat().st_ino
    with out.locked():
        stage_build(out, NEW, "new")
        out.publish(print)
    assert (tmp_path / "out" / "spm.model").stat().st_ino == inode


def test_a_foreign_file_where_the_tool_writes_is_refused(out_path):
    out = outdir.OutputDir(out_path)
    storage.makedirs(out.path)
    storage.write_bytes(storage.join(out.path, "config.yaml"), b"mine")
    storage.write_bytes(storage.join(out.path, "notes.txt"), b"mine too")
    with pytest.raises(UsageError, match="config.yaml exists and was not written by this tool"):
        out.check_foreign(None)
    storage.remove(storage.join(out.path, "config.yaml"))
    out.check_foreign(None)  # a file of another name is no business of the tool
    published_old(out_path)
    storage.write_bytes(storage.join(out.path, "train-00002-of-00002.tfrecord"), b"stray")
    with pytest.raises(UsageError, match="train-00002-of-00002.tfrecord exists and was not"):
        out.check_foreign(out.published_manifest())


def test_a_published_file_someone_changed_is_not_the_tools_any_more(out_path):
    out = published_old(out_path)
    storage.write_bytes(storage.join(out.path, "train-00000-of-00002.tfrecord"), b"edited")
    with pytest.raises(DataError, match="changed since this tool wrote it"):
        out.check_owned(out.published_manifest())


def test_a_foreign_manifest_is_refused(out_path):
    out = outdir.OutputDir(out_path)
    storage.makedirs(out.path)
    storage.write_bytes(storage.join(out.path, "manifest.json"), b'{"name": "my package"}')
    with pytest.raises(UsageError, match="manifest.json exists and was not written by this tool"):
        out.published_manifest()


def test_inputs_inside_the_output_directory(tmp_path):
    out = published_old(str(tmp_path / "out"))
    model = str(tmp_path / "out" / "spm.model")
    out.check_inputs([model], {"spm.model": b"model"})  # the same bytes: left as it is
    with pytest.raises(UsageError, match="is an input and a file this tool writes"):
        out.check_inputs([model], {"spm.model": b"another model"})
    storage.write_bytes(out.private("mine.txt"), b"x")
    with pytest.raises(UsageError, match="inside .*\\.mpr, the tool's own files"):
        out.check_inputs([out.private("mine.txt")], {})


def test_an_unknown_scheme_is_a_usage_error_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="TensorFlow has no filesystem for nope://"):
        outdir.OutputDir("nope://bucket/out")
    assert list(tmp_path.iterdir()) == []


def test_quiet_events_accept_everything():
    events = Quiet()
    events.start_units(10, 1)
    events.advance(5, 2)
    events.finish_units()


def test_a_file_changed_during_the_build_stops_the_publication(tmp_path):
    out = published_old(str(tmp_path / "out"))
    with out.locked():
        stage_build(out, NEW, "new")
        (tmp_path / "out" / "train-00000-of-00002.tfrecord").write_bytes(b"the user's own")
        with pytest.raises(DataError, match="changed since this tool wrote it"):
            out.publish(print)
    assert (tmp_path / "out" / "train-00000-of-00002.tfrecord").read_bytes() == b"the user's own"
    assert manifest_lib.read(out.path)["build"] == "old"


def test_links_under_the_private_directory_are_refused(tmp_path):
    user = tmp_path / "user"
    (user / "units").mkdir(parents=True)
    (user / "units" / "keep.txt").write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".mpr").symlink_to(user)
    with pytest.raises(UsageError, match="is a symbolic link"):
        with outdir.OutputDir(str(out)).locked():
            pass
    (out / ".mpr").unlink()
    (out / ".mpr").mkdir()
    (out / ".mpr" / "previous").symlink_to(user)
    with pytest.raises(UsageError, match="previous is a symbolic link"):
        with outdir.OutputDir(str(out)).locked():
            pass
    assert (user / "units" / "keep.txt").read_text() == "precious"


def test_a_journal_the_tool_did_not_write_touches_nothing(tmp_path):
    out = published_old(str(tmp_path / "out"))
    (tmp_path / "out" / "notes.txt").write_text("mine")
    for journal in ([], {"phase": "new", "new": ["notes.txt"], "old": [], "manifest_sha256": "x"}):
        storage.write_bytes(out.private("journal.json"), json.dumps(journal).encode())
        with out.locked(), pytest.raises(DataError, match="not a publication journal"):
            out.recover(print)
        assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_an_empty_output_path_is_a_usage_error():
    with pytest.raises(UsageError, match="output directory .* is empty"):
        outdir.OutputDir("")


def test_a_staged_build_is_checked_before_it_is_published(tmp_path):
    out = published_old(str(tmp_path / "out"))
    with out.locked():
        staged = stage_build(out, NEW, "new")
        storage.write_bytes(out.staged("train-00001-of-00003.tfrecord"), b"damaged")
        with pytest.raises(DataError, match="does not match the staged manifest"):
            out.check_staged(staged)
