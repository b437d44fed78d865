"""The output directory: its layout, lock, the tool's private files, and ownership.

Nothing else in the tool renames, deletes or writes in OUT: other modules ask this one (and
`publication`, which owns the builds) for paths and call their operations.

Layout:
  OUT/manifest.json             the commit point: names (size, sha256) every file of the build
  OUT/build-NNNNN/              a build's shards (train-*-of-*.tfrecord[.gz|.zz]), its tokenizer
                                (spm.model, spm.vocab), config.yaml and provenance.bin; each build
                                has a folder of its own that no later build reuses
  OUT/.mpr/lock                 the lock (flock; on object stores, lock.json created with a
                                precondition that it does not exist)
  OUT/.mpr/config.json          the config the kept units were built with
  OUT/.mpr/units/<fp>/          kept records of a complete unit (unit.json, written last)
  OUT/.mpr/tokenizer/           a tokenizer the tool trained, kept for refreshes
  OUT/.mpr/builds.json          the tool's ledger of its builds (see `publication`)
  OUT/.mpr/staged.json          the manifest of a complete build not yet published
  OUT/.mpr/work/                scratch (spilled pieces of compressed files), removed after a build

Builds of the first layout (files at OUT's top level) are read, refreshed and, once retired,
collected like any other.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, LockedError, UsageError
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.integrity import check_file

PRIVATE = ".mpr"
LOCK_STALE_SECONDS = 600  # object stores: a lock not refreshed for this long is free
_UNIT_NAME = re.compile(r"[0-9a-f]{32}")
Log = Callable[[str], None]


class OutputDir:
    """OUT: a local directory, gs:// (through the GCS client) or another tf.io.gfile location."""

    def __init__(self, path: str) -> None:
        if not path.strip():
            raise UsageError("the output directory (-o) is empty")
        storage.check_location(path, "output directory")
        self.path = path.rstrip("/") if storage.is_remote(path) else path
        self.remote = storage.is_remote(path)

    # -- paths ------------------------------------------------------------------------------

    def private(self, *parts: str) -> str:
        return storage.join(self.path, PRIVATE, *parts)

    def public(self, name: str) -> str:
        return manifest_lib.safe_member(self.path, name)

    def unit_dir(self, fingerprint: str) -> str:
        if not _UNIT_NAME.fullmatch(fingerprint):
            raise ValueError(f"not a unit fingerprint: {fingerprint!r}")
        return self.private("units", fingerprint)

    def unit_path(self, fingerprint: str, name: str) -> str:
        if not re.fullmatch(r"run-\d+\.bin", name):
            raise ValueError(f"not a run name: {name!r}")
        return storage.join(self.unit_dir(fingerprint), name)

    def work(self, *parts: str) -> str:
        return self.private("work", *parts)

    # -- the lock ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Holds OUT's lock for a build; LockedError (exit 75) when another run holds it."""
        self._refuse_links()
        try:
            storage.makedirs(self.private())
        except OSError as error:
            raise DataError(
                f"{self.path}: cannot create the output directory ({error.strerror or error})"
            ) from None
        if self.remote:
            with _ObjectLock(self.private("lock.json")):
                yield
            return
        fd = os.open(self.private("lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            _flock(fd, self.path)
            yield
        finally:
            os.close(fd)

    def _refuse_links(self) -> None:
        """The tool deletes and rewrites inside .mpr: a symbolic link there (or .mpr itself one)
        could point it at a user's files, so it is refused (local disks; object stores have
        no links)."""
        if self.remote:
            return
        places = [self.private()]
        for name in storage.listdir(self.private()):
            places.append(self.private(name))
            if name in ("units", "tokenizer", "work"):
                places.extend(self.private(name, child) for child in storage.listdir(places[-1]))
        for place in places:
            if os.path.islink(place):
                raise UsageError(
                    f"{place} is a symbolic link; the tool keeps its own files under "
                    f"{self.private()} and does not follow links there: remove it"
                )

    # -- what is there ----------------------------------------------------------------------

    def published_manifest(self) -> dict[str, Any] | None:
        """The published build's manifest, or None; UsageError for a manifest.json that is not
        ours (a foreign file where the tool writes)."""
        path = self.public("manifest.json")
        if not storage.exists(path):
            return None
        try:
            return manifest_lib.read(self.path)
        except manifest_lib.ManifestError as error:
            if "refusing file name" in str(error):
                raise
            raise UsageError(
                f"{path} exists and was not written by this tool; move it away or choose "
                "another output directory"
            ) from None

    def check_inputs(self, inputs: list[str]) -> None:
        """An input inside the tool's own folder, or at OUT/manifest.json, is refused before
        anything in OUT is touched (UsageError naming it): the tool rewrites those. An input
        inside a build folder (`--spm-model OUT/build-00007/spm.model`) is read as it is and
        never collected (see `publication`)."""
        if self.remote:
            return
        root = os.path.realpath(self.path)
        for given in inputs:
            relative = os.path.relpath(os.path.realpath(given), root)
            if relative.startswith(PRIVATE + os.sep) or relative == PRIVATE:
                raise UsageError(f"{given} is inside {self.private()}, the tool's own files")
            if relative == manifest_lib.MANIFEST:
                raise UsageError(
                    f"{given} is an input and the file this tool publishes in {self.path}; copy "
                    "it elsewhere and give the copy"
                )

    # -- kept units ---------------------------------------------------------------------------

    def kept_unit(self, fingerprint: str) -> dict[str, Any] | None:
        """The record of a complete kept unit whose runs are all there, else None."""
        record = _read_json(storage.join(self.unit_dir(fingerprint), "unit.json"))
        if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
            return None
        if not isinstance(record.get("tokens"), dict):  # from a version that did not count
            return None
        for run in record.get("runs", []):
            name = run.get("name")
            if not isinstance(name, str) or not re.fullmatch(r"run-\d+\.bin", name):
                return None
            path = storage.join(self.unit_dir(fingerprint), name)
            if not storage.exists(path) or storage.size(path) != run.get("bytes"):
                return None
        return record

    def kept_units(self) -> list[str]:
        return [n for n in storage.listdir(self.private("units")) if _UNIT_NAME.fullmatch(n)]

    def read_private_json(self, *parts: str) -> Any:
        return _read_json(self.private(*parts))

    def write_private_json(self, data: Any, *parts: str) -> None:
        storage.makedirs(storage.join(self.private(), *parts[:-1]))
        storage.write_bytes(self.private(*parts), json.dumps(data, indent=1).encode())

    def forget_kept(self) -> None:
        """--force or another config: drops the tool's kept units and trained tokenizer (its
        private files only; the published build stays until the next one replaces it)."""
        for name in ("units", "tokenizer", "work"):
            storage.rmtree(self.private(name))
        storage.remove(self.private("config.json"))

    def fresh_unit_dir(self, fingerprint: str) -> str:
        """An empty directory for a unit about to be built (a killed run's partial unit goes
        first); returns it."""
        self.drop_partial_unit(fingerprint)
        storage.makedirs(self.unit_dir(fingerprint))
        return self.unit_dir(fingerprint)

    def drop_partial_unit(self, fingerprint: str) -> None:
        storage.rmtree(self.unit_dir(fingerprint))

    def saved_tokenizer(
        self, settings: dict[str, Any]
    ) -> tuple[bytes, bytes, dict[str, int] | None] | None:
        """(model, vocab, its training sample) of a tokenizer an earlier run trained here for
        these training `settings`, if intact; None for one trained for other settings (a
        stopped run of another config) or none."""
        record = _read_json(self.private("tokenizer", "tokenizer.json")) or {}
        model, vocab = (
            self.private("tokenizer", "spm.model"),
            self.private("tokenizer", "spm.vocab"),
        )
        if not isinstance(record, dict) or record.get("settings") != settings:
            return None
        if not record.get("sha256") or not storage.exists(model) or not storage.exists(vocab):
            return None
        proto = storage.read_bytes(model)
        if hashlib.sha256(proto).hexdigest() != record["sha256"]:
            return None
        return proto, storage.read_bytes(vocab), record.get("sample")

    def save_tokenizer(
        self, proto: bytes, vocab: bytes, settings: dict[str, Any], sample: dict[str, int]
    ) -> None:
        """Saves a trained tokenizer for later runs of the same training `settings`."""
        storage.rmtree(self.private("tokenizer"))  # another config's goes before the new one
        storage.makedirs(self.private("tokenizer"))
        storage.write_bytes(self.private("tokenizer", "spm.model"), proto)
        storage.write_bytes(self.private("tokenizer", "spm.vocab"), vocab)
        record = {"sha256": hashlib.sha256(proto).hexdigest(), "settings": settings}
        self.write_private_json({**record, "sample": sample}, "tokenizer", "tokenizer.json")

    def damaged_runs(self, record: dict[str, Any]) -> str | None:
        """What is wrong with a kept unit's runs (a byte flipped on disk, a file rewritten),
        checked against the sha256 unit.json recorded for each; None when they are intact."""
        fingerprint = record["fingerprint"]
        for run in record.get("runs", []):
            path = storage.join(self.unit_dir(fingerprint), run["name"])
            problems = check_file(path, run, "sha256", against="the unit's record")
            if problems:
                return problems[0]
        return None

    def collect_garbage(self, keep: set[str]) -> None:
        """After a publication: kept units the build no longer uses, and scratch, go."""
        for fingerprint in self.kept_units():
            if fingerprint not in keep:
                storage.rmtree(self.unit_dir(fingerprint))
        storage.rmtree(self.private("work"))

    def clear_work(self) -> None:
        storage.rmtree(self.private("work"))


def _read_json(path: str) -> Any:
    try:
        return json.loads(storage.read_bytes(path))
    except (OSError, ValueError):
        return None


def _flock(fd: int, out: str) -> None:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        raise LockedError(
            f"{out} is being built by another run (pid {holder}); wait for it or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


class _ObjectLock:
    """A lock object for stores without flock: it names its holder and is refreshed every
    minute; one not refreshed for LOCK_STALE_SECONDS is taken over. It is created with a
    precondition that no object exists (GCS: `ifGenerationMatch=0`), so two runs started at
    the same moment cannot both take it where the store enforces that (GCS does; the test
    emulator does not, and tf.io.gfile stores have no such precondition)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.token = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _data(self) -> bytes:
        return json.dumps({**self.token, "time": time.time()}).encode()

    def _write(self) -> None:
        storage.write_bytes(self.path, self._data())

    def __enter__(self) -> _ObjectLock:
        held = _read_json(self.path)
        out = self.path.rsplit("/.mpr", 1)[0]
        if isinstance(held, dict) and time.time() - float(held.get("time", 0)) < LOCK_STALE_SECONDS:
            raise LockedError(
                f"{out} is being built by another run "
                f"(pid {held.get('pid')} on {held.get('host')}); wait for it or stop it"
            )
        if storage.exists(self.path):  # a stale lock (its run died): taken over
            storage.remove(self.path)
        if not storage.create_exclusive(self.path, self._data()):
            raise LockedError(f"{out}: another run took the lock at the same moment")
        if (_read_json(self.path) or {}).get("owner") != self.token["owner"]:
            raise LockedError(f"{out}: another run took the lock at the same moment")
        self._thread = threading.Thread(target=self._refresh, daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(60):
            with contextlib.suppress(Exception):
                self._write()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if (_read_json(self.path) or {}).get("owner") == self.token["owner"]:
            with contextlib.suppress(OSError):
                storage.remove(self.path)
