"""Files on the local disk, on Google Cloud Storage, or on any other `tf.io.gfile` filesystem.

Local paths use `os` (no TensorFlow import, real fsync and atomic renames). `gs://` paths go
through Google's own client (gcs.py: it honours STORAGE_EMULATOR_HOST, counts its requests, and
says what a directory, a rename and a read are there). Other `scheme://` paths (ram://, s3://,
...) use `tf.io.gfile`. Errors come back as OSError naming the path (FileNotFoundError for a
missing one). On object stores a rename is a copy then a delete, and there is no fsync: what
the output directory promises there is in outdir.py and the README.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from typing import IO, Any

from pretrain_records.pipeline import gcs
from pretrain_records.pipeline.errors import UsageError


def is_remote(path: str) -> bool:
    return "://" in path


_SPOOL_BYTES = 8 << 20  # a GCS object being written stays in memory up to this, then on disk


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
    if not is_remote(path) or gcs.is_gcs(path):
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
    if gcs.is_gcs(path):
        return gcs.exists(path)
    with _remote_errors(path):
        return bool(_gfile().exists(path))


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    if gcs.is_gcs(path):
        return gcs.isdir(path)
    with _remote_errors(path):
        return bool(_gfile().isdir(path))


def isfile(path: str) -> bool:
    """A regular file (local: symlinks to regular files count)."""
    if not is_remote(path):
        return os.path.isfile(path)
    if gcs.is_gcs(path):
        return gcs.isfile(path)
    return exists(path) and not isdir(path)


def listdir(path: str) -> list[str]:
    """Names in a directory, sorted (none if it does not exist). On GCS: the objects and the
    sub-prefixes directly under the prefix `path/`, without trailing slashes."""
    if not is_remote(path):
        try:
            return sorted(os.listdir(path))
        except FileNotFoundError:
            return []
    if gcs.is_gcs(path):
        return gcs.listdir(path)
    if not isdir(path):
        return []
    with _remote_errors(path):
        return sorted(name.rstrip("/") for name in _gfile().listdir(path))


def walk(path: str) -> list[str]:
    """Paths of every file under the directory `path`, recursively, sorted; none if it does not
    exist. Locally directory links are not followed (links to files are listed); on GCS it is
    one listing of the prefix `path/` (one request per 1000 objects, whatever the depth)."""
    if not is_remote(path):
        found = []
        for here, _, names in os.walk(path):
            found.extend(os.path.join(here, name) for name in names)
        return sorted(found)
    if gcs.is_gcs(path):
        return gcs.walk(path)
    if not isdir(path):
        return []
    with _remote_errors(path):
        return sorted(join(here, name) for here, _, names in _gfile().walk(path) for name in names)


def makedirs(path: str) -> None:
    """Creates a directory and its parents (a no-op on GCS, where a directory is a prefix)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    if gcs.is_gcs(path):
        return
    with _remote_errors(path):
        _gfile().makedirs(path)


def remove(path: str, missing_ok: bool = True) -> None:
    try:
        if not is_remote(path):
            os.remove(path)
            return
        if gcs.is_gcs(path):
            gcs.remove(path)
            return
        with _remote_errors(path):
            _gfile().remove(path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def rmtree(path: str) -> None:
    """Removes a directory the tool owns (its private `.mpr/` parts only). On GCS: every object
    under the prefix `path/` (one delete each), never a whole bucket."""
    if not is_remote(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    if gcs.is_gcs(path):
        gcs.rmtree(path)
        return
    if isdir(path):
        with _remote_errors(path):
            _gfile().rmtree(path)


def rename(source: str, target: str) -> None:
    """Moves the file `source` to `target`, replacing it (atomic locally; on object stores a
    copy then a delete: a failure between the two leaves both)."""
    if not is_remote(source):
        os.replace(source, target)
        return
    if gcs.is_gcs(source):
        gcs.rename(source, target)
        return
    with _remote_errors(source):
        _gfile().rename(source, target, overwrite=True)


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    if gcs.is_gcs(path):
        found = gcs.stat(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "No such object", path)
        return found[0]
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
    if gcs.is_gcs(path):
        return gcs.read_all(path)  # one request
    with open_read(path) as stream:
        return stream.read()


def open_read(path: str) -> IO[bytes]:
    """A seekable stream of the file (FileNotFoundError at once for a missing one). On GCS it
    reads 8 MiB ranges of the generation it opened (gcs.Reader)."""
    if not is_remote(path):
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    if gcs.is_gcs(path):
        return gcs.Reader(path)  # type: ignore[return-value]
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
    """A file being written: `close()` flushes it to stable storage (fsync, locally). On GCS
    the bytes are kept aside (in memory up to 8 MiB, then in a temporary file) and uploaded by
    `close()`: the object appears whole, at once, and a discarded writer uploads nothing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._gcs = gcs.is_gcs(path)
        if self._gcs:
            self._stream: Any = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        elif is_remote(path):
            # Some tf.io.gfile filesystems (ram://) append to an existing file on "wb".
            remove(path)
            with _remote_errors(path):
                self._stream = _gfile().GFile(path, "wb")
        else:
            self._stream = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, data: bytes | memoryview) -> None:
        if self._gcs:
            with _named(self.path):  # a full local disk, while spooling
                self._stream.write(data)
        elif is_remote(self.path):
            with _remote_errors(self.path):
                self._stream.write(bytes(data))
        else:
            with _named(self.path):
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
            with _remote_errors(self.path):
                self._stream.close()
            return
        with _named(self.path):
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()

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
    with _named(temp), open(temp, "wb") as stream:
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
    with _named(path), os.fdopen(fd, "wb") as stream:
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
