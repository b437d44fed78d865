"""Kept records: a unit's masked records, sorted by their shuffle keys, in run files.

A run file holds n records: a header (magic, n), then their keys (uint64), lengths (uint32),
ordinals in the unit (uint32) and pieces of the unit they came from (uint32), then the records
themselves (TFRecord frames), all in key order. The merge reads any key range of a run with a
few reads, whatever the run's size.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import struct

import numpy as np
from pretrain_records.pipeline import storage, testhooks
from pretrain_records.pipeline.errors import DataError

MAGIC = b"MPRRUN02"
INDEX_BYTES = 20  # per record: key, length, ordinal, piece
HEADER_BYTES = 16

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, elementwise on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def record_keys(unit_seed: int, ordinals: np.ndarray) -> np.ndarray:
    """The shuffle key of each record of a unit: a 64-bit hash of (unit seed, ordinal).
    Sorting every record of a build by key is a seeded random permutation of them."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([unit_seed & (2**64 - 1)], np.uint64))[0]
        return _mix(base + (ordinals.astype(np.uint64) + np.uint64(1)) * _GOLDEN)


@dataclasses.dataclass(frozen=True)
class RunInfo:
    name: str
    records: int
    bytes: int
    sha256: str


def write_run(
    path: str, keys: np.ndarray, ordinals: np.ndarray, pieces: np.ndarray, records: list[bytes]
) -> RunInfo:
    """Writes records (any order) sorted by key; fsynced before it returns."""
    order = np.argsort(keys, kind="stable")
    lengths = np.fromiter(map(len, records), np.uint32, len(records))
    parts = [
        MAGIC,
        struct.pack("<Q", len(records)),
        keys[order].astype("<u8").tobytes(),
        lengths[order].astype("<u4").tobytes(),
        ordinals[order].astype("<u4").tobytes(),
        pieces[order].astype("<u4").tobytes(),
    ]
    digest, size = hashlib.sha256(), 0
    writer = storage.Writer(path)
    limit = testhooks.disk_full_after()
    try:
        for part in parts + [b"".join([records[i] for i in order])]:
            size += len(part)
            if limit is not None and size > limit:
                raise OSError(errno.ENOSPC, "No space left on device", path)
            writer.write(part)
            digest.update(part)
        writer.close()
    except BaseException:
        writer.discard()
        raise
    return RunInfo(path.rsplit("/", 1)[-1], len(records), size, digest.hexdigest())


class RunReader:
    """Key ranges of one run file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = storage.RandomReader(path)
        header = self._file.read(0, HEADER_BYTES)
        if header[:8] != MAGIC:
            self._file.close()
            raise DataError(f"{path}: not a run of kept records (rerun with --force)")
        self.records = struct.unpack("<Q", header[8:])[0]
        n = self.records
        self._keys_at, self._lengths_at = HEADER_BYTES, HEADER_BYTES + 8 * n
        self._ordinals_at, self._pieces_at = HEADER_BYTES + 12 * n, HEADER_BYTES + 16 * n
        self._data_at = HEADER_BYTES + INDEX_BYTES * n

    def keys(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        hi = self.records if hi is None else hi
        return np.frombuffer(self._file.read(self._keys_at + 8 * lo, 8 * (hi - lo)), "<u8")

    def lengths(self, lo: int = 0, hi: int | None = None) -> np.ndarray:
        hi = self.records if hi is None else hi
        return np.frombuffer(self._file.read(self._lengths_at + 4 * lo, 4 * (hi - lo)), "<u4")

    def ordinals(self, lo: int, hi: int) -> np.ndarray:
        return np.frombuffer(self._file.read(self._ordinals_at + 4 * lo, 4 * (hi - lo)), "<u4")

    def pieces(self, lo: int, hi: int) -> np.ndarray:
        return np.frombuffer(self._file.read(self._pieces_at + 4 * lo, 4 * (hi - lo)), "<u4")

    def data(self, start: int, end: int) -> bytes:
        """Record bytes [start, end) counted from the first record."""
        return self._file.read(self._data_at + start, end - start)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
