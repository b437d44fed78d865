"""The output directory (pipeline/outdir/outdir.py), in process: what is there, inputs inside it,
foreign files, the lock, links, paths.

Every test that can runs on a local directory and on TensorFlow's ram:// filesystem (a
tf.io.gfile filesystem: the remote code paths, no flock, no fsync). The builds and their
publication are tests/test_publication.py's.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os

import pytest
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import LockedError, UsageError
from pretrain_records.pipeline.ground.events import Quiet
from pretrain_records.pipeline.outdir import outdir
from pretrain_records.pipeline.records import manifest as manifest_lib

_ram = itertools.count()


@pytest.fixture(params=["local", "ram"])
def out_path(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "out")
    return f"ram://outdir-test-{os.getpid()}-{next(_ram)}/out"


def write_manifest(out_path: str, **fields) -> dict:
    data = b"shard"
    manifest = {
        "format": manifest_lib.FORMAT,
        "tool": manifest_lib.TOOL,
        "build": "id-1",
        "build_dir": "build-00001",
        "config": {"compression": "none"},
        "shards": [
            {
                "name": "build-00001/train-00000-of-00001.tfrecord",
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "records": 1,
            }
        ],
        "files": [],
        **fields,
    }
    storage.makedirs(storage.join(out_path, "build-00001"))
    storage.write_bytes(
        storage.join(out_path, "build-00001", "train-00000-of-00001.tfrecord"), data
    )
    storage.write_bytes(storage.join(out_path, "manifest.json"), json.dumps(manifest).encode())
    return manifest


def test_the_published_manifest_or_none(out_path):
    out = outdir.OutputDir(out_path)
    assert out.published_manifest() is None
    manifest = write_manifest(out_path)
    assert out.published_manifest() == manifest


def test_a_foreign_manifest_is_refused(out_path):
    out = outdir.OutputDir(out_path)
    storage.makedirs(out.path)
    storage.write_bytes(storage.join(out.path, "manifest.json"), b'{"name": "my package"}')
    with pytest.raises(UsageError, match="manifest.json exists and was not written by this tool"):
        out.published_manifest()


def test_a_manifest_naming_a_file_outside_out_is_refused(out_path):
    out = outdir.OutputDir(out_path)
    write_manifest(out_path, files=[{"name": "build-00001/../../x", "bytes": 1, "sha256": "0"}])
    with pytest.raises(
        manifest_lib.ManifestError, match="refusing file name 'build-00001/../../x'"
    ):
        out.published_manifest()


def test_files_of_other_names_at_the_top_level_are_no_business_of_the_tool(out_path):
    """A config.yaml or spm.model of the user's at OUT's top level is not in the way: builds
    write in folders of their own."""
    storage.makedirs(out_path)
    for name in ("config.yaml", "spm.model", "notes.txt"):
        storage.write_bytes(storage.join(out_path, name), b"mine")
    out = outdir.OutputDir(out_path)
    with out.locked():
        assert out.published_manifest() is None
    assert sorted(storage.listdir(out_path)) == [".mpr", "config.yaml", "notes.txt", "spm.model"]


def test_inputs_inside_the_output_directory(tmp_path):
    out = outdir.OutputDir(str(tmp_path / "out"))
    write_manifest(out.path)
    storage.makedirs(out.private())
    # Read as they are: a build's file, or any other file of OUT's.
    out.check_inputs([str(tmp_path / "out" / "build-00001" / "train-00000-of-00001.tfrecord")])
    out.check_inputs([str(tmp_path / "out" / "notes.txt")])
    storage.write_bytes(out.private("mine.txt"), b"x")
    with pytest.raises(UsageError, match="inside .*\\.mpr, the tool's own files"):
        out.check_inputs([out.private("mine.txt")])
    with pytest.raises(UsageError, match="is an input and the file this tool publishes"):
        out.check_inputs([str(tmp_path / "out" / "manifest.json")])
    link = tmp_path / "manifest-link.json"
    link.symlink_to(tmp_path / "out" / "manifest.json")
    with pytest.raises(UsageError, match="is an input and the file this tool publishes"):
        out.check_inputs([str(link)])  # by what it is, not how it is spelled


def test_a_second_holder_of_the_lock_is_refused(out_path):
    first, second = outdir.OutputDir(out_path), outdir.OutputDir(out_path)
    with first.locked():
        with pytest.raises(LockedError, match="is being built by another run"):
            with second.locked():
                pass
    with second.locked():  # released
        pass


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
    (out / ".mpr" / "units").symlink_to(user / "units")
    with pytest.raises(UsageError, match="units is a symbolic link"):
        with outdir.OutputDir(str(out)).locked():
            pass
    assert (user / "units" / "keep.txt").read_text() == "precious"


def test_an_unknown_scheme_is_a_usage_error_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="TensorFlow has no filesystem for nope://"):
        outdir.OutputDir("nope://bucket/out")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_output_path_is_a_usage_error():
    with pytest.raises(UsageError, match="the output directory \\(-o\\) is empty"):
        outdir.OutputDir("")


def test_quiet_events_accept_everything():
    events = Quiet()
    events.start_units(10, 1)
    events.advance(5, 2)
    events.finish_units()
