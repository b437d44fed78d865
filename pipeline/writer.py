"""Shard files: written under a temp name, checksummed, renamed into place when complete."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import zlib

import tensorflow as tf

TEMP_MARK = ".partial-"
_FAULT = os.environ.get("MPR_FAULT_DISK_FULL_AFTER")
_FAULT_AFTER = int(_FAULT) if _FAULT else None
COMPRESSION = {"none": "", "gzip": "GZIP", "zlib": "ZLIB"}
SUFFIX = {"none": ".tfrecord", "gzip": ".tfrecord.gz", "zlib": ".tfrecord.zz"}


@dataclasses.dataclass(frozen=True)
class ShardInfo:
    name: str
    records: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def shard_name(index: int, total: int, compression: str) -> str:
    return f"train-{index:05d}-of-{total:05d}{SUFFIX[compression]}"


def file_digest(path: str) -> tuple[int, str]:
    """(bytes, sha256) of a file."""
    digest = hashlib.sha256()
    size = 0
    with tf.io.gfile.GFile(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class ShardWriter:
    """Writes one shard to `<dir>/.<name>.partial-<pid>` and publishes it on `close()`.

    Takes records already framed as TFRecords (EncodeExamples' `tfrecord_frame`), many at a
    time; compresses them as TensorFlow's GZIP/ZLIB record options do (a zlib stream with a
    gzip or zlib wrapper) and checksums the file as it is written.
    """

    def __init__(self, directory: str, name: str, compression: str) -> None:
        self.name = name
        self.final_path = os.path.join(directory, name)
        self.temp_path = os.path.join(directory, f".{name}{TEMP_MARK}{os.getpid()}")
        self._file = open(self.temp_path, "wb")  # noqa: SIM115 - closed by close()/abort()
        wbits = {"gzip": 31, "zlib": 15}.get(compression)
        self._compressor = zlib.compressobj(wbits=wbits) if wbits else None
        self._digest = hashlib.sha256()
        self._size = 0
        self.records = 0
        self._written = 0

    def write(self, frames: bytes, records: int = 1) -> None:
        """Appends `records` framed records (their frames concatenated)."""
        self._written += len(frames)
        if _FAULT_AFTER is not None and self._written > _FAULT_AFTER:
            # Fault injection for tests (MPR_FAULT_DISK_FULL_AFTER=bytes): a full disk.
            raise OSError(errno.ENOSPC, "No space left on device", self.temp_path)
        self._emit(self._compressor.compress(frames) if self._compressor else frames)
        self.records += records

    def _emit(self, data: bytes) -> None:
        self._file.write(data)
        self._digest.update(data)
        self._size += len(data)

    def close(self) -> ShardInfo:
        """Flushes, checksums and renames the shard into place; returns what the manifest lists."""
        if self._compressor:
            self._emit(self._compressor.flush())
        self._file.close()
        os.replace(self.temp_path, self.final_path)
        return ShardInfo(self.name, self.records, self._size, self._digest.hexdigest())

    def abort(self) -> None:
        """Closes and removes the temp file; the final name is never touched."""
        self._file.close()
        if os.path.exists(self.temp_path):
            os.remove(self.temp_path)
