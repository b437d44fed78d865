"""The global merge: a seeded permutation of every kept record into balanced shards."""

from __future__ import annotations

import gzip
import hashlib
import resource
import zlib

import numpy as np
import pytest
import tensorflow as tf
from pretrain_records.pipeline import merge, runs
from pretrain_records.pipeline.errors import DataError
from pretrain_records.pipeline.inspection import count_records
from pretrain_records.pipeline.schema import COMPRESSION

from tests.test_features import encode_frames


def make_runs(tmp_path, sizes, seed=0):
    """Runs of fake records `u<unit>-<ordinal>` of random lengths, one run per unit."""
    rng = np.random.default_rng(seed)
    made = []
    for unit, size in enumerate(sizes):
        records = [f"u{unit}-{i}-".encode() + b"x" * int(rng.integers(0, 50)) for i in range(size)]
        ordinals = np.arange(size, dtype=np.uint64)
        keys = runs.record_keys(1000 + unit, ordinals)
        path = tmp_path / f"run-{unit}.bin"
        info = runs.write_run(
            str(path), keys, ordinals.astype(np.uint32), np.zeros(size, np.uint32), records
        )
        made.append((merge.Run(str(path), unit), info, records))
    return made


def do_merge(tmp_path, made, shards, compression="none", name="out"):
    out = tmp_path / name
    out.mkdir()
    data_bytes = sum(sum(map(len, r)) for _, _, r in made)
    entries, _ = merge.merge(
        [m[0] for m in made],
        sum(len(r) for _, _, r in made),
        data_bytes,
        shards,
        compression,
        lambda n: str(out / n.replace("/", "__")),
    )
    return out, entries


def test_every_record_once_in_balanced_shards_in_key_order(tmp_path):
    made = make_runs(tmp_path, [500, 30, 1200, 7])
    out, entries = do_merge(tmp_path, made, shards=7)
    counts = [e["records"] for e in entries]
    assert max(counts) - min(counts) <= 1 and sum(counts) == 1737
    stored = b"".join((out / e["name"]).read_bytes() for e in entries)
    expected = sorted(
        (int(k), r)
        for (_, _, records), unit in zip(made, range(4), strict=True)
        for k, r in zip(
            runs.record_keys(1000 + unit, np.arange(len(records), dtype=np.uint64)),
            records,
            strict=True,
        )
    )
    assert stored == b"".join(r for _, r in expected)


def test_output_does_not_depend_on_the_bucket_size(tmp_path, monkeypatch):
    made = make_runs(tmp_path, [400, 900, 50])
    first = do_merge(tmp_path, made, shards=3, name="a")[0]
    monkeypatch.setattr(merge, "BUCKET_BYTES", 1000)  # dozens of buckets
    second = do_merge(tmp_path, made, shards=3, name="b")[0]
    for name in sorted(p.name for p in first.iterdir()):
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
    out, entries = do_merge(tmp_path, made, shards=8)
    prov = np.frombuffer((out / ".mpr__provenance.bin").read_bytes(), "<u4").reshape(-1, 3)
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


def test_many_shards_keep_few_files_open(tmp_path):
    made = make_runs(tmp_path, [300] * 4)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    import os

    open_now = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 16, hard))
    try:
        _, entries = do_merge(tmp_path, made, shards=400)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert len(entries) == 400 and sum(e["records"] for e in entries) == 1200


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
