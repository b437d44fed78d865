"""Shard files: written under a temp name, checksummed, renamed into place when complete."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os

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
    """Writes one shard to `<dir>/.<name>.partial-<pid>` and publishes it on `close()`."""

    def __init__(self, directory: str, name: str, compression: str) -> None:
        self.name = name
        self.final_path = os.path.join(directory, name)
        self.temp_path = os.path.join(directory, f".{name}{TEMP_MARK}{os.getpid()}")
        options = tf.io.TFRecordOptions(compression_type=COMPRESSION[compression])
        self._writer = tf.io.TFRecordWriter(self.temp_path, options)
        self.records = 0
        self._written = 0

    def write(self, record: bytes) -> None:
        self._written += len(record)
        if _FAULT_AFTER is not None and self._written > _FAULT_AFTER:
            # Fault injection for tests (MPR_FAULT_DISK_FULL_AFTER=bytes): a full disk.
            raise OSError(errno.ENOSPC, "No space left on device", self.temp_path)
        self._writer.write(record)
        self.records += 1

    def close(self) -> ShardInfo:
        """Flushes, checksums and renames the shard into place; returns what the manifest lists."""
        self._writer.close()
        size, sha = file_digest(self.temp_path)
        tf.io.gfile.rename(self.temp_path, self.final_path, overwrite=True)
        return ShardInfo(self.name, self.records, size, sha)

    def abort(self) -> None:
        """Closes and removes the temp file; the final name is never touched."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - best effort on an already failing path
            pass
        if tf.io.gfile.exists(self.temp_path):
            tf.io.gfile.remove(self.temp_path)
