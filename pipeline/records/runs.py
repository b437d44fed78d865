"""Kept records: a unit's masked records, sorted by their shuffle keys, in run files.

A run file (format MPRRUN03) holds n records in three parts, each in key order:

    header   MAGIC, n (uint64), the records' bytes (uint64)                   HEADER_BYTES
    index    per record: key (uint64), length, ordinal in the unit, piece     INDEX_BYTES each
             of the unit it came from (uint32 each)
    records  their TFRecord frames, back to back

The merge reads a run front to back, once: its index and its records each as a stream of large
reads (`RunReader`), taking the entries below a key bound and then their records' bytes, so a
run costs one open and (index + records) / block reads whatever the number of key ranges the
merge cuts. A run of an older format (MPRRUN02 kept its index column by column) is refused.
"""

from __future__ import annotations

import dataclasses
import errno
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError

MAGIC = b"MPRRUN03"
HEADER = struct.Struct("<8sQQ")  # magic, records, record bytes
HEADER_BYTES = HEADER.size  # 24
INDEX = np.dtype([("key", "<u8"), ("length", "<u4"), ("ordinal", "<u4"), ("piece", "<u4")])
INDEX_BYTES = INDEX.itemsize  # 20: packed
WRITE_BYTES = 8 << 20  # records joined per write of a run


@dataclasses.dataclass(frozen=True)
class RunInfo:
    name: str
    records: int
    bytes: int
    sha256: str


def write_run(
    path: str,
    keys: np.ndarray,
    ordinals: np.ndarray,
    pieces: np.ndarray,
    records: Sequence[bytes],
) -> RunInfo:
    """Writes records (any order) sorted by key (ties in the order given), in writes of about
    WRITE_BYTES; fsynced before it returns."""
    order = np.argsort(keys, kind="stable")
    lengths = np.fromiter(map(len, records), np.int64, len(records))[order]
    index = np.empty(len(records), INDEX)
    index["key"], index["length"] = keys[order], lengths
    index["ordinal"], index["piece"] = ordinals[order], pieces[order]
    total = int(lengths.sum())
    pieces_at = np.arange(WRITE_BYTES, total, WRITE_BYTES)
    cuts = np.searchsorted(np.cumsum(lengths), pieces_at, side="right").tolist()
    ranks = order.tolist()
    writer = storage.Writer(path)  # fsynced, hashed, and stopped by a test's full disk
    try:
        writer.write(HEADER.pack(MAGIC, len(records), total))
        writer.write(index.tobytes())
        for lo, hi in zip([0, *cuts], [*cuts, len(ranks)], strict=True):
            if hi > lo:
                writer.write(b"".join([records[i] for i in ranks[lo:hi]]))
        writer.close()
    except BaseException:
        writer.discard()
        raise
    return RunInfo(path.rsplit("/", 1)[-1], len(records), writer.bytes, writer.sha256())


def read_header(path: str, header: bytes) -> tuple[int, int]:
    """(records, record bytes) from a run's first HEADER_BYTES bytes; DataError for a file that
    is not a run of this format."""
    if len(header) != HEADER_BYTES or header[:8] != MAGIC:
        raise DataError(f"{path}: not a run of kept records of format {MAGIC.decode()}")
    _, records, data_bytes = HEADER.unpack(header)
    return records, data_bytes


Read = Callable[[int, int], bytes]  # (offset, count) -> exactly count bytes


class _Blocks:
    """Bytes [start, end) of a file, fetched front to back in reads of `block` bytes; with an
    executor, the next block is fetched while the current one is used."""

    def __init__(self, read: Read, start: int, end: int, block: int, ahead: Executor | None):
        self._read, self._end, self._block, self._ahead = read, end, block, ahead
        self._next = start  # offset of the next block to fetch
        self._pending: Future[bytes] | None = None
        if ahead is not None and (span := self._span()) is not None:
            self._pending = ahead.submit(read, *span)  # every stream starts fetching at once

    def _span(self) -> tuple[int, int] | None:
        """(offset, count) of the next block to fetch, or None past the end."""
        if self._next >= self._end:
            return None
        offset, count = self._next, min(self._block, self._end - self._next)
        self._next += count
        return offset, count

    def next(self) -> bytes | None:
        """The next block, or None after the last."""
        if self._pending is not None:
            data, self._pending = self._pending.result(), None
        else:
            span = self._span()
            if span is None:
                return None
            data = self._read(*span)
        if self._ahead is not None and (span := self._span()) is not None:
            self._pending = self._ahead.submit(self._read, *span)
        return data

    def cancel(self) -> None:
        """Drops a block being fetched ahead (its result, if it comes, is not used)."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None


class RunReader:
    """A run file read once, front to back, in two streams of large reads: its index entries
    (`take_below`) and the records they describe (`take_data`).

    `block` and `index_block` are the read sizes of the two streams (the index's is rounded down
    to whole entries). `keep_open=False` opens the file for each read instead of holding it
    (for more runs than the process may keep files open; on an object store a reader holds no
    file, so keep it open there: an opening costs a request). `read_ahead`, an executor, fetches
    each stream's next block while the current one is used (an object store's round trip)."""

    def __init__(
        self,
        path: str,
        block: int = 1 << 20,
        index_block: int = 128 << 10,
        keep_open: bool = True,
        read_ahead: Executor | None = None,
    ) -> None:
        self.path = path
        self._file = storage.RandomReader(path) if keep_open else None
        try:
            self.records, self.data_bytes = read_header(path, self._read(0, HEADER_BYTES))
        except BaseException:
            self.close()
            raise
        data_at = HEADER_BYTES + INDEX_BYTES * self.records
        index_block = max(INDEX_BYTES, index_block // INDEX_BYTES * INDEX_BYTES)
        self._index = _Blocks(self._read, HEADER_BYTES, data_at, index_block, read_ahead)
        self._data = _Blocks(
            self._read, data_at, data_at + self.data_bytes, max(1, block), read_ahead
        )
        self._entries = np.zeros(0, INDEX)  # the current index block, from `_entry` on
        self._entry = 0
        self._buffer, self._at = memoryview(b""), 0  # the current record block, from `_at` on
        self._taken = [0, 0]  # entries, record bytes

    def _read(self, offset: int, count: int) -> bytes:
        try:
            if self._file is not None:
                return self._file.read(offset, count)
            with storage.RandomReader(self.path) as file:
                return file.read(offset, count)
        except OSError as error:
            if error.errno == errno.EIO and "short read" in str(error.strerror):
                raise DataError(f"{self.path}: the run ends early (damaged)") from None
            raise

    def take_below(self, bound: int | None) -> np.ndarray:
        """The next index entries whose key is below `bound` (all the rest for None), in order."""
        parts = []
        while True:
            if self._entry == len(self._entries):
                block = self._index.next()
                if block is None:
                    break
                self._entries, self._entry = np.frombuffer(block, INDEX), 0
            keys = self._entries["key"][self._entry :]
            stop = len(keys) if bound is None else int(np.searchsorted(keys, np.uint64(bound)))
            parts.append(self._entries[self._entry : self._entry + stop])
            self._entry += stop
            if self._entry < len(self._entries):
                break
        taken = parts[0] if len(parts) == 1 else np.concatenate(parts or [self._entries[:0]])
        self._taken[0] += len(taken)
        return taken

    def take_data(self, count: int) -> list[memoryview]:
        """The next `count` bytes of records, as one or more pieces."""
        parts = []
        self._taken[1] += count
        if self._taken[1] > self.data_bytes:
            raise DataError(f"{self.path}: its index describes more bytes than it holds")
        while count > 0:
            if self._at == len(self._buffer):
                block = self._data.next()
                assert block is not None  # the check above
                self._buffer, self._at = memoryview(block), 0
            part = self._buffer[self._at : self._at + count]
            parts.append(part)
            self._at += len(part)
            count -= len(part)
        return parts

    def finish(self) -> None:
        """Checks that every entry and every record byte was taken."""
        if self._taken != [self.records, self.data_bytes]:
            raise DataError(
                f"{self.path}: {self._taken[0]} of {self.records} records and "
                f"{self._taken[1]} of {self.data_bytes} bytes read (damaged)"
            )

    def close(self) -> None:
        for stream in (getattr(self, "_index", None), getattr(self, "_data", None)):
            if stream is not None:
                stream.cancel()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
