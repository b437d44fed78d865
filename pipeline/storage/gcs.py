"""`gs://` paths through Google's own client (google-cloud-storage), every request counted.

TensorFlow's GCS filesystem cannot be pointed at another server; this client honours
`STORAGE_EMULATOR_HOST` (`http://127.0.0.1:9023`, or `host:port`), so the tests run the tool
against a GCS API server on localhost, with the code used in production. Without it, the
client uses the machine's default credentials (`gcloud auth application-default login`, a VM's
service account).

Object-store semantics, as `storage` presents them:

- A "directory" is a name prefix: it exists while an object's name starts with `DIR/`.
  Nothing creates one (`makedirs` is a no-op); `DIR/` placeholder objects (left by other tools)
  count as the directory, never as a file in it.
- An upload replaces the object whole, at once: readers see the old bytes or the new ones.
- A rename is a server-side copy then a delete (two requests, not atomic: a failure between
  them leaves both names).
- A reader pins the object's generation when it opens: if the object is replaced while it is
  read, the next read fails (FileNotFoundError) rather than mixing two versions.
- Errors: FileNotFoundError for a missing object or bucket, OSError otherwise, each naming the
  `gs://` path.

Request counting: every HTTP request the client makes (retries included, background ones
none: the client's bucket-metadata prefetch is turned off) is counted by kind: `list`, `read`
(object bytes), `write` (uploads: one request up to 8 MiB, a resumable session and its chunks
beyond), `delete`, `copy` and `metadata` (an object's or a bucket's metadata). `requests()`
returns this process's counts and `reset_requests()` zeroes them. With the environment
variable `MPR_COUNT_REQUESTS=PATH`, every process that makes requests (a build's worker
processes too) also appends one line per request, `KIND METHOD STATUS URL-PATH`, to PATH as it
is answered, so nothing is lost when a process is killed; `read_request_log(PATH)` adds them up.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import os
import threading
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import urlsplit

KINDS = ("list", "read", "write", "delete", "copy", "metadata")
BLOCK = 8 << 20  # bytes a sequential reader fetches per request
COUNT_ENV = "MPR_COUNT_REQUESTS"

_lock = threading.Lock()
_counts: collections.Counter[str] = collections.Counter()
_client: dict[str, Any] = {}  # "key": (pid, emulator host), "client": the Client


def is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def split(path: str) -> tuple[str, str]:
    """(bucket, object name) of `gs://bucket/name`; the name is "" for the bucket itself."""
    bucket, _, name = path[len("gs://") :].partition("/")
    if not bucket:
        raise OSError(errno.EINVAL, "no bucket named", path)
    return bucket, name


# -- request counting -----------------------------------------------------------------------


def requests() -> dict[str, int]:
    """This process's requests so far, by kind (every kind present, zeros included)."""
    with _lock:
        return {kind: _counts[kind] for kind in KINDS}


def reset_requests() -> None:
    with _lock:
        _counts.clear()


def read_request_log(path: str) -> dict[str, int]:
    """The counts by kind in a `MPR_COUNT_REQUESTS` file (every kind present)."""
    counts = dict.fromkeys(KINDS, 0)
    with open(path, encoding="utf-8") as log:
        for line in log:
            kind = line.split(" ", 1)[0]
            if kind in counts:
                counts[kind] += 1
    return counts


def _kind(method: str, url: str) -> str:
    parts = urlsplit(url)
    path, query = parts.path, parts.query
    if method == "DELETE":
        return "delete"
    if path.startswith("/upload/"):
        return "write"
    if "/copyTo/" in path or "/rewriteTo/" in path or path.endswith("/compose"):
        return "copy"
    if method == "GET" and (path.startswith("/download/") or "alt=media" in query):
        return "read"
    if method == "GET" and path.endswith("/o"):
        return "list"
    return "metadata"


def _count(response: Any, *_: Any, **__: Any) -> None:
    """A `requests` response hook: runs once per answered HTTP request."""
    request = response.request
    kind = _kind(request.method or "", request.url or "")
    with _lock:
        _counts[kind] += 1
    log = os.environ.get(COUNT_ENV)
    if log:
        line = f"{kind} {request.method} {response.status_code} {urlsplit(request.url).path}\n"
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())  # one write with O_APPEND: lines never interleave
        finally:
            os.close(fd)


# -- the client -----------------------------------------------------------------------------


def client() -> Any:
    """This process's client (made anew after a fork or when STORAGE_EMULATOR_HOST changes)."""
    host = os.environ.get("STORAGE_EMULATOR_HOST", "")
    key = (os.getpid(), host)
    with _lock:
        if _client.get("key") == key:
            return _client["client"]
    from google.cloud import storage as google_storage

    # Google's Python client wants the scheme in STORAGE_EMULATOR_HOST; Go's and Java's take
    # `host:port`, and so do we.
    options = {"api_endpoint": f"http://{host}"} if host and "://" not in host else None
    made = google_storage.Client(project=None, client_options=options)
    # Recent clients fetch bucket metadata in background threads (for tracing): requests the
    # tool never asked for, counted at random. `None` is the client's own "no cache" value.
    made._bucket_metadata_cache = None
    made._http.hooks["response"].append(_count)
    with _lock:
        _client.update(key=key, client=made)
    return made


@contextlib.contextmanager
def _errors(path: str) -> Iterator[None]:
    """The client's errors as OSError naming `path` (FileNotFoundError for a 404)."""
    import requests as http
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    try:
        yield
    except api.NotFound:
        raise FileNotFoundError(errno.ENOENT, "No such object or bucket", path) from None
    except api.GoogleAPICallError as error:
        message = (error.message or "").strip().splitlines()
        detail = f"GCS answered {error.code}" + (f": {message[0]}" if message else "")
        raise OSError(errno.EIO, detail, path) from None
    except auth.GoogleAuthError as error:
        raise OSError(errno.EACCES, f"no GCS credentials ({error})", path) from None
    except http.RequestException as error:
        raise OSError(errno.EIO, f"GCS unreachable ({type(error).__name__})", path) from None


def _retry() -> Any:
    """Retries of transient failures (backoff, up to 120 s): the client's default for uploads,
    reads and deletes since 3.0, said here for a copy too, which it retries only under a
    precondition; copying the same source to the same name again is harmless."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


def _blob(path: str, generation: int | None = None) -> Any:
    bucket, name = split(path)
    return client().bucket(bucket).blob(name, generation=generation)


# -- objects --------------------------------------------------------------------------------


def stat(path: str) -> tuple[int, int] | None:
    """(size, generation) of the object at `path`, or None (one metadata request)."""
    bucket, name = split(path)
    if not name or name.endswith("/"):
        return None
    with _errors(path):
        blob = client().bucket(bucket).get_blob(name)
    return None if blob is None else (int(blob.size), int(blob.generation))


def bucket_exists(path: str) -> bool:
    with _errors(path):
        return bool(client().bucket(split(path)[0]).exists())


def _prefix(path: str) -> tuple[str, str]:
    bucket, name = split(path)
    name = name.rstrip("/")
    return bucket, f"{name}/" if name else ""


def _names(path: str, recursive: bool) -> tuple[list[str], list[str]]:
    """(object names, sub-prefixes) under the directory `path`, relative to it as listed
    (`DIR/` placeholders included, prefixes with their trailing slash); nothing for a missing
    bucket. One list request per page of 1000 names."""
    from google.api_core import exceptions as api

    bucket, prefix = _prefix(path)
    with _errors(path):
        try:
            pages = client().list_blobs(bucket, prefix=prefix, delimiter=None if recursive else "/")
            names = [blob.name[len(prefix) :] for blob in pages]
        except api.NotFound:
            return [], []
    return names, [p[len(prefix) :] for p in pages.prefixes]


def _files(names: list[str]) -> list[str]:
    """Object names without the directory placeholders (`DIR/`, or "" for `path/` itself)."""
    return [name for name in names if name and not name.endswith("/")]


def isdir(path: str) -> bool:
    """A bucket that exists, or a prefix some object's name starts with (one request)."""
    from google.api_core import exceptions as api

    if not split(path)[1].strip("/"):
        return bucket_exists(path)
    bucket, prefix = _prefix(path)
    with _errors(path):
        try:
            return any(True for _ in client().list_blobs(bucket, prefix=prefix, max_results=1))
        except api.NotFound:
            return False


def exists(path: str) -> bool:
    """An object, or a directory (one request for an object, two for a directory)."""
    return stat(path) is not None or isdir(path)


def isfile(path: str) -> bool:
    return stat(path) is not None


def listdir(path: str) -> list[str]:
    """Names of the objects and sub-prefixes directly under `path`, sorted (one list request
    per 1000 names); none for a missing directory."""
    names, prefixes = _names(path, recursive=False)
    return sorted(set(_files(names)) | {p.rstrip("/") for p in prefixes if p.strip("/")})


def walk(path: str) -> list[str]:
    """`gs://` paths of every object under the directory `path`, recursively, sorted (one list
    request per 1000 objects, whatever the depth)."""
    names, _ = _names(path, recursive=True)
    base = path.rstrip("/")
    return sorted(f"{base}/{name}" for name in _files(names))


def remove(path: str) -> None:
    """Deletes one object (FileNotFoundError if there is none)."""
    with _errors(path):
        _blob(path).delete(retry=_retry())


def rmtree(path: str) -> None:
    """Deletes every object under the directory `path` (one list, one delete per object); a
    whole bucket is refused."""
    if not split(path)[1].strip("/"):
        raise OSError(errno.EPERM, "refusing to delete a whole bucket", path)
    bucket, prefix = _prefix(path)
    names, _ = _names(path, recursive=True)
    for name in names:  # placeholders (`DIR/`) included
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
            remove(f"gs://{bucket}/{prefix}{name}")


def rename(source: str, target: str) -> None:
    """A server-side copy of `source` to `target` (replacing it), then a delete of `source`."""
    destination = _blob(target)
    with _errors(source):
        token = None
        while True:  # a copy between locations or storage classes may take several calls
            token, _, _ = destination.rewrite(_blob(source), token=token, retry=_retry())
            if token is None:
                break
    remove(source)


def read_range(path: str, start: int, count: int, generation: int | None = None) -> bytes:
    """`count` bytes from `start` (fewer at the end): one ranged GET, of `generation` if
    given (FileNotFoundError once that generation is gone)."""
    if count <= 0:
        return b""
    with _errors(path):
        return bytes(
            _blob(path, generation).download_as_bytes(
                start=start, end=start + count - 1, checksum=None, raw_download=True
            )
        )


def read_all(path: str) -> bytes:
    """The whole object: one GET (its CRC-32C checked against the one GCS sends)."""
    with _errors(path):
        return bytes(_blob(path).download_as_bytes(raw_download=True))


def upload(path: str, stream: IO[bytes], size: int) -> None:
    """Replaces the object at `path` with `size` bytes of `stream`: one request up to 8 MiB, a
    resumable session beyond (100 MiB per request); the object appears whole when it ends."""
    with _errors(path):
        _blob(path).upload_from_file(stream, size=size, rewind=True, retry=_retry())


def upload_bytes(path: str, data: bytes) -> None:
    upload(path, io.BytesIO(data), len(data))


def create_exclusive(path: str, data: bytes) -> bool:
    """Writes `data` at `path` only if no object is there: True if this call wrote it.

    The upload carries GCS's precondition `ifGenerationMatch=0`, which GCS checks atomically:
    of two calls at the same moment, one gets True. A metadata request first answers False
    without an upload when an object is already there (on a server that ignores the
    precondition, as gcp-storage-emulator does, that is the only check, and not an atomic
    one). A retried upload whose first attempt had in fact succeeded finds its own bytes: give
    each caller unique `data` (a lock names its owner).
    """
    from google.api_core import exceptions as api

    if stat(path) is not None:
        return False
    with _errors(path):
        try:
            _blob(path).upload_from_string(data, if_generation_match=0)
            return True
        except api.PreconditionFailed:
            pass
    try:
        return read_all(path) == data
    except FileNotFoundError:  # taken and released meanwhile: the caller tries again later
        return False
