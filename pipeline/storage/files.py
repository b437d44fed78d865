"""Paths on the local disk, on Google Cloud Storage, or on any other `tf.io.gfile` filesystem:
what is there, listing, making, removing and renaming (streams.py reads and writes them).

Local paths use `os` (no TensorFlow import, atomic renames). `gs://` paths go through Google's
own client (gcs.py: it honours STORAGE_EMULATOR_HOST, counts its requests, and says what a
directory and a rename are there). Other `scheme://` paths (ram://, s3://, ...) use
`tf.io.gfile`. Errors come back as OSError naming the path (FileNotFoundError for a missing
one). On object stores a rename is a copy then a delete: what the output directory promises
there is in outdir/ and the README.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from typing import Any

from pretrain_records.pipeline.ground.errors import UsageError
from pretrain_records.pipeline.storage import gcs


def is_remote(path: str) -> bool:
    return "://" in path


def gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


@contextlib.contextmanager
def remote_errors(path: str) -> Iterator[None]:
    """tf.io.gfile errors as OSError (FileNotFoundError for a missing path)."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.NotFoundError as error:
        raise FileNotFoundError(errno.ENOENT, _first_line(error, "No such file"), path) from None
    except tf.errors.OpError as error:
        raise OSError(errno.EIO, _first_line(error, type(error).__name__), path) from None


@contextlib.contextmanager
def named(path: str) -> Iterator[None]:
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
    with remote_errors(path):
        return bool(gfile().exists(path))


def isdir(path: str) -> bool:
    if not is_remote(path):
        return os.path.isdir(path)
    if gcs.is_gcs(path):
        return gcs.isdir(path)
    with remote_errors(path):
        return bool(gfile().isdir(path))


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
    with remote_errors(path):
        return sorted(name.rstrip("/") for name in gfile().listdir(path))


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
    with remote_errors(path):
        return sorted(join(here, name) for here, _, names in gfile().walk(path) for name in names)


def makedirs(path: str) -> None:
    """Creates a directory and its parents (a no-op on GCS, where a directory is a prefix)."""
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    if gcs.is_gcs(path):
        return
    with remote_errors(path):
        gfile().makedirs(path)


def remove(path: str, missing_ok: bool = True) -> None:
    try:
        if not is_remote(path):
            os.remove(path)
            return
        if gcs.is_gcs(path):
            gcs.remove(path)
            return
        with remote_errors(path):
            gfile().remove(path)
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
        with remote_errors(path):
            gfile().rmtree(path)


def rename(source: str, target: str) -> None:
    """Moves the file `source` to `target`, replacing it (atomic locally; on object stores a
    copy then a delete: a failure between the two leaves both)."""
    if not is_remote(source):
        os.replace(source, target)
        return
    if gcs.is_gcs(source):
        gcs.rename(source, target)
        return
    with remote_errors(source):
        gfile().rename(source, target, overwrite=True)


def size(path: str) -> int:
    if not is_remote(path):
        return os.path.getsize(path)
    if gcs.is_gcs(path):
        found = gcs.stat(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "No such object", path)
        return found[0]
    with remote_errors(path):
        return int(gfile().stat(path).length)
