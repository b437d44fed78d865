"""The output directory: its layout, lock, staging, publication protocol, and ownership.

Nothing else in the tool renames, deletes or writes in OUT: other modules ask this one for
paths under `.mpr/` and call its operations.

Layout:
  OUT/manifest.json           the commit point: names (size, sha256) every file of the build
  OUT/train-*-of-*.tfrecord   shards (.gz / .zz compressed)
  OUT/spm.model, spm.vocab    the tokenizer; OUT/config.yaml, the resolved config
  OUT/.mpr/provenance.bin     which unit each record came from (for `inspect --stats`)
  OUT/.mpr/lock               the lock (flock; on object stores, lock.json: advisory)
  OUT/.mpr/config.json        the config the kept units were built with
  OUT/.mpr/units/<fp>/        kept records of a complete unit (unit.json, written last)
  OUT/.mpr/tokenizer/         a tokenizer the tool trained, kept for refreshes
  OUT/.mpr/staging/           the next build, complete once staging/manifest.json exists
  OUT/.mpr/journal.json       a publication in progress; OUT/.mpr/previous/: its old files
  OUT/.mpr/work/              scratch (spilled pieces of compressed files), removed after a build
  OUT/.mpr/published.json     size and mtime of the published files (a fast ownership check)

Publication: everything new is complete, fsynced and checked in staging before it starts; a
reader that trusts manifest.json sees the old build, then no build, then the new build:

  state                      | manifest.json | a kill here leaves (the next run repairs)
  S0 staged                  | old           | the old build, untouched
  S1 journal written         | old           | the old build (rolled back: journal removed)
  S2 manifest withdrawn      | none          | rolled back to S0: the old manifest restored
  S3 old files set aside     | none          | rolled back: old files moved back
  S4 journal: phase "new"    | none          | rolled back (as S3)
  S5 new files in place      | none          | rolled back: new files back to staging
  S6 new manifest in place   | new           | committed: rolled forward (S7)
  S7 old files, journal gone | new           | the new build
Files whose content does not change (a reused tokenizer, the same config) stay where they are.
Any error before S6 (ENOSPC, an exception, Ctrl-C or SIGTERM) rolls back at once: the old build
is byte-identical and `verify`-clean. After a roll back the staged build is published by the
next run. From S6 on nothing is rolled back, whatever interrupts: an error there (an object
store's copy-rename whose delete failed) is a warning, an interrupt stops the run and the next
run tidies (S7).
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

from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline import storage, testhooks
from pretrain_records.pipeline.errors import DataError, LockedError, UsageError

PRIVATE = ".mpr"
MANAGED = ("manifest.json", "config.yaml", "spm.model", "spm.vocab")
LOCK_STALE_SECONDS = 600  # object stores: a lock not refreshed for this long is free
_UNIT_NAME = re.compile(r"[0-9a-f]{32}")
Log = Callable[[str], None]


def _flat(name: str) -> str:
    """A published name as a file name in staging/ and previous/."""
    return name.replace("/", "__")


class OutputDir:
    """OUT: a local directory or any tf.io.gfile location (`gs://bucket/prefix`)."""

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

    def staged(self, name: str) -> str:
        return self.private("staging", _flat(name))

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
            if name in ("units", "tokenizer", "staging", "previous", "work"):
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

    def check_foreign(self, manifest: dict[str, Any] | None) -> None:
        """Before any work: a file where the tool writes that the tool did not write is a
        usage error naming it (the tool never overwrites it)."""
        owned = manifest_lib.owned_files(manifest) if manifest else {}
        for name in storage.listdir(self.path):
            if (name in MANAGED or _shard_like(name)) and name not in owned:
                if name == "manifest.json" and manifest is not None:
                    continue
                raise UsageError(
                    f"{self.public(name)} exists and was not written by this tool; move it "
                    "away or choose another output directory"
                )

    def check_inputs_early(self, inputs: list[str]) -> None:
        """Before anything in OUT is touched: an input inside the tool's own directory, or at
        the name of a shard or the manifest, is refused (UsageError naming it)."""
        self.check_inputs(inputs, None)

    def check_inputs(self, inputs: list[str], new_files: dict[str, bytes] | None) -> None:
        """An input lying where the tool writes is never replaced nor deleted: it is a usage
        error naming it, unless the new build would write the very same bytes there (e.g.
        `--spm-model OUT/spm.model`), which then leaves it as it is."""
        if self.remote:
            return
        root = os.path.realpath(self.path)
        for given in inputs:
            relative = os.path.relpath(os.path.realpath(given), root)
            if relative.startswith(PRIVATE + os.sep) or relative == PRIVATE:
                raise UsageError(f"{given} is inside {self.private()}, the tool's own files")
            if os.sep in relative or relative.startswith(".."):
                continue
            if new_files is None:  # early: the build's own files are not known yet
                if relative in MANAGED and relative != "manifest.json":
                    continue
                same = False
            else:
                same = relative in new_files and storage.read_bytes(given) == new_files[relative]
            if (relative in MANAGED or _shard_like(relative)) and not same:
                raise UsageError(
                    f"{given} is an input and a file this tool writes in {self.path}; copy "
                    "it elsewhere and give the copy"
                )

    def intact(self, manifest: dict[str, Any]) -> bool:
        """Every file of a published build is there with its recorded size."""
        return all(
            storage.exists(self.public(name)) and storage.size(self.public(name)) == entry["bytes"]
            for name, entry in manifest_lib.owned_files(manifest).items()
            if "bytes" in entry
        )

    def check_owned(self, manifest: dict[str, Any]) -> None:
        """Every file of the published build is still as the tool wrote it (the tool only
        replaces or removes its own files); DataError naming one that changed."""
        recorded = _read_json(self.private("published.json")) or {}
        for name, entry in manifest_lib.owned_files(manifest).items():
            path = self.public(name)
            if not storage.exists(path) or "sha256" not in entry:
                continue
            if not self.remote and os.path.islink(path):
                raise DataError(f"{path} is a symbolic link, not the file this tool wrote")
            stat = None if self.remote else os.stat(path)
            fast = recorded.get(name)
            if stat is not None and fast == [stat.st_size, stat.st_mtime_ns, entry["sha256"]]:
                continue
            size = storage.size(path)
            if size == entry.get("bytes") and (
                self.remote or storage.file_sha256(path)[1] == entry["sha256"]
            ):
                continue
            raise DataError(
                f"{path} changed since this tool wrote it; the tool does not replace files it "
                "did not write: move it away (or restore it) and rerun"
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
        for name in ("units", "tokenizer", "staging", "work"):
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

    def kept_tokenizer(
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

    def keep_tokenizer(
        self, proto: bytes, vocab: bytes, settings: dict[str, Any], sample: dict[str, int]
    ) -> None:
        """Keeps a trained tokenizer for later runs of the same training `settings`."""
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
            try:
                size, sha = storage.file_sha256(path)
            except OSError as error:
                return f"{run['name']}: unreadable ({error.strerror or error})"
            if size != run.get("bytes") or sha != run.get("sha256"):
                return f"{run['name']}: its sha256 differs from the one recorded when it was built"
        return None

    def collect_garbage(self, keep: set[str]) -> None:
        """After a publication: kept units the build no longer uses, and scratch, go."""
        for fingerprint in self.kept_units():
            if fingerprint not in keep:
                storage.rmtree(self.unit_dir(fingerprint))
        storage.rmtree(self.private("work"))

    # -- staging ----------------------------------------------------------------------------

    def clear_staging(self) -> None:
        storage.rmtree(self.private("staging"))
        storage.makedirs(self.private("staging"))

    def staged_manifest(self) -> dict[str, Any] | None:
        """The manifest of a complete staged build, or None."""
        path = self.staged("manifest.json")
        if not storage.exists(path):
            return None
        try:
            return manifest_lib.parse(storage.read_bytes(path), self.path)
        except manifest_lib.ManifestError:
            return None

    def stage_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        """Writes a small file of the next build into staging; returns its manifest entry."""
        storage.write_bytes(self.staged(name), data)
        return {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    def clear_work(self) -> None:
        storage.rmtree(self.private("work"))

    # -- publication ------------------------------------------------------------------------

    def recover(self, log: Log) -> None:
        """Finishes (after its commit) or undoes (before it) a publication a kill interrupted."""
        if not storage.exists(self.private("journal.json")):
            return
        journal, committed = self._valid_journal(_read_json(self.private("journal.json")))
        if committed:
            log("finishing the publication an earlier run was stopped in")
            self._clean_previous()
        else:
            log("undoing the publication an earlier run was stopped in (the previous build stays)")
            self._roll_back(journal)

    def _committed(self, journal: dict[str, Any]) -> bool:
        """Whether the journal's publication was committed: its manifest is in place, put
        there in phase "new" (a rebuild may repeat the old manifest byte for byte)."""
        current = self.public("manifest.json")
        return (
            journal.get("phase") == "new"
            and storage.exists(current)
            and storage.file_sha256(current)[1] == journal.get("manifest_sha256")
        )

    def _valid_journal(self, journal: Any) -> tuple[dict[str, Any], bool]:
        """The journal, if it is one this tool wrote (its new names are the staged build's,
        its old ones the published or set aside build's; else DataError, touching nothing),
        and whether its publication was committed."""
        path = self.private("journal.json")
        problem = DataError(
            f"{path} is not a publication journal this tool wrote; the tool touches nothing "
            "until it is removed"
        )
        if not (
            isinstance(journal, dict)
            and journal.get("phase") in ("old", "new")
            and isinstance(journal.get("manifest_sha256"), str)
            and all(isinstance(journal.get(k), list) for k in ("new", "old"))
        ):
            raise problem
        current, aside = self.public("manifest.json"), self.private("previous", "manifest.json")
        committed = self._committed(journal)
        new = manifest_lib.read(self.path) if committed else self.staged_manifest()
        if not set(journal["new"]) <= set(manifest_lib.owned_files(new) if new else {}):
            raise problem
        if committed:  # only previous/ is left to remove, as a whole
            return journal, True
        old = self.published_manifest() if storage.exists(current) else None
        if old is None and storage.exists(aside):
            with contextlib.suppress(Exception):
                old = manifest_lib.parse(storage.read_bytes(aside), self.path)
        if not set(journal["old"]) <= set(manifest_lib.owned_files(old) if old else {}):
            raise problem
        return journal, False

    def stage_manifest(self, manifest: dict[str, Any]) -> None:
        """Writes the staged build's manifest: from now on the staged build is complete."""
        storage.write_bytes(self.staged("manifest.json"), manifest_lib.dumps(manifest))

    def check_staged(self, manifest: dict[str, Any]) -> None:
        """Every staged file is there with the size and sha256 its manifest gives (DataError
        naming the first that is not: the staged build is then not published). On an object
        store only sizes are compared, as in `check_owned`: hashing would download the build."""
        for name, entry in manifest_lib.owned_files(manifest).items():
            path = self.staged(name)
            intact = storage.exists(path) and storage.size(path) == entry["bytes"]
            if not intact or not (self.remote or storage.file_sha256(path)[1] == entry["sha256"]):
                raise DataError(f"{path} does not match the staged manifest")

    def publish(self, log: Log) -> None:
        """Makes the complete staged build the published one (see the module docstring)."""
        data = storage.read_bytes(self.staged("manifest.json"))
        new_files = manifest_lib.owned_files(manifest_lib.parse(data, self.path))
        old = self.published_manifest()
        if old is not None:
            self.check_owned(old)  # again: a user may have changed a file during the build
        old_files = manifest_lib.owned_files(old) if old else {}
        for name in new_files:  # the tool's own leftovers under .mpr (no build lists them)
            if name.startswith(PRIVATE + "/") and name not in old_files:
                storage.remove(self.public(name))
        unchanged = {
            n
            for n, e in new_files.items()
            if n in old_files
            and e.get("sha256") is not None
            and old_files[n].get("sha256") == e["sha256"]
            and storage.exists(self.public(n))
        }
        for name in sorted(set(new_files) - set(old_files)):
            if storage.exists(self.public(name)):
                raise DataError(
                    f"{self.public(name)} appeared during the build and was not written by "
                    "this tool; refusing to overwrite it"
                )
        journal = {
            "phase": "old",
            "new": sorted(set(new_files) - unchanged),
            "old": sorted(
                n for n in old_files if n not in unchanged and storage.exists(self.public(n))
            ),
            "manifest_sha256": hashlib.sha256(data).hexdigest(),
        }
        self._step()
        self.write_private_json(journal, "journal.json")
        storage.makedirs(self.private("previous"))
        try:
            self._switch(journal, had_manifest=old is not None)
        except BaseException as error:
            committed = None  # unknown if the check itself fails: the next run's recover decides
            with contextlib.suppress(Exception):
                committed = self._committed(journal)
            if committed is False:
                with contextlib.suppress(Exception):
                    self._roll_back(journal)
            if not committed or not isinstance(error, Exception):
                raise  # an interrupt after the commit: the new build stands, the next run tidies
            log(f"warning: the build is published; its last step failed ({error})")
        try:  # committed: what is left is tidying, which the next run would finish
            self._sync()
            self._clean_previous()
            self._record_published(new_files)
        except Exception as error:
            log(f"warning: the build is published; tidying up failed ({error}), next run does it")

    def _switch(self, journal: dict[str, Any], had_manifest: bool) -> None:
        """S2-S5: the journal says which phase a kill interrupted (old files being set aside,
        or new ones being put in place), so that a name both builds use is never mistaken."""
        if had_manifest:
            self._move(self.public("manifest.json"), self.private("previous", "manifest.json"))
        for name in journal["old"]:
            self._move(self.public(name), self.private("previous", _flat(name)))
        self._step()
        journal["phase"] = "new"
        self.write_private_json(journal, "journal.json")
        for name in journal["new"]:
            self._move(self.staged(name), self.public(name))
        self._sync()
        self._move(self.staged("manifest.json"), self.public("manifest.json"))
        testhooks.point("committed")  # a kill, an error or an interrupt from here on: new build

    def _move(self, source: str, target: str) -> None:
        self._step()
        storage.rename(source, target)

    def _step(self) -> None:
        testhooks.point("publish")

    def _roll_back(self, journal: dict[str, Any]) -> None:
        """Undoes a publication stopped before its commit; each step can be repeated. A name
        may be in both builds: in phase "old" (setting old files aside) a public file is
        always the old one; in phase "new" every old file is already aside."""
        if journal.get("phase") == "new":
            for name in journal.get("new", []):
                public, staged = self.public(name), self.staged(name)
                if storage.exists(public):
                    if storage.exists(staged):  # a copy-rename (object store) half done
                        storage.remove(public)
                    else:
                        storage.rename(public, staged)
        for name in journal.get("old", []):
            public, aside = self.public(name), self.private("previous", _flat(name))
            if storage.exists(aside):
                if storage.exists(public):  # a copy-rename half done: public is the old one
                    storage.remove(aside)
                else:
                    storage.rename(aside, public)
        aside = self.private("previous", "manifest.json")
        if storage.exists(aside):
            if storage.exists(self.public("manifest.json")):
                storage.remove(aside)
            else:
                storage.rename(aside, self.public("manifest.json"))
        self._sync()
        storage.remove(self.private("journal.json"))

    def _clean_previous(self) -> None:
        for name in storage.listdir(self.private("previous")):
            self._step()
            storage.remove(self.private("previous", name))
        storage.rmtree(self.private("previous"))
        self._step()
        storage.remove(self.private("journal.json"))
        storage.rmtree(self.private("staging"))

    def _sync(self) -> None:
        if not self.remote:
            for directory in (self.path, self.private()):
                storage.sync_directory(directory)

    def _record_published(self, files: dict[str, dict[str, Any]]) -> None:
        """Size and mtime of the published files: a later ownership check need not re-hash
        files nobody touched (local disks only)."""
        if self.remote:
            return
        recorded = {}
        for name, entry in files.items():
            with contextlib.suppress(OSError):
                stat = os.stat(self.public(name))
                recorded[name] = [stat.st_size, stat.st_mtime_ns, entry.get("sha256")]
        self.write_private_json(recorded, "published.json")


def _shard_like(name: str) -> bool:
    return bool(manifest_lib.SHARD_NAME.fullmatch(name))


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
    """An advisory lock object for stores without flock: it names its holder and is refreshed
    every minute; one not refreshed for LOCK_STALE_SECONDS is taken over. Two runs starting
    within the same moment can both believe they hold it (no compare-and-swap through
    tf.io.gfile): the README says so."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.token = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        storage.write_bytes(self.path, json.dumps({**self.token, "time": time.time()}).encode())

    def __enter__(self) -> _ObjectLock:
        held = _read_json(self.path)
        if isinstance(held, dict) and time.time() - float(held.get("time", 0)) < LOCK_STALE_SECONDS:
            raise LockedError(
                f"{self.path.rsplit('/.mpr', 1)[0]} is being built by another run "
                f"(pid {held.get('pid')} on {held.get('host')}); wait for it or stop it"
            )
        self._write()
        if (_read_json(self.path) or {}).get("owner") != self.token["owner"]:
            raise LockedError(f"{self.path}: another run took the lock at the same moment")
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
