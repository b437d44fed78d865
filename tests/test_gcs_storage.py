"""`storage` on gs:// paths against a real GCS API server on localhost (gcp-storage-emulator,
started by tests/gcs_emulator.py), through the client used in production (pipeline/storage/gcs.py).

What this covers: every storage function on objects and prefixes, exact bytes, the errors,
the requests each operation costs, and a build + verify of a tiny corpus by the CLI in a
subprocess (the output directory on gs:// end to end is tests/test_gcs_output.py's). What it
cannot: the emulator ignores `ifGenerationMatch` and the `generation` of a read (both asserted
below), so the atomicity of `create_exclusive` between two runs at the same moment, and a
reader failing when its object is replaced, are GCS's guarantees, not tested here.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import pytest
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.storage import gcs

from tests.conftest import corpus, run_cli

pytest_plugins = ["tests.gcs_emulator"]  # the fixtures gcs_emulator and gcs_bucket

MiB = 1 << 20


def _bytes(count: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(count)


def _counts(**expected: int) -> dict[str, int]:
    return {kind: expected.get(kind, 0) for kind in gcs.KINDS}


def _put(bucket: str, *names: str) -> None:
    for name in names:
        storage.write_bytes(f"{bucket}/{name}", name.encode())


def test_written_bytes_read_back_exactly(gcs_bucket):
    small, large = _bytes(1000), _bytes(9 * MiB + 7, seed=1)  # large: spooled to disk
    storage.write_bytes(f"{gcs_bucket}/a/small", small)
    writer = storage.Writer(f"{gcs_bucket}/a/large")
    for start in range(0, len(large), 3 * MiB):
        writer.write(memoryview(large)[start : start + 3 * MiB])
    writer.close()
    storage.write_bytes(f"{gcs_bucket}/a/empty", b"")

    assert storage.read_bytes(f"{gcs_bucket}/a/small") == small
    assert storage.read_bytes(f"{gcs_bucket}/a/large") == large
    assert storage.read_bytes(f"{gcs_bucket}/a/empty") == b""
    with storage.open_read(f"{gcs_bucket}/a/large") as stream:
        assert stream.read() == large
    assert storage.size(f"{gcs_bucket}/a/large") == len(large)
    assert storage.size(f"{gcs_bucket}/a/empty") == 0
    assert storage.file_sha256(f"{gcs_bucket}/a/large") == (
        len(large),
        hashlib.sha256(large).hexdigest(),
    )


def test_an_object_appears_whole_when_its_writer_closes_and_a_discarded_one_uploads_nothing(
    gcs_bucket,
):
    path = f"{gcs_bucket}/x"
    storage.write_bytes(path, b"old")
    writer = storage.Writer(path)
    writer.write(b"new bytes")
    assert storage.read_bytes(path) == b"old"  # nothing of the new one before close
    writer.close()
    assert storage.read_bytes(path) == b"new bytes"

    gcs.reset_requests()
    discarded = storage.Writer(f"{gcs_bucket}/never")
    discarded.write(b"lost")
    discarded.discard()
    assert not storage.exists(f"{gcs_bucket}/never")
    # No upload; the delete a local writer's discard also does (nothing there: a 404).
    assert gcs.requests() == _counts(delete=1, metadata=1, list=1)


def test_directories_are_prefixes_listed_one_level_at_a_time(gcs_bucket):
    _put(gcs_bucket, "a/x", "a/b/y", "a/b/c/z", "a2/w", "top")
    gcs.upload_bytes(f"{gcs_bucket}/a/d/", b"")  # a placeholder another tool left

    assert storage.listdir(gcs_bucket) == ["a", "a2", "top"]
    assert storage.listdir(f"{gcs_bucket}/a") == ["b", "d", "x"]
    assert storage.listdir(f"{gcs_bucket}/a/") == ["b", "d", "x"]
    assert storage.listdir(f"{gcs_bucket}/a/b") == ["c", "y"]
    assert storage.listdir(f"{gcs_bucket}/a/d") == []
    assert storage.listdir(f"{gcs_bucket}/missing") == []
    assert storage.listdir(f"{gcs_bucket}/a/x") == []  # a file is no directory

    for path, isdir, isfile in [
        (gcs_bucket, True, False),
        (f"{gcs_bucket}/a", True, False),
        (f"{gcs_bucket}/a/b/c", True, False),
        (f"{gcs_bucket}/a/d", True, False),
        (f"{gcs_bucket}/a/x", False, True),
        (f"{gcs_bucket}/top", False, True),
        (f"{gcs_bucket}/a/b/c/z", False, True),
        (f"{gcs_bucket}/a/b/", True, False),
        (f"{gcs_bucket}/missing", False, False),
        (f"{gcs_bucket}/a/b/c/z/deeper", False, False),
        ("gs://mpr-no-such-bucket", False, False),
        ("gs://mpr-no-such-bucket/a", False, False),
    ]:
        assert (storage.isdir(path), storage.isfile(path)) == (isdir, isfile), path
        assert storage.exists(path) == (isdir or isfile), path
    assert storage.listdir("gs://mpr-no-such-bucket/a") == []

    storage.makedirs(f"{gcs_bucket}/made/here")  # a no-op: nothing to make
    assert not storage.exists(f"{gcs_bucket}/made")


def test_walk_lists_every_file_below_a_prefix(gcs_bucket):
    _put(gcs_bucket, "a/x", "a/b/y", "a/b/c/z", "a2/w", "a")
    gcs.upload_bytes(f"{gcs_bucket}/a/d/", b"")
    assert storage.walk(f"{gcs_bucket}/a") == [
        f"{gcs_bucket}/a/b/c/z",
        f"{gcs_bucket}/a/b/y",
        f"{gcs_bucket}/a/x",
    ]
    assert storage.walk(gcs_bucket) == [
        f"{gcs_bucket}/{n}" for n in ["a", "a/b/c/z", "a/b/y", "a/x", "a2/w"]
    ]
    assert storage.walk(f"{gcs_bucket}/missing") == []


def test_rmtree_removes_only_the_objects_under_the_prefix(gcs_bucket):
    _put(gcs_bucket, "d/x", "d/sub/y", "d/sub/deep/z", "d2/keep", "d", "e/keep")
    gcs.upload_bytes(f"{gcs_bucket}/d/sub/", b"")
    gcs.reset_requests()
    storage.rmtree(f"{gcs_bucket}/d")
    assert gcs.requests() == _counts(list=1, delete=4)
    assert storage.walk(gcs_bucket) == [f"{gcs_bucket}/{n}" for n in ["d", "d2/keep", "e/keep"]]
    storage.rmtree(f"{gcs_bucket}/missing")  # nothing there: nothing to do
    with pytest.raises(OSError, match="whole bucket") as raised:
        storage.rmtree(gcs_bucket)
    assert raised.value.filename == gcs_bucket
    assert storage.exists(f"{gcs_bucket}/e/keep")


def test_rename_is_a_copy_then_a_delete(gcs_bucket):
    data = _bytes(100_000)
    storage.write_bytes(f"{gcs_bucket}/from/a", data)
    storage.write_bytes(f"{gcs_bucket}/to/a", b"replaced")
    gcs.reset_requests()
    storage.rename(f"{gcs_bucket}/from/a", f"{gcs_bucket}/to/a")
    assert gcs.requests() == _counts(copy=1, delete=1)
    assert storage.read_bytes(f"{gcs_bucket}/to/a") == data
    assert not storage.exists(f"{gcs_bucket}/from/a")
    with pytest.raises(FileNotFoundError) as raised:
        storage.rename(f"{gcs_bucket}/from/a", f"{gcs_bucket}/to/b")
    assert raised.value.filename == f"{gcs_bucket}/from/a"
    assert not storage.exists(f"{gcs_bucket}/to/b")


@pytest.mark.parametrize(
    "operation",
    [
        storage.size,
        storage.read_bytes,
        storage.open_read,
        storage.RandomReader,
        storage.file_sha256,
        lambda path: storage.remove(path, missing_ok=False),
    ],
    ids=["size", "read_bytes", "open_read", "RandomReader", "file_sha256", "remove"],
)
@pytest.mark.parametrize("where", ["object", "bucket"])
def test_a_missing_object_or_bucket_is_file_not_found_naming_the_path(gcs_bucket, operation, where):
    path = f"{gcs_bucket}/no/such" if where == "object" else "gs://mpr-no-such-bucket/x"
    with pytest.raises(FileNotFoundError) as raised:
        operation(path)
    assert raised.value.filename == path
    assert path in str(raised.value)
    storage.remove(path)  # missing_ok by default


def test_random_reader_makes_one_ranged_get_per_read(gcs_bucket):
    data = _bytes(3 * MiB, seed=2)
    path = f"{gcs_bucket}/run"
    storage.write_bytes(path, data)
    gcs.reset_requests()
    with storage.RandomReader(path) as reader:
        assert reader.read(0, 16) == data[:16]
        assert reader.read(2 * MiB, MiB) == data[2 * MiB :]
        assert reader.read(12345, 1) == data[12345:12346]
        assert reader.read(5, 0) == b""
        with pytest.raises(OSError, match="short read") as raised:
            reader.read(3 * MiB - 10, 11)
        assert raised.value.filename == path
    assert gcs.requests() == _counts(metadata=1, read=4)


def test_a_sequential_read_costs_one_request_per_8_mib_block(gcs_bucket):
    data = _bytes(20 * MiB, seed=3)
    path = f"{gcs_bucket}/big"
    storage.write_bytes(path, data)
    gcs.reset_requests()
    assert storage.file_sha256(path) == (len(data), hashlib.sha256(data).hexdigest())
    assert gcs.requests() == _counts(metadata=1, read=3)  # 8 + 8 + 4 MiB

    gcs.reset_requests()
    with storage.open_read(path) as stream:
        assert stream.read(10) == data[:10]
        assert stream.seek(5) == 5 and stream.read(10) == data[5:15]  # in the block read
        assert stream.seek(-4, os.SEEK_END) == len(data) - 4
        assert stream.read() == data[-4:]
        assert stream.read(1) == b""
        stream.seek(MiB)
        assert stream.read(10 * MiB) == data[MiB : 11 * MiB]  # one request: it asks for more
        assert stream.tell() == 11 * MiB
    assert gcs.requests() == _counts(metadata=1, read=3)


def test_request_counts_by_kind_and_their_log_across_processes(gcs_bucket, tmp_path, monkeypatch):
    log = tmp_path / "requests.log"
    monkeypatch.setenv(gcs.COUNT_ENV, str(log))
    gcs.reset_requests()
    storage.write_bytes(f"{gcs_bucket}/d/a", b"a")  # write
    writer = storage.Writer(f"{gcs_bucket}/d/big")
    writer.write(_bytes(9 * MiB))
    writer.close()  # beyond 8 MiB: a resumable session (start, then one chunk)
    assert storage.exists(f"{gcs_bucket}/d/a")  # metadata
    assert storage.exists(f"{gcs_bucket}/d")  # metadata (no such object), then list
    assert storage.listdir(f"{gcs_bucket}/d") == ["a", "big"]  # list
    storage.rename(f"{gcs_bucket}/d/a", f"{gcs_bucket}/d/b")  # copy, delete
    assert storage.read_bytes(f"{gcs_bucket}/d/b") == b"a"  # read
    storage.rmtree(f"{gcs_bucket}/d")  # list, delete x2
    expected = _counts(write=3, metadata=2, list=3, copy=1, delete=3, read=1)
    assert gcs.requests() == expected

    # The same requests in the log, and a CLI subprocess's added to it.
    assert gcs.read_request_log(str(log)) == expected
    lines = log.read_text().splitlines()
    assert lines[0].startswith("write POST 200 /upload/storage/v1/b/")
    assert f"list GET 200 /storage/v1/b/{gcs_bucket[5:]}/o" in lines
    run_cli("verify", f"{gcs_bucket}/nothing", check=None)
    assert sum(gcs.read_request_log(str(log)).values()) > sum(expected.values())

    gcs.reset_requests()
    assert gcs.requests() == _counts()


def test_create_exclusive_writes_only_where_nothing_is(gcs_bucket, tmp_path):
    path = f"{gcs_bucket}/.mpr/lock.json"
    gcs.reset_requests()
    assert storage.create_exclusive(path, b"first") is True
    assert gcs.requests() == _counts(metadata=1, write=1)
    gcs.reset_requests()
    assert storage.create_exclusive(path, b"second") is False
    assert gcs.requests() == _counts(metadata=1)
    assert storage.read_bytes(path) == b"first"
    storage.remove(path)
    assert storage.create_exclusive(path, b"third") is True
    assert storage.read_bytes(path) == b"third"

    local = tmp_path / "lock"
    assert storage.create_exclusive(str(local), b"first") is True
    assert storage.create_exclusive(str(local), b"second") is False
    assert local.read_bytes() == b"first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lock"]  # no temporary file left

    ram = f"ram://mpr-create-exclusive-{os.getpid()}/lock"  # the other filesystems: not atomic
    assert storage.create_exclusive(ram, b"first") is True
    assert storage.create_exclusive(ram, b"second") is False
    assert storage.read_bytes(ram) == b"first"
    storage.remove(ram)


def test_what_needs_no_object_store_makes_no_request(gcs_bucket):
    gcs.reset_requests()
    storage.check_location(f"{gcs_bucket}/out", "output")  # no TensorFlow either
    storage.makedirs(f"{gcs_bucket}/out/.mpr/units")
    storage.sync_directory(f"{gcs_bucket}/out")
    assert storage.join(gcs_bucket + "/", "out", "x") == f"{gcs_bucket}/out/x"
    assert storage.is_remote(gcs_bucket)
    assert gcs.requests() == _counts()


def test_create_exclusive_sends_if_generation_match_0_which_the_emulator_ignores(
    gcs_bucket, gcs_emulator
):
    path = f"{gcs_bucket}/lock"
    assert storage.create_exclusive(path, b"mine") is True
    bucket, name = gcs.split(path)
    uploads = [
        line
        for line in gcs_emulator.request_lines()
        if f"/upload/storage/v1/b/{bucket}/o?" in line and "POST" in line
    ]
    assert len(uploads) == 1 and "ifGenerationMatch=0" in uploads[0], uploads

    # GCS would answer 412 to this second upload with the same precondition; the emulator
    # replaces the object. So a race between two runs is not tested here: the sequential
    # case is (the metadata request before the upload), the atomic one is GCS's.
    blob = gcs.client().bucket(bucket).blob(name)
    blob.upload_from_string(b"theirs", if_generation_match=0)
    assert storage.read_bytes(path) == b"theirs", (
        "the emulator now enforces ifGenerationMatch: add a test of two create_exclusive at "
        "the same moment (one True, one False) and update gcs.create_exclusive's docstring"
    )


def test_a_reader_pins_the_generation_it_opened_which_the_emulator_ignores(gcs_bucket):
    path = f"{gcs_bucket}/replaced"
    storage.write_bytes(path, b"A" * 100)
    with storage.open_read(path) as stream:
        generation = stream.generation
        storage.write_bytes(path, b"B" * 100)
        assert gcs.stat(path)[1] != generation
        # On GCS the read of the replaced generation is a 404 (FileNotFoundError); the emulator
        # serves the object as it is now.
        assert stream.read(10) == b"B" * 10


def test_build_refresh_and_verify_on_gs_with_the_cli(gcs_bucket, english_model, tmp_path):
    out = f"{gcs_bucket}/out"
    source = tmp_path / "in.txt"
    source.write_bytes(corpus("en/bert_sample_text.txt").read_bytes())
    log = tmp_path / "requests.log"
    args = ["--spm-model", english_model, "--max-seq-length", 64]
    args += ["--max-predictions-per-seq", 10, "--dupe-factor", 2, "--json"]
    env = {gcs.COUNT_ENV: str(log)}
    summary = json.loads(run_cli("build", source, "-o", out, *args, env=env).stdout)
    assert summary["status"] == "ok" and summary["shards"] >= 1
    requests = gcs.read_request_log(str(log))
    print("requests of the first build:", requests)

    def check_published() -> dict:
        manifest = json.loads(storage.read_bytes(f"{out}/manifest.json"))
        for shard in manifest["shards"]:
            size, digest = storage.file_sha256(f"{out}/{shard['name']}")
            assert (size, digest) == (shard["bytes"], shard["sha256"])
        folder = manifest["build_dir"]
        assert {"manifest.json", folder} <= set(storage.listdir(out))
        assert storage.read_bytes(f"{out}/{folder}/spm.model") == english_model.read_bytes()
        run_cli("verify", out)
        return manifest

    first = check_published()
    assert requests["write"] >= len(first["shards"]) + 1 and requests["read"] >= 1
    assert json.loads(run_cli("build", source, "-o", out, *args).stdout)["status"] == "up-to-date"

    with source.open("a") as more:
        more.write("\nA new document was added to the corpus.\nIt has two sentences.\n")
    refreshed = json.loads(run_cli("build", source, "-o", out, *args).stdout)
    assert refreshed["status"] == "ok"
    second = check_published()
    assert second["shards"] != first["shards"]
    assert (first["build_dir"], second["build_dir"]) == ("build-00001", "build-00002")
