"""The global merge: every kept record of a build, in key order, into balanced shards.

Each record has a 64-bit key from (seed, unit, ordinal) (`runs.record_keys`); the build's
records sorted by key are a seeded random permutation of all of them, and shard s takes ranks
[s*N/S, (s+1)*N/S), so shards differ by at most one record and each is a random sample of the
whole corpus in random order. Key space is cut into buckets of about BUCKET_BYTES of records:
a bucket's slice of every run is read (runs are sorted by key), sorted in memory and written
out, so memory holds one bucket whatever the corpus size, and few files are open at once: the
run being read, the shard being written, the provenance file.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import math
import struct
import zlib
from collections.abc import Callable

import numpy as np
from pretrain_records.pipeline import storage, testhooks
from pretrain_records.pipeline.errors import DataError
from pretrain_records.pipeline.runs import RunReader

BUCKET_BYTES = 64 << 20
TARGET_SHARD_BYTES = 128 << 20
SUFFIX = {"none": ".tfrecord", "gzip": ".tfrecord.gz", "zlib": ".tfrecord.zz"}
PROVENANCE_ENTRY = struct.Struct("<III")  # per record: unit index, piece in it, ordinal


def shard_name(index: int, total: int, compression: str) -> str:
    return f"train-{index:05d}-of-{total:05d}{SUFFIX[compression]}"


def shard_count(num_shards: str | int, total_bytes: int) -> int:
    """`num_shards`, or for `auto` about TARGET_SHARD_BYTES of (uncompressed) records each."""
    if num_shards == "auto":
        return max(1, math.ceil(total_bytes / TARGET_SHARD_BYTES))
    return int(num_shards)


@dataclasses.dataclass(frozen=True)
class Run:
    """A run file of kept records and the unit it belongs to (its index in the build)."""

    path: str
    unit: int


class ShardWriter:
    """One shard in staging: compressed as TensorFlow's GZIP/ZLIB record options do (a zlib
    stream in a gzip or zlib wrapper), checksummed as it is written, fsynced on close."""

    def __init__(self, path: str, name: str, compression: str) -> None:
        self.name, self.path = name, path
        wbits = {"gzip": 31, "zlib": 15}.get(compression)
        self._compressor = zlib.compressobj(wbits=wbits) if wbits else None
        self._digest, self._size, self.records = hashlib.sha256(), 0, 0
        self._writer = storage.Writer(path)
        self._limit = testhooks.disk_full_after()

    def write(self, frames: bytes, records: int) -> None:
        self._emit(self._compressor.compress(frames) if self._compressor else frames)
        self.records += records

    def _emit(self, data: bytes) -> None:
        if self._limit is not None and self._size + len(data) > self._limit:
            raise OSError(errno.ENOSPC, "No space left on device", self.path)
        self._writer.write(data)
        self._digest.update(data)
        self._size += len(data)

    def close(self) -> dict[str, object]:
        if self._compressor:
            self._emit(self._compressor.flush())
        self._writer.close()
        return {
            "name": self.name,
            "records": self.records,
            "bytes": self._size,
            "sha256": self._digest.hexdigest(),
        }

    def discard(self) -> None:
        self._writer.discard()


@dataclasses.dataclass
class _Index:
    """Where each bucket's records are in each run: record and byte offsets."""

    boundaries: np.ndarray  # [K + 1] key boundaries
    records: list[np.ndarray]  # per run [K + 1]
    bytes: list[np.ndarray]  # per run [K + 1]


def _index(runs: list[Run], total_bytes: int) -> _Index:
    buckets = max(1, math.ceil(total_bytes / BUCKET_BYTES))
    edges = [(j << 64) // buckets for j in range(buckets)] + [2**64]
    boundaries = np.array(edges[:-1], np.uint64)
    records, offsets = [], []
    for run in runs:
        with RunReader(run.path) as reader:
            keys, lengths = reader.keys(), reader.lengths()
        at = np.append(np.searchsorted(keys, boundaries, side="left"), len(keys))
        cumulative = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        records.append(at.astype(np.int64))
        offsets.append(cumulative[at])
    return _Index(boundaries, records, offsets)


def _bucket(runs: list[Run], index: _Index, j: int) -> tuple[list[memoryview], np.ndarray]:
    """Bucket j's records in key order, and their (unit, piece, ordinal) provenance."""
    keys, lengths, sources, units, pieces, ordinals, blobs = [], [], [], [], [], [], []
    for r, run in enumerate(runs):
        lo, hi = index.records[r][j], index.records[r][j + 1]
        if hi == lo:
            continue
        with RunReader(run.path) as reader:
            keys.append(reader.keys(lo, hi))
            lengths.append(reader.lengths(lo, hi))
            ordinals.append(reader.ordinals(lo, hi))
            pieces.append(reader.pieces(lo, hi))
            blobs.append(memoryview(reader.data(index.bytes[r][j], index.bytes[r][j + 1])))
        sources.append(np.full(hi - lo, len(blobs) - 1, np.int64))
        units.append(np.full(hi - lo, run.unit, np.uint32))
    if not keys:
        return [], np.zeros((0, 3), np.uint32)
    all_lengths = np.concatenate(lengths).astype(np.int64)
    starts = np.concatenate([np.cumsum(n, dtype=np.int64) - n for n in lengths])
    order = np.argsort(np.concatenate(keys), kind="stable")
    source = np.concatenate(sources)[order].tolist()
    start = starts[order].tolist()
    end = (starts[order] + all_lengths[order]).tolist()
    records = [blobs[s][a:b] for s, a, b in zip(source, start, end, strict=True)]
    columns = [np.concatenate(c)[order] for c in (units, pieces, ordinals)]
    return records, np.stack(columns, axis=1).astype(np.uint32)


def merge(
    runs: list[Run],
    total_records: int,
    total_bytes: int,
    shards: int,
    compression: str,
    staged_path: Callable[[str], str],
    on_shard: Callable[[int], None] = lambda records: None,
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Writes the shards (and the provenance file) into staging; returns their manifest entries:
    (shards, provenance)."""
    if total_records == 0:
        raise DataError("no records to write")
    if shards > total_records:
        raise DataError(
            f"num_shards {shards} is more than the {total_records} records of this build"
        )
    index = _index(runs, total_bytes)
    found = sum(int(r[-1]) for r in index.records)
    if found != total_records:
        raise DataError(f"kept records: {found} in the runs, {total_records} expected")
    ends = [(s + 1) * total_records // shards for s in range(shards)]
    provenance = ShardWriter(staged_path(".mpr/provenance.bin"), ".mpr/provenance.bin", "none")
    entries: list[dict[str, object]] = []
    shard = ShardWriter(
        staged_path(shard_name(0, shards, compression)),
        shard_name(0, shards, compression),
        compression,
    )
    rank = 0
    try:
        for j in range(len(index.boundaries)):
            testhooks.point("merge")
            records, pairs = _bucket(runs, index, j)
            provenance.write(pairs.astype("<u4").tobytes(), len(records))
            i = 0
            while i < len(records):
                take = min(len(records) - i, ends[len(entries)] - rank)
                shard.write(b"".join(records[i : i + take]), take)
                i, rank = i + take, rank + take
                if rank == ends[len(entries)]:
                    entries.append(shard.close())
                    on_shard(int(entries[-1]["records"]))  # type: ignore[arg-type]
                    if len(entries) < shards:
                        name = shard_name(len(entries), shards, compression)
                        shard = ShardWriter(staged_path(name), name, compression)
        info = provenance.close()
    except BaseException:
        shard.discard()
        provenance.discard()
        raise
    return entries, info
