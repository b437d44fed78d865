"""The global merge: every kept record of a build, in key order, into balanced shards.

Each record has a 64-bit key from (seed, unit, ordinal) (`ground.hashing.record_keys`); the build's
records sorted by key (equal keys in the order of the runs given) are a seeded random
permutation of all of them, and shard s takes ranks [s*N/S, (s+1)*N/S), so shards differ by at
most one record and each is a random sample of the whole corpus in random order.

How, on an object store as on a local disk:

- Key space is cut into buckets of about BUCKET_BYTES of records. Runs are sorted by key, so a
  bucket is the next slice of every run: each run is opened once and read front to back, its
  index and its records each a stream of large reads (`runs.RunReader`). Requests grow with
  runs + bytes / block, never with runs x buckets.
- Read sizes come from a memory budget: READ_BUDGET shared by the runs, a run's share clamped to
  [MIN_BLOCK, MAX_BLOCK], an eighth of it for the index. On an object store every stream fetches
  its next block while the current one is used (READ_AHEAD_THREADS requests in flight), each
  block then half the share.
- A bucket's records, views of the readers' blocks, are put in key order by a stable argsort
  and joined into pieces of about WRITE_BYTES for a writer thread, which compresses, hashes and
  writes them (all of which release the GIL) while the next bucket is read and ordered; a
  finished shard is closed (flushed, fsynced once) by another thread while the next one is
  written. Every record is copied twice in the process: joined, then written.
- Memory, whatever the corpus size: the readers' blocks (READ_BUDGET; MIN_BLOCK per run beyond
  READ_BUDGET / MIN_BLOCK = 1024 runs; a bucket's records are in them), a bucket's index
  entries, and at most QUEUE_BYTES of records waiting for the writer.
- Files: each local run stays open while the process may hold that many files (the soft
  `ulimit -n`, less the files open, less FILES_MARGIN); beyond, each read opens its run again
  (a read is at least MIN_BLOCK, so that costs little).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import os
import queue
import resource
import struct
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.records.runs import RunReader

BUCKET_BYTES = 64 << 20
READ_BUDGET = 256 << 20
MIN_BLOCK, MAX_BLOCK = 256 << 10, 8 << 20
READ_AHEAD_THREADS = 8  # below the HTTP client's connection pool (10), so connections are reused
WRITE_BYTES = 4 << 20
QUEUE_BYTES = 32 << 20
CLOSING = 2  # finished shards being closed (fsynced) while the next one is written
FILES_MARGIN = 64  # files left for the shards, the provenance file and the rest of the process
TARGET_SHARD_BYTES = 128 << 20
SUFFIX = {"none": ".tfrecord", "gzip": ".tfrecord.gz", "zlib": ".tfrecord.zz"}
PROVENANCE = "provenance.bin"
PROVENANCE_ENTRY = struct.Struct("<III")  # per record: unit index, piece in it, ordinal


def shard_name(index: int, total: int, compression: str) -> str:
    return f"train-{index:05d}-of-{total:05d}{SUFFIX[compression]}"


def shard_count(num_shards: str | int, total_bytes: int) -> int:
    """`num_shards`, or for `auto` about TARGET_SHARD_BYTES of (uncompressed) records each."""
    if num_shards == "auto":
        return max(1, math.ceil(total_bytes / TARGET_SHARD_BYTES))
    return int(num_shards)


def read_blocks(runs: int, remote: bool) -> tuple[int, int]:
    """(record block, index block): the read sizes of each run's two streams."""
    share = min(MAX_BLOCK, max(MIN_BLOCK, READ_BUDGET // max(1, runs)))
    held = 2 if remote else 1  # with read-ahead, a stream holds the next block too
    return (share - share // 8) // held, share // 8 // held


@dataclasses.dataclass(frozen=True)
class Run:
    """A run file of kept records and the unit it belongs to (its index in the build)."""

    path: str
    unit: int


class ShardWriter:
    """One shard in staging: compressed as TensorFlow's GZIP/ZLIB record options do (a zlib
    stream in a gzip or zlib wrapper), hashed as it is written and fsynced on close by
    storage.Writer."""

    def __init__(self, path: str, name: str, compression: str) -> None:
        self.name, self.path = name, path
        wbits = {"gzip": 31, "zlib": 15}.get(compression)
        self._compressor = zlib.compressobj(wbits=wbits) if wbits else None
        self.records = 0
        self._writer = storage.Writer(path)

    def write(self, frames: bytes, records: int) -> None:
        self._writer.write(self._compressor.compress(frames) if self._compressor else frames)
        self.records += records

    def close(self) -> dict[str, object]:
        if self._compressor:
            self._writer.write(self._compressor.flush())
        self._writer.close()
        return {
            "name": self.name,
            "records": self.records,
            "bytes": self._writer.bytes,
            "sha256": self._writer.sha256(),
        }

    def discard(self) -> None:
        self._writer.discard()


class _Output:
    """The shards and the provenance file, written by a thread of their own: `write`,
    `end_shard` and `provenance` queue the work (at most QUEUE_BYTES of it), the thread
    compresses, hashes and writes it, and another one closes each finished shard (its fsync)
    while the next one is written (at most CLOSING shards wait for it). The first error of
    either thread is raised by the next call."""

    def __init__(self, names: list[str], compression: str, staged_path: Callable[[str], str]):
        self._names, self._compression, self._staged_path = names, compression, staged_path
        self._queue: queue.Queue[tuple[str, bytes, int]] = queue.Queue(
            max(2, QUEUE_BYTES // WRITE_BYTES)
        )
        self._closer = ThreadPoolExecutor(1, thread_name_prefix="merge-close")
        self._closing: list[Future[dict[str, object]]] = []
        self._reported = 0  # shards `closed` returned
        self._error: BaseException | None = None
        self._stopping = False
        self._shard: ShardWriter | None = None
        self._provenance = ShardWriter(staged_path(PROVENANCE), PROVENANCE, "none")
        self._thread = threading.Thread(target=self._work, name="merge-writer", daemon=True)
        self._thread.start()

    def write(self, frames: bytes, records: int) -> None:
        self._put(("shard", frames, records))

    def end_shard(self) -> None:
        self._put(("end", b"", 0))

    def provenance(self, rows: bytes, records: int) -> None:
        self._put(("provenance", rows, records))

    def _put(self, item: tuple[str, bytes, int]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            kind, data, records = self._queue.get()
            if kind == "stop":
                return
            if self._error is not None or self._stopping:
                continue  # drained, so that `_put` never waits on a writer that stopped
            try:
                if kind == "provenance":
                    self._provenance.write(data, records)
                elif kind == "shard":
                    if self._shard is None:
                        name = self._names[len(self._closing)]
                        path = self._staged_path(name)
                        self._shard = ShardWriter(path, name, self._compression)
                    self._shard.write(data, records)
                else:
                    assert self._shard is not None  # every shard has a record
                    self._closing.append(self._closer.submit(self._shard.close))
                    self._shard = None
                    if len(self._closing) > CLOSING:  # so few files are open at once
                        failed = self._closing[-CLOSING - 1].exception()
                        if failed is not None:
                            raise failed
            except BaseException as error:
                self._error = error

    def closed(self) -> list[dict[str, object]]:
        """The entries of the shards closed since the last call, in order."""
        done = []
        while self._reported < len(self._closing) and self._closing[self._reported].done():
            done.append(self._closing[self._reported].result())
            self._reported += 1
        return done

    def finish(self) -> tuple[list[dict[str, object]], dict[str, object]]:
        """Waits for every shard to be written and closed; (shard entries, provenance entry)."""
        self._put(("stop", b"", 0))
        self._thread.join()
        if self._error is not None:
            raise self._error
        entries = [future.result() for future in self._closing]
        self._closer.shutdown()
        return entries, self._provenance.close()

    def abort(self) -> None:
        """Stops both threads; the shard and the provenance being written are removed (shards
        closed before stay, complete, in staging)."""
        self._stopping = True
        self._queue.put(("stop", b"", 0))
        self._thread.join()
        self._closer.shutdown(wait=True, cancel_futures=True)
        if self._shard is not None:
            self._shard.discard()
        self._provenance.discard()


def _files_room() -> int:
    """How many more files this process may open (the soft RLIMIT_NOFILE less those open)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    try:
        return soft - len(os.listdir("/proc/self/fd"))
    except OSError:
        return soft // 2


def _open(runs: list[Run], ahead: ThreadPoolExecutor | None) -> list[RunReader]:
    """A reader of each run (on an object store, READ_AHEAD_THREADS opened at a time)."""
    block, index_block = read_blocks(len(runs), ahead is not None)
    keep_open = ahead is not None or len(runs) + FILES_MARGIN <= _files_room()
    with ThreadPoolExecutor(READ_AHEAD_THREADS if ahead else 1, "merge-open") as pool:
        opening = [
            pool.submit(RunReader, run.path, block, index_block, keep_open, ahead) for run in runs
        ]
    readers = [future.result() for future in opening if future.exception() is None]
    if len(readers) < len(opening):
        for reader in readers:
            reader.close()
        raise next(f.exception() for f in opening if f.exception() is not None)  # type: ignore[misc]
    return readers


def _bucket(
    readers: list[RunReader], units: np.ndarray, bound: int | None
) -> tuple[np.ndarray, np.ndarray, list[memoryview]]:
    """The next bucket (keys below `bound`), in run order: every run's index entries, the unit
    of each, and each record's bytes (views of the readers' blocks, no copy unless a run's
    slice spans two blocks)."""
    taken = [reader.take_below(bound) for reader in readers]
    records: list[memoryview] = []
    for reader, entries in zip(readers, taken, strict=True):
        if len(entries):
            lengths = entries["length"].astype(np.int64)
            ends = np.cumsum(lengths)
            parts = reader.take_data(int(ends[-1]))
            view = parts[0] if len(parts) == 1 else memoryview(b"".join(parts))
            records += map(view.__getitem__, map(slice, (ends - lengths).tolist(), ends.tolist()))
    return np.concatenate(taken), np.repeat(units, [len(t) for t in taken]), records


def _write_bucket(
    output: _Output,
    entries: np.ndarray,
    owner: np.ndarray,
    records: list[memoryview],
    rank: int,
    ends: list[int],
    shard: int,
) -> int:
    """Queues a bucket's records (ranks from `rank` on) in key order, cut at the shards' ends
    (`ends`: each shard's last rank + 1; `shard`: the one being written) and every WRITE_BYTES,
    and their provenance; returns the shard being written after it.

    Records go in key order by a stable argsort and one slice object each, joined into pieces:
    measured faster than gathering the bytes with numpy index arithmetic (which moves some ten
    bytes of indices per byte of records)."""
    order = np.argsort(entries["key"], kind="stable")
    rows = np.empty((len(order), 3), "<u4")
    rows[:, 0], rows[:, 1], rows[:, 2] = (
        owner[order],
        entries["piece"][order],
        entries["ordinal"][order],
    )
    output.provenance(rows.tobytes(), len(order))
    ordered = list(map(records.__getitem__, order.tolist()))
    offsets = np.cumsum(entries["length"][order], dtype=np.int64)
    cuts = {len(ordered)}
    cuts.update(end - rank for end in ends[shard : bisect.bisect_right(ends, rank + len(ordered))])
    pieces = np.arange(WRITE_BYTES, int(offsets[-1]), WRITE_BYTES)
    cuts.update(np.searchsorted(offsets, pieces, side="right").tolist())
    low = 0
    for high in sorted(cuts):
        if high > low:
            output.write(b"".join(ordered[low:high]), high - low)
        if shard < len(ends) and rank + high == ends[shard]:
            output.end_shard()
            shard += 1
        low = high
    return shard


def merge(
    runs: list[Run],
    total_records: int,
    total_bytes: int,
    shards: int,
    compression: str,
    staged_path: Callable[[str], str],
    on_shard: Callable[[int], None] = lambda records: None,
) -> tuple[list[dict[str, object]], dict[str, object]]:
    """Writes the shards (named by `shard_name`) and the provenance file (PROVENANCE) at
    `staged_path(name)`; returns their entries (name, records, bytes, sha256): (shards,
    provenance). `total_bytes` (the runs' record bytes) sets the number of buckets; `on_shard`
    is called with each shard's records once it is closed, in order."""
    if total_records == 0:
        raise DataError("no records to write")
    if shards > total_records:
        raise DataError(
            f"num_shards {shards} is more than the {total_records} records of this build"
        )
    remote = any(storage.is_remote(run.path) for run in runs)
    ahead = ThreadPoolExecutor(READ_AHEAD_THREADS, "merge-read") if remote else None
    readers: list[RunReader] = []
    output: _Output | None = None
    try:
        readers = _open(runs, ahead)
        found = sum(reader.records for reader in readers)
        if found != total_records:
            raise DataError(f"kept records: {found} in the runs, {total_records} expected")
        units = np.array([run.unit for run in runs], np.uint32)
        ends = [(s + 1) * total_records // shards for s in range(shards)]
        names = [shard_name(s, shards, compression) for s in range(shards)]
        output = _Output(names, compression, staged_path)
        buckets = max(1, math.ceil(total_bytes / BUCKET_BYTES))
        bounds: list[int | None] = [((j + 1) << 64) // buckets for j in range(buckets - 1)]
        rank, shard, reported = 0, 0, 0
        for bound in [*bounds, None]:
            testhooks.point("merge")
            entries, owner, records = _bucket(readers, units, bound)
            if records:
                shard = _write_bucket(output, entries, owner, records, rank, ends, shard)
                rank += len(records)
            del records
            for entry in output.closed():
                on_shard(int(entry["records"]))  # type: ignore[call-overload]
                reported += 1
        for reader in readers:
            reader.finish()
        written, provenance = output.finish()
    except BaseException:
        if output is not None:
            output.abort()
        raise
    finally:
        for reader in readers:
            reader.close()
        if ahead is not None:
            ahead.shutdown(wait=False, cancel_futures=True)
    for entry in written[reported:]:
        on_shard(int(entry["records"]))  # type: ignore[call-overload]
    return written, provenance
