"""Reading and writing files wherever they are (files.py says where): one writer for every
file the tool writes (fsynced locally, uploaded whole on GCS, hashed as it is written, with the
test hook of a full disk), streams and ranged reads.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import tempfile
import threading
from typing import IO, Any

from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.storage import gcs, gcs_reader
from pretrain_records.pipeline.storage.files import (
    exists,
    gfile,
    is_remote,
    named,
    remote_errors,
    remove,
    rename,
)

_SPOOL_BYTES = 8 << 20  # a GCS object being written stays in memory up to this, then on disk


def file_sha256(path: str) -> tuple[int, str]:
    """(bytes, sha256) of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open_read(path) as stream:
        while block := stream.read(4 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def read_bytes(path: str) -> bytes:
    if gcs.is_gcs(path):
        return gcs.read_all(path)  # one request
    with open_read(path) as stream:
        return stream.read()


def open_read(path: str) -> IO[bytes]:
    """A seekable stream of the file (FileNotFoundError at once for a missing one). On GCS it
    reads 8 MiB ranges of the generation it opened (gcs_reader.Reader)."""
    if not is_remote(path):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    if gcs.is_gcs(path):
        return gcs_reader.Reader(path)  # type: ignore[return-value]
    return _RemoteReader(path)  # type: ignore[return-value]


class _RemoteReader(io.RawIOBase):
    """A tf.io.gfile file read as a Python stream, its errors as OSError."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        with remote_errors(path):
            if not gfile().exists(path):
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            self._stream = gfile().GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with remote_errors(self.path):
            return self._stream.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        with remote_errors(self.path):
            self._stream.seek(offset, whence)
            return int(self._stream.tell())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        super().close()


class Writer:
    """A file being written, the one writer of every file the tool writes: `close()` flushes it
    to stable storage (one fsync, locally). On GCS the bytes are kept aside (in memory up to 8
    MiB, then in a temporary file) and uploaded by `close()`: the object appears whole, at once,
    and a discarded writer uploads nothing. It counts and hashes what it writes (`bytes`,
    `sha256()`), and a test's simulated full disk (testhooks.disk_full_after) stops it."""

    def __init__(self, path: str, durable: bool = True) -> None:
        self.path = path
        self.bytes = 0
        self._durable = durable  # False: scratch a crash may lose (no fsync)
        self._digest = hashlib.sha256()
        self._limit = testhooks.disk_full_after()
        self._gcs = gcs.is_gcs(path)
        if self._gcs:
            self._stream: Any = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        elif is_remote(path):
            # Some tf.io.gfile filesystems (ram://) append to an existing file on "wb".
            remove(path)
            with remote_errors(path):
                self._stream = gfile().GFile(path, "wb")
        else:
            self._stream = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, data: bytes | memoryview) -> None:
        if self._limit is not None and self.bytes + len(data) > self._limit:
            raise OSError(errno.ENOSPC, "No space left on device", self.path)
        self.bytes += len(data)
        self._digest.update(data)
        if self._gcs:
            with named(self.path):  # a full local disk, while spooling
                self._stream.write(data)
        elif is_remote(self.path):
            with remote_errors(self.path):
                self._stream.write(bytes(data))
        else:
            with named(self.path):
                self._stream.write(data)

    def close(self) -> None:
        if self._gcs:
            try:
                size = self._stream.tell()
                self._stream.seek(0)
                gcs.upload(self.path, self._stream, size)
            finally:
                self._stream.close()
            return
        if is_remote(self.path):
            with remote_errors(self.path):
                self._stream.close()
            return
        with named(self.path):
            self._stream.flush()
            if self._durable:
                os.fsync(self._stream.fileno())
            self._stream.close()

    def sha256(self) -> str:
        """The hex sha256 of the bytes written so far."""
        return self._digest.hexdigest()

    def discard(self) -> None:
        """Closes without flushing and removes the file (on GCS: uploads nothing, and deletes
        an object already at the path, as a local writer would have replaced it)."""
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(OSError):
            remove(self.path)


def write_bytes(path: str, data: bytes) -> None:
    """Writes a whole file durably and atomically: a temp file then a rename (on an object
    store the rename is a copy, which replaces the object at once). On GCS an upload is already
    all-or-nothing: one request, no temp object."""
    if gcs.is_gcs(path):
        gcs.upload_bytes(path, data)
        return
    temp = f"{path}.partial-{os.getpid()}"
    writer = Writer(temp)
    try:
        writer.write(data)
        writer.close()
    except BaseException:
        writer.discard()
        raise
    rename(temp, path)


def sync_directory(path: str) -> None:
    """Makes renames inside a local directory durable (no-op on object stores)."""
    if is_remote(path):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_exclusive(path: str, data: bytes) -> bool:
    """Writes the file `path` only if nothing is there: True if this call wrote it, False if a
    file was there already. For a lock: give each caller unique `data` (its owner).

    Locally the data goes to a temporary file, then `os.link` puts it at `path` (atomic, fails
    if `path` exists; readers never see a partial file); on a filesystem without hard links,
    `O_CREAT | O_EXCL`. On GCS the upload carries `ifGenerationMatch=0`, checked atomically by
    GCS (gcs.create_exclusive says what an emulator that ignores it still gets). On the other
    `tf.io.gfile` filesystems it is NOT atomic: a check, then a write; two callers at the same
    moment can both get True.
    """
    if gcs.is_gcs(path):
        return gcs.create_exclusive(path, data)
    if is_remote(path):
        if exists(path):
            return False
        write_bytes(path, data)
        return True
    temp = f"{path}.partial-{os.getpid()}-{threading.get_ident()}"
    with named(temp), open(temp, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        return _create_exclusive_without_links(path, data)
    finally:
        with contextlib.suppress(OSError):
            os.remove(temp)
    sync_directory(os.path.dirname(path) or ".")
    return True


def _create_exclusive_without_links(path: str, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with named(path), os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())
    sync_directory(os.path.dirname(path) or ".")
    return True


class RandomReader:
    """Reads byte ranges of one file (pread locally; one ranged GET per read on GCS, of the
    generation it opened; seek + read through gfile). Safe to share between threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._gcs = gcs.is_gcs(path)
        self._remote = is_remote(path)
        if self._gcs:
            found = gcs.stat(path)
            if found is None:
                raise FileNotFoundError(errno.ENOENT, "No such object", path)
            self._size, self._generation = found
        elif self._remote:
            self._stream = open_read(path)
            self._seeking = threading.Lock()  # one stream: a seek and its read go together
        else:
            self._fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, count: int) -> bytes:
        if count <= 0:
            return b""
        if self._gcs:
            end = min(offset + count, self._size)
            data = gcs.read_range(self.path, offset, end - offset, self._generation)
        elif self._remote:
            with self._seeking:
                self._stream.seek(offset)
                data = self._stream.read(count)
        else:
            data = os.pread(self._fd, count, offset)
            while len(data) < count:  # pread may return less than asked
                more = os.pread(self._fd, count - len(data), offset + len(data))
                if not more:
                    break
                data += more
        if len(data) != count:
            raise OSError(errno.EIO, f"short read ({len(data)} of {count} bytes)", self.path)
        return data

    def close(self) -> None:
        if self._gcs:
            return
        if self._remote:
            self._stream.close()
        else:
            os.close(self._fd)

    def __enter__(self) -> RandomReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
