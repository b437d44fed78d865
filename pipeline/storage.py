"""Files on the local disk or on any `tf.io.gfile` filesystem (gs://, ram://, ...).

Local paths use `os` (no TensorFlow import, real fsync and atomic renames); `scheme://` paths
use `tf.io.gfile`, whose errors come back as OSError naming the path. On object stores a
rename is a copy then a delete, and there is no fsync: what the output directory promises there
is in outdir.py and the README.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
from collections.abc import Iterator
from typing import IO, Any

from pretrain_records.pipeline.errors import UsageError


def is_remote(path: str) -> bool:
    return "://" in path


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


@contextlib.contextmanager
def _remote_errors(path: str) -> Iterator[None]:
    """tf.io.gfile errors as OSError (FileNotFoundError for a missing path)."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.NotFoundError as error:
        raise FileNotFoundError(errno.ENOENT, _first_line(error, "No such file"), path) from None
    except tf.errors.OpError as error:
        raise OSError(errno.EIO, _first_line(error, type(error).__name__), path) from None


@contextlib.contextmanager
def _named(path: str) -> Iterator[None]:
    """OSErrors (a full disk) name the file being written."""
    try:
        yield
    except OSError as error:
        if error.filename:
            raise
        raise OSError(error.errno, error.strerror, path) from None


def _first_line(error: Any, default: str) -> str:
    lines = str(getattr(error, "message", "") or "").strip().splitlines()
    return lines[0] if lines else default


def check_location(path: str, what: str) -> None:
    """UsageError (exit 2) at once for a `scheme://` TensorFlow has no filesystem for."""
    if not is_remote(path):
        return
    scheme = path.split("://", 1)[0]
    import tensorflow as tf

    try:
        tf.io.gfile.exists(path)
    except tf.errors.UnimplementedError:
        raise UsageError(
            f"{what} {path}: TensorFlow has no filesystem for {scheme}:// "
            "(local paths, gs:// and the other tf.io.gfile schemes work)"
        ) from None
    except tf.errors.OpError:
        pass  # reachable later or not: the first real operation says which


def join(base: str, *parts: str) -> str:
    if is_remote(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.lexists(path)
    with _remote_errors(path):
        return bool(_gfile().exists(path))


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    with _remote_errors(path):
        return bool(_gfile().isdir(path))


def isfile(path: str) -> bool:
    """A regular file (local: symlinks to regular files count)."""
    if not is_remote(path):
        return os.path.isfile(path)
    return exists(path) and not isdir(path)


def listdir(path: str) -> list[str]:
    """Names in a directory (none if it does not exist)."""
    if not is_remote(path):
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []
    if not isdir(path):
        return []
    with _remote_errors(path):
        return sorted(name.rstrip("/") for name in _gfile().listdir(path))


def makedirs(path: str) -> None:
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    with _remote_errors(path):
        _gfile().makedirs(path)


def remove(path: str, missing_ok: bool = True) -> None:
    try:
        if not is_remote(path):
            os.remove(path)
            return
        with _remote_errors(path):
            _gfile().remove(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def rmtree(path: str) -> None:
    """Removes a directory the tool owns (its private `.mpr/` parts only)."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    if isdir(path):
        with _remote_errors(path):
            _gfile().rmtree(path)


def rename(source: str, target: str) -> None:
    """Moves `source` to `target`, replacing it (atomic locally; a copy + delete on object
    stores)."""
    if not is_remote(source):
        os.replace(source, target)
        return
    with _remote_errors(source):
        _gfile().rename(source, target, overwrite=True)


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    with _remote_errors(path):
        return int(_gfile().stat(path).length)


def file_sha256(path: str) -> tuple[int, str]:
    """(bytes, sha256) of a file, read in blocks."""
    digest, size = hashlib.sha256(), 0
    with open_read(path) as stream:
        while block := stream.read(4 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def read_bytes(path: str) -> bytes:
    with open_read(path) as stream:
        return stream.read()


def open_read(path: str) -> IO[bytes]:
    if not is_remote(path):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    return _RemoteReader(path)  # type: ignore[return-value]


class _RemoteReader(io.RawIOBase):
    """A tf.io.gfile file read as a Python stream, its errors as OSError."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        with _remote_errors(path):
            if not _gfile().exists(path):
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            self._stream = _gfile().GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with _remote_errors(self.path):
            return self._stream.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        with _remote_errors(self.path):
            self._stream.seek(offset, whence)
            return int(self._stream.tell())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()
        super().close()


class Writer:
    """A file being written: `close()` flushes it to stable storage (fsync, locally)."""

    def __init__(self, path: str) -> None:
        self.path = path
        if is_remote(path):
            # Some tf.io.gfile filesystems (ram://) append to an existing file on "wb".
            remove(path)
            with _remote_errors(path):
                self._stream: Any = _gfile().GFile(path, "wb")
        else:
            self._stream = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, data: bytes | memoryview) -> None:
        if is_remote(self.path):
            with _remote_errors(self.path):
                self._stream.write(bytes(data))
        else:
            with _named(self.path):
                self._stream.write(data)

    def close(self) -> None:
        if is_remote(self.path):
            with _remote_errors(self.path):
                self._stream.close()
            return
        with _named(self.path):
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()

    def discard(self) -> None:
        """Closes without flushing and removes the file."""
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(OSError):
            remove(self.path)


def write_bytes(path: str, data: bytes) -> None:
    """Writes a whole file durably and atomically: a temp file then a rename (on an object
    store the rename is a copy, which replaces the object at once)."""
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


class RandomReader:
    """Reads byte ranges of one file (pread locally, seek + read through gfile)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._remote = is_remote(path)
        if self._remote:
            self._stream = open_read(path)
        else:
            self._fd = os.open(path, os.O_RDONLY)

    def read(self, offset: int, count: int) -> bytes:
        if count <= 0:
            return b""
        if self._remote:
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
        if self._remote:
            self._stream.close()
        else:
            os.close(self._fd)

    def __enter__(self) -> RandomReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
