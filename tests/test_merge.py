"""The global merge: a seeded permutation of every kept record into balanced shards, each run
read once in large blocks, on a local disk and on GCS (a GCS API server on localhost)."""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import resource
import struct
import threading
import tracemalloc
import zlib

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.ground.hashing import record_keys
from pretrain_records.pipeline.records import merge, runs
from pretrain_records.pipeline.records.frames import count_records
from pretrain_records.pipeline.records.schema import COMPRESSION
from pretrain_records.pipeline.storage import gcs

from tests.test_features import encode_frames

pytest_plugins = ["tests.gcs_emulator"]  # the fixtures gcs_emulator and gcs_bucket

# The run format as documented in runs.py, spelled out here so that the reference does not
# share the code it checks: header (magic, records, record bytes), index entries, records.
HEADER = struct.Struct("<8sQQ")
ENTRY = np.dtype([("key", "<u8"), ("length", "<u4"), ("ordinal", "<u4"), ("piece", "<u4")])


def make_runs(tmp_path, sizes, seed=0, longest=50, key_range=None):
    """Runs of fake records `u<unit>-<ordinal>` of random lengths, one run per unit; with
    `key_range`, keys drawn from range(key_range) instead of hashes (many equal keys)."""
    rng = np.random.default_rng(seed)
    tmp_path.mkdir(parents=True, exist_ok=True)
    made = []
    for unit, size in enumerate(sizes):
        records = [
            f"u{unit}-{i}-".encode() + b"x" * int(rng.integers(0, longest)) for i in range(size)
        ]
        ordinals = np.arange(size, dtype=np.uint64)
        if key_range is None:
            keys = record_keys(1000 + unit, ordinals)
        else:
            keys = rng.integers(0, key_range, size).astype(np.uint64)
        pieces = rng.integers(0, 3, size).astype(np.uint32)
        path = tmp_path / f"run-{unit}.bin"
        info = runs.write_run(str(path), keys, ordinals.astype(np.uint32), pieces, records)
        made.append((merge.Run(str(path), unit), info, records))
    return made


def reference(paths, units, shards, compression):
    """What the merge must write, the plain way: every run read whole, all records sorted by
    key (equal keys in run order, then in run file order), shard s = ranks [s*N/S, (s+1)*N/S).
    Returns (shard file bytes, provenance file bytes)."""
    keys, records, rows = [], [], []
    for path, unit in zip(paths, units, strict=True):
        data = storage.read_bytes(path)
        magic, count, data_bytes = HEADER.unpack_from(data)
        assert magic == b"MPRRUN03"
        index = np.frombuffer(data, ENTRY, count, HEADER.size)
        at = HEADER.size + ENTRY.itemsize * count
        assert len(data) == at + data_bytes == at + int(index["length"].sum())
        for entry in index:
            keys.append(int(entry["key"]))
            records.append(data[at : at + int(entry["length"])])
            rows.append((unit, int(entry["piece"]), int(entry["ordinal"])))
            at += int(entry["length"])
    order = sorted(range(len(keys)), key=lambda i: keys[i])  # stable: ties in the order read
    total = len(order)
    wbits = {"gzip": 31, "zlib": 15}.get(compression)
    files = []
    for s in range(shards):
        plain = b"".join(records[i] for i in order[s * total // shards : (s + 1) * total // shards])
        if wbits:
            packer = zlib.compressobj(wbits=wbits)
            plain = packer.compress(plain) + packer.flush()
        files.append(plain)
    provenance = b"".join(struct.pack("<III", *rows[i]) for i in order)
    return files, provenance


def do_merge(tmp_path, made, shards, compression="none", name="out", on_shard=None):
    out = tmp_path / name
    out.mkdir()
    data_bytes = sum(sum(map(len, r)) for _, _, r in made)
    entries, provenance = merge.merge(
        [m[0] for m in made],
        sum(len(r) for _, _, r in made),
        data_bytes,
        shards,
        compression,
        lambda n: str(out / n),
        on_shard or (lambda records: None),
    )
    return out, entries, provenance


def assert_reference_output(out, made, entries, provenance, shards, compression):
    files, rows = reference(
        [m[0].path for m in made], [m[0].unit for m in made], shards, compression
    )
    assert [e["name"] for e in entries] == [
        merge.shard_name(s, shards, compression) for s in range(shards)
    ]
    for entry, expected in zip(entries, files, strict=True):
        data = (out / str(entry["name"])).read_bytes()
        assert data == expected, entry["name"]
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    total = sum(len(r) for _, _, r in made)
    assert [e["records"] for e in entries] == [
        (s + 1) * total // shards - s * total // shards for s in range(shards)
    ]
    assert provenance["name"] == "provenance.bin"
    assert (out / "provenance.bin").read_bytes() == rows
    assert provenance["records"] == total and provenance["bytes"] == len(rows)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [str(e["name"]) for e in entries] + ["provenance.bin"]
    )


def small_blocks(monkeypatch, share):
    """Read blocks of about `share` bytes per run (a run then spans many blocks)."""
    monkeypatch.setattr(merge, "MIN_BLOCK", share)
    monkeypatch.setattr(merge, "MAX_BLOCK", share)


CASES = {
    "4 runs, 7 shards": ([500, 30, 1200, 7], 7, "none", None, None, {}),
    "empty runs, tiny buckets, gzip": ([500, 0, 1200, 0, 7], 3, "gzip", 1000, None, {}),
    "many tiny runs, zlib": ([i % 6 for i in range(60)], 13, "zlib", 200, None, {}),
    "one run, one shard, 100-byte blocks": ([1000], 1, "none", 64, 100, {}),
    "a shard per record": ([9, 0, 4], 13, "gzip", None, 160, {}),
    "equal keys across and within runs": ([300, 200, 250], 4, "none", 50, 300, {"key_range": 40}),
    "long records across blocks": ([50, 80], 5, "zlib", 3000, 200, {"longest": 2000}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_shards_and_provenance_are_the_reference_bytes(tmp_path, monkeypatch, case):
    sizes, shards, compression, bucket_bytes, share, options = case
    if bucket_bytes:
        monkeypatch.setattr(merge, "BUCKET_BYTES", bucket_bytes)
    if share:
        small_blocks(monkeypatch, share)
    made = make_runs(tmp_path, sizes, **options)
    reported = []
    out, entries, provenance = do_merge(
        tmp_path, made, shards, compression, on_shard=reported.append
    )
    assert_reference_output(out, made, entries, provenance, shards, compression)
    assert reported == [e["records"] for e in entries]


def test_output_does_not_depend_on_bucket_or_block_sizes(tmp_path, monkeypatch):
    made = make_runs(tmp_path, [400, 900, 50])
    first = do_merge(tmp_path, made, shards=3, compression="gzip", name="a")[0]
    monkeypatch.setattr(merge, "BUCKET_BYTES", 1000)  # dozens of buckets
    small_blocks(monkeypatch, 333)
    second = do_merge(tmp_path, made, shards=3, compression="gzip", name="b")[0]
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir()) and len(names) == 4
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


@pytest.mark.parametrize(
    "compression, inflate", [("gzip", gzip.decompress), ("zlib", zlib.decompress)]
)
def test_compressed_shards_hold_the_same_bytes(tmp_path, compression, inflate):
    made = make_runs(tmp_path, [300, 300])
    plain = do_merge(tmp_path, made, shards=2, name="plain")
    packed = do_merge(tmp_path, made, shards=2, compression=compression, name="packed")
    for a, b in zip(plain[1], packed[1], strict=True):
        assert inflate((packed[0] / b["name"]).read_bytes()) == (plain[0] / a["name"]).read_bytes()


def test_shards_are_random_samples_of_every_unit(tmp_path):
    made = make_runs(tmp_path, [2000] * 10)
    out, entries, _ = do_merge(tmp_path, made, shards=8)
    prov = np.frombuffer((out / "provenance.bin").read_bytes(), "<u4").reshape(-1, 3)
    offsets = np.cumsum([0] + [e["records"] for e in entries])
    for s in range(8):
        units = prov[offsets[s] : offsets[s + 1], 0]
        counts = np.bincount(units, minlength=10)
        # 2500 records per shard, 250 expected per unit: a 5-sigma binomial band.
        assert np.all(np.abs(counts - 250) < 5 * np.sqrt(250 * 0.9)), counts
        position = np.arange(len(units))
        r = np.corrcoef(position, prov[offsets[s] : offsets[s + 1], 2])[0, 1]
        assert abs(r) < 5 / np.sqrt(len(units)), r


def test_more_shards_than_records_is_refused(tmp_path):
    made = make_runs(tmp_path, [3])
    with pytest.raises(merge.DataError, match="num_shards 4 is more than the 3 records"):
        do_merge(tmp_path, made, shards=4)


def low_file_limit(extra):
    """RLIMIT_NOFILE's soft limit set to the files open now + `extra`; returns the old one."""
    old = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + extra, old[1]))
    return old


def test_many_shards_under_a_low_file_limit(tmp_path):
    made = make_runs(tmp_path, [300] * 4)
    old = low_file_limit(16)
    try:
        out, entries, provenance = do_merge(tmp_path, made, shards=400)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert len(entries) == 400 and sum(e["records"] for e in entries) == 1200
    assert_reference_output(out, made, entries, provenance, 400, "none")


def test_more_runs_than_the_file_limit_allows_open_are_reopened_for_each_read(
    tmp_path, monkeypatch
):
    made = make_runs(tmp_path, [i % 40 for i in range(300)], seed=3)
    monkeypatch.setattr(merge, "BUCKET_BYTES", 20000)
    old = low_file_limit(24)
    try:
        out, entries, provenance = do_merge(tmp_path, made, shards=5, compression="gzip")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, old)
    assert_reference_output(out, made, entries, provenance, 5, "gzip")


def test_a_run_of_the_previous_format_is_refused_naming_it(tmp_path):
    made = make_runs(tmp_path, [20, 30])
    path = made[1][0].path
    with open(path, "r+b") as run:
        run.write(b"MPRRUN02")
    with pytest.raises(DataError, match=f"{path}: not a run of kept records of format MPRRUN03"):
        do_merge(tmp_path, made, shards=2)
    assert not list((tmp_path / "out").iterdir())


def test_a_truncated_run_fails_and_leaves_only_whole_shards(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "BUCKET_BYTES", 500)
    made = make_runs(tmp_path, [200, 200])
    whole = tmp_path / "whole.bin"
    whole.write_bytes(open(made[0][0].path, "rb").read())
    files, _ = reference([str(whole), made[1][0].path], [0, 1], 4, "none")
    path = made[0][0].path
    os.truncate(path, os.path.getsize(path) - 100)  # its last records
    with pytest.raises(DataError, match=f"{path}: the run ends early"):
        do_merge(tmp_path, made, shards=4)
    left = sorted(os.listdir(tmp_path / "out"))
    assert left == [merge.shard_name(s, 4, "none") for s in range(len(left))] and len(left) < 4
    for s, name in enumerate(left):  # shards closed before the failure, whole
        assert (tmp_path / "out" / name).read_bytes() == files[s]


def test_a_full_disk_in_the_writer_thread_is_raised_and_its_files_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "BUCKET_BYTES", 2000)
    made = make_runs(tmp_path, [400, 400])
    monkeypatch.setattr(testhooks, "disk_full_after", lambda: 5000)
    with pytest.raises(OSError, match="No space left on device") as raised:
        do_merge(tmp_path, made, shards=2)
    assert raised.value.filename == str(tmp_path / "out" / merge.shard_name(0, 2, "none"))
    assert not list((tmp_path / "out").iterdir())


def test_run_files_hold_header_index_and_records_in_key_order(tmp_path, monkeypatch):
    records = [b"a" * 5, b"bb", b"", b"cccc"]
    keys = np.array([9, 3, 9, 1], np.uint64)
    path = tmp_path / "run.bin"
    info = runs.write_run(
        str(path), keys, np.arange(4, dtype=np.uint32), np.array([7, 8, 9, 10], np.uint32), records
    )
    data = path.read_bytes()
    assert HEADER.unpack_from(data) == (b"MPRRUN03", 4, 11)
    index = np.frombuffer(data, ENTRY, 4, HEADER.size)
    assert index.tolist() == [(1, 4, 3, 10), (3, 2, 1, 8), (9, 5, 0, 7), (9, 0, 2, 9)]
    assert data[runs.HEADER_BYTES + runs.INDEX_BYTES * 4 :] == b"cccc" + b"bb" + b"aaaaa"
    assert (info.records, info.bytes) == (4, len(data))
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    # What the build counts as record bytes.
    assert info.bytes - runs.HEADER_BYTES - runs.INDEX_BYTES * info.records == 11
    monkeypatch.setattr(runs, "WRITE_BYTES", 3)  # records written a few at a time: same file
    again = tmp_path / "again.bin"
    runs.write_run(
        str(again), keys, np.arange(4, dtype=np.uint32), np.array([7, 8, 9, 10], np.uint32), records
    )
    assert again.read_bytes() == data


def expected_reads(sizes, runs_count, remote):
    """Reads of a merge that reads every run once: its header, then its index and its records
    in blocks of the sizes `read_blocks` gives (the index's rounded to whole entries)."""
    block, index_block = merge.read_blocks(runs_count, remote)
    index_block = index_block // runs.INDEX_BYTES * runs.INDEX_BYTES
    reads = 0
    for records, data_bytes in sizes:
        reads += 1 + math.ceil(runs.INDEX_BYTES * records / index_block)
        reads += math.ceil(data_bytes / block)
    return reads


def test_each_run_is_opened_once_and_read_once_in_blocks(tmp_path, monkeypatch):
    made = make_runs(tmp_path, [300, 0, 700, 120], seed=2, longest=300)
    small_blocks(monkeypatch, 2000)
    monkeypatch.setattr(merge, "BUCKET_BYTES", 300)  # about 400 buckets
    opened, reads = [], []
    init, read = storage.RandomReader.__init__, storage.RandomReader.read

    def counted_init(self, path):
        opened.append(path)
        init(self, path)

    def counted_read(self, offset, count):
        reads.append((self.path, offset, count))
        return read(self, offset, count)

    monkeypatch.setattr(storage.RandomReader, "__init__", counted_init)
    monkeypatch.setattr(storage.RandomReader, "read", counted_read)
    out, entries, provenance = do_merge(tmp_path, made, shards=3)
    assert sorted(opened) == sorted(m[0].path for m in made)
    sizes = [(len(r), sum(map(len, r))) for _, _, r in made]
    assert len(reads) == expected_reads(sizes, len(made), remote=False)
    for run, _, _ in made:  # front to back, every byte once
        spans = sorted((offset, count) for path, offset, count in reads if path == run.path)
        assert [offset for offset, _ in spans] == list(
            np.cumsum([0] + [count for _, count in spans])[:-1]
        )
        assert sum(count for _, count in spans) == os.path.getsize(run.path)
    assert_reference_output(out, made, entries, provenance, 3, "none")


def test_memory_stays_flat_whatever_the_corpus_size(tmp_path, monkeypatch):
    monkeypatch.setattr(merge, "READ_BUDGET", 64 << 10)
    monkeypatch.setattr(merge, "MIN_BLOCK", 4 << 10)
    monkeypatch.setattr(merge, "BUCKET_BYTES", 32 << 10)
    monkeypatch.setattr(merge, "WRITE_BYTES", 8 << 10)
    monkeypatch.setattr(merge, "QUEUE_BYTES", 32 << 10)
    peaks = {}
    for records in (1000, 4000):
        made = make_runs(tmp_path / str(records), [records] * 8, longest=400)
        tracemalloc.start()
        try:
            do_merge(tmp_path, made, shards=2, name=f"out-{records}")
            peaks[records] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    corpus = sum(sum(map(len, r)) for _, _, r in made)
    print(f"peak bytes {peaks}, corpus {corpus} bytes")
    assert peaks[4000] < 1.25 * peaks[1000] and peaks[4000] < corpus / 4


def test_on_gcs_each_run_is_read_once_in_blocks_whatever_the_buckets(
    gcs_bucket, tmp_path, monkeypatch
):
    made = make_runs(tmp_path, [150, 0, 400, 90, 260, 30], seed=5, longest=300)
    prefix = f"{gcs_bucket}/out/.mpr/units"
    remote = []
    for run, _, _ in made:
        name = os.path.basename(run.path)
        storage.write_bytes(f"{prefix}/{name}", open(run.path, "rb").read())
        remote.append((merge.Run(f"{prefix}/{name}", run.unit), None, made[run.unit][2]))
    small_blocks(monkeypatch, 4096)  # a run spans up to 30 blocks
    sizes = [(len(r), sum(map(len, r))) for _, _, r in made]
    data_bytes = sum(d for _, d in sizes)
    counts = {}
    for bucket_bytes in (2000, 200):  # about 30 and 300 buckets
        monkeypatch.setattr(merge, "BUCKET_BYTES", bucket_bytes)
        gcs.reset_requests()
        out, entries, provenance = do_merge(tmp_path, remote, 3, "gzip", f"out-{bucket_bytes}")
        counts[bucket_bytes] = gcs.requests()
        assert_reference_output(out, made, entries, provenance, 3, "gzip")
    reads = expected_reads(sizes, len(made), remote=True)
    expected = dict.fromkeys(gcs.KINDS, 0) | {"metadata": len(made), "read": reads}
    assert counts[2000] == counts[200] == expected, counts
    # O(runs x (1 + run bytes / block)), far fewer than the ~300 buckets of the second merge.
    block, index_block = merge.read_blocks(len(made), True)
    index_bytes = runs.INDEX_BYTES * sum(r for r, _ in sizes)
    assert (
        reads <= len(made) * 3 + index_bytes / (index_block - runs.INDEX_BYTES) + data_bytes / block
    )
    assert reads < 300
    print(f"{len(made)} runs, {data_bytes} record bytes, {reads} reads: {counts}")


@pytest.mark.parametrize("compression", ["none", "gzip", "zlib"])
def test_shard_writer_output_reads_back_with_its_checksum(tmp_path, compression):
    records = [f"record {i}".encode() * (i + 1) for i in range(300)]
    frames = encode_frames(records)
    writer = merge.ShardWriter(str(tmp_path / "shard"), "shard", compression)
    writer.write(b"".join(frames[:100]), 100)
    writer.write(b"".join(frames[100:]), 200)
    info = writer.close()
    path = tmp_path / "shard"
    assert not [p for p in tmp_path.iterdir() if p.name != "shard"]  # no temp file left
    assert (info["records"], info["bytes"]) == (300, path.stat().st_size)
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    data = tf.data.TFRecordDataset(str(path), compression_type=COMPRESSION[compression])
    assert [r.numpy() for r in data] == records
    assert count_records(str(path), compression) == 300  # verify's count, without TensorFlow
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError):
        count_records(str(path), compression)


def test_an_interrupt_mid_merge_stops_its_threads_and_removes_the_partial_files(
    tmp_path, monkeypatch
):
    made = make_runs(tmp_path, [800, 800], longest=400)
    monkeypatch.setattr(merge, "BUCKET_BYTES", 20000)  # about 17 buckets
    monkeypatch.setattr(merge, "WRITE_BYTES", 2000)
    calls = []

    def point(name):
        calls.append(name)
        if len(calls) == 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(testhooks, "point", point)
    with pytest.raises(KeyboardInterrupt):
        do_merge(tmp_path, made, shards=3)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("merge")]
    files, _ = reference([m[0].path for m in made], [0, 1], 3, "none")
    left = sorted(os.listdir(tmp_path / "out"))
    assert left == [merge.shard_name(s, 3, "none") for s in range(len(left))] and len(left) < 3
    for s, name in enumerate(left):  # only shards closed before the interrupt, whole
        assert (tmp_path / "out" / name).read_bytes() == files[s]
