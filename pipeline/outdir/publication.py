"""Builds and their publication: each build in a folder of its own, published by one write.

Every build's files (shards, tokenizer, config, provenance) are written once into a folder of
its own, `OUT/build-NNNNN/`, whose number no later build reuses; `OUT/manifest.json`, written
last and atomically (a rename locally, one upload on an object store), is the commit point that
names them. Nothing is copied or renamed on publication, so publishing costs one small write
whatever the build's size, and a reader that resolved a manifest keeps reading exactly that
build's files while the retention keeps them (`retained_builds`: earlier builds kept beside the
current one, default 1), then gets a clear error (the file is gone), never a mix.

The tool's ledger of its builds, `OUT/.mpr/builds.json`, lists each build folder it made with
its state (`staging`, `published`, `retired`) and files (name, bytes, sha256): garbage
collection deletes only files listed there whose size still matches, never a file the tool did
not write (nor an input of the run that lies in a build folder), and a folder only once empty.

A kill at any step leaves the previous build published and intact, or the new one: before the
manifest is written, the new folder is an unpublished extra that the next run finishes (a staged
build complete with its manifest in `.mpr/staged.json` is published without merging again) or
clears; after it, the next run brings the ledger up to date and collects what the retention
lets go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.errors import DataError, UsageError
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.integrity import check_file

BUILD_DIR = re.compile(r"build-(\d{5,})")
LEDGER = "builds.json"
STAGED = "staged.json"
_OWN_NAMES = (
    r"train-\d{5}-of-\d{5}\.tfrecord(?:\.gz|\.zz)?|spm\.model|spm\.vocab|config\.yaml"
    r"|provenance\.bin"
)
_OWN_FILE = re.compile(rf"(?:{_OWN_NAMES})(?:\.partial-\d+(?:-\d+)?)?")
# A whole-file write's temporary (`NAME.partial-PID[-THREAD]`) of a file the tool writes there
_BUILD_TEMPORARY = re.compile(rf"(?:{_OWN_NAMES})\.partial-(\d+)(?:-\d+)?")
Log = Callable[[str], None]


def build_dir_of(manifest: dict[str, Any] | None) -> str:
    """The folder a manifest's build lives in ('' for a build of the first layout, whose
    files lie at OUT's top level)."""
    return str((manifest or {}).get("build_dir") or "")


class Publication:
    """The builds of one output directory (the caller holds its lock)."""

    def __init__(self, out: OutputDir) -> None:
        self.out = out
        self.folder = ""  # the build folder being staged

    # -- the ledger -----------------------------------------------------------------------

    def _ledger(self) -> list[dict[str, Any]]:
        data = self.out.read_private_json(LEDGER)
        builds = data.get("builds") if isinstance(data, dict) else None
        return [b for b in builds or [] if isinstance(b, dict) and isinstance(b.get("dir"), str)]

    def _save(self, builds: list[dict[str, Any]]) -> None:
        last = max([self._last_number(), *(_number(b["dir"]) for b in builds)])
        self.out.write_private_json({"builds": builds, "last": last}, LEDGER)

    def _last_number(self) -> int:
        """The highest folder number ever given (a staging folder cleared unpublished too):
        no later build reuses it."""
        data = self.out.read_private_json(LEDGER)
        last = data.get("last") if isinstance(data, dict) else None
        return last if isinstance(last, int) else 0

    def _entry(self, builds: list[dict[str, Any]], folder: str) -> dict[str, Any] | None:
        return next((b for b in builds if b["dir"] == folder), None)

    # -- after a kill -----------------------------------------------------------------------

    def reconcile(self, log: Log) -> None:
        """Brings the ledger up to date with the published manifest (a run killed after its
        commit left it behind); refuses a publication an older version left half done."""
        if storage.exists(self.out.private("journal.json")):
            raise UsageError(
                f"{self.out.private('journal.json')}: a publication by an older version of the "
                "tool was interrupted; finish it with that version (rerun it once), then rerun"
            )
        self._sweep_temporaries(log)
        published = self.out.published_manifest()
        builds = self._ledger()
        changed = False
        if published is not None:
            folder = build_dir_of(published)
            entry = self._entry(builds, folder)
            if entry is None or entry.get("state") != "published":
                changed = True
                self._mark_published(builds, folder, published)
        if changed:
            log("bringing the tool's record of its builds up to date")
            self._save(builds)
        staged = self.out.read_private_json(STAGED)
        if published is not None and isinstance(staged, dict):
            if build_dir_of(staged) == build_dir_of(published):  # a kill after the commit
                storage.remove(self.out.private(STAGED))

    def _sweep_temporaries(self, log: Log) -> None:
        """Removes the temporary files of whole-file writes a kill interrupted (`NAME.partial-PID`,
        locally only: an object store's upload leaves none) in OUT, `.mpr` and the build
        folders, when the process that wrote one is gone."""
        if self.out.remote:
            return
        # OUT and the build folders may hold a user's files: only the tool's names there
        folders = {self.out.path: _TOP_TEMPORARY}
        for name in storage.listdir(self.out.path):
            if BUILD_DIR.fullmatch(name) and not self._linked(name):
                folders[storage.join(self.out.path, name)] = _BUILD_TEMPORARY
        for root, _, _ in os.walk(self.out.private()):
            folders[root] = _TEMPORARY
        swept = 0
        for folder, pattern in folders.items():
            with contextlib.suppress(OSError):
                for name in os.listdir(folder):
                    match = pattern.fullmatch(name)
                    if match and not _alive(int(match.group(1))):
                        with contextlib.suppress(OSError):
                            os.remove(os.path.join(folder, name))
                            swept += 1
        if swept:
            log(f"removed {swept} temporary file(s) of an interrupted run")

    def _mark_published(
        self, builds: list[dict[str, Any]], folder: str, manifest: dict[str, Any]
    ) -> None:
        for build in builds:
            if build.get("state") == "published" and build["dir"] != folder:
                build["state"] = "retired"
        entry = self._entry(builds, folder)
        if entry is None:
            entry = {"dir": folder}
            builds.append(entry)
        entry.update(
            state="published",
            build=manifest.get("build"),
            files=sorted(manifest_lib.owned_files(manifest)),
            sizes={n: e.get("bytes") for n, e in manifest_lib.owned_files(manifest).items()},
        )

    # -- staging ------------------------------------------------------------------------------

    def staged(self, build_id: str) -> dict[str, Any] | None:
        """The complete staged build of this id (its files checked), or None."""
        staged = self.out.read_private_json(STAGED)
        if not isinstance(staged, dict) or staged.get("build") != build_id:
            return None
        try:
            manifest = manifest_lib.parse(json.dumps(staged).encode(), self.out.path)
            self.check(manifest)
        except DataError:
            return None
        self.folder = build_dir_of(manifest)
        return manifest

    def intact(self, manifest: dict[str, Any]) -> bool:
        """Every file of a published build is there with its recorded size."""
        return not any(
            check_file(self.out.public(name), entry, "size")
            for name, entry in manifest_lib.owned_files(manifest).items()
        )

    def check(self, manifest: dict[str, Any]) -> None:
        """Every file of a build is there with the size (and, locally, the sha256) its
        manifest gives; DataError naming the first that is not. On an object store only sizes
        are compared: hashing would download the build."""
        level = "size" if self.out.remote else "sha256"
        for name, entry in manifest_lib.owned_files(manifest).items():
            path = self.out.public(name)
            if check_file(path, entry, level):
                raise DataError(f"{path} does not match the manifest of its build")

    def start(self, build_id: str) -> str:
        """A fresh folder for the build `build_id` (the unpublished one an earlier run staged
        for it, emptied, else a new number); returns its name."""
        builds = self._ledger()
        published = build_dir_of(self.out.published_manifest())
        for build in builds:  # unpublished staging folders of earlier runs go
            if build.get("state") == "staging" and build["dir"] != published:
                self._clear_folder(build["dir"])
        builds = [b for b in builds if b.get("state") != "staging" or b["dir"] == published]
        self.folder = f"build-{self._next_number(builds):05d}"
        builds.append({"dir": self.folder, "state": "staging", "build": build_id})
        self._save(builds)
        storage.remove(self.out.private(STAGED))
        storage.makedirs(storage.join(self.out.path, self.folder))
        return self.folder

    def _next_number(self, builds: list[dict[str, Any]]) -> int:
        numbers = [0, self._last_number()]
        names = [b["dir"] for b in builds] + storage.listdir(self.out.path)
        for name in names:
            match = BUILD_DIR.fullmatch(name)
            if match:
                numbers.append(int(match.group(1)))
        return max(numbers) + 1

    def name(self, file: str) -> str:
        """The manifest name of a file of the build being staged."""
        return f"{self.folder}/{file}"

    def path(self, file: str) -> str:
        """Where a file of the build being staged is written."""
        return self.out.public(self.name(file))

    def stage_bytes(self, file: str, data: bytes) -> dict[str, Any]:
        """Writes a small file of the build being staged; returns its manifest entry."""
        storage.write_bytes(self.path(file), data)
        return {"name": self.name(file), "bytes": len(data), "sha256": _sha256(data)}

    def stage_manifest(self, manifest: dict[str, Any]) -> None:
        """The staged build is complete: its manifest, kept until it is published."""
        self.out.write_private_json(manifest, STAGED)

    # -- publication --------------------------------------------------------------------------

    def publish(self, manifest: dict[str, Any], log: Log) -> None:
        """The commit: manifest.json names the staged build, in one atomic write."""
        if not self.intact(manifest):  # sizes: the files were hashed as they were written
            raise DataError(f"{self.folder}: a file of the staged build changed before publication")
        testhooks.point("publish")
        storage.write_bytes(self.out.public(manifest_lib.MANIFEST), manifest_lib.dumps(manifest))
        if not self.out.remote:
            storage.sync_directory(self.out.path)
        testhooks.point("committed")
        try:
            builds = self._ledger()
            self._mark_published(builds, build_dir_of(manifest), manifest)
            self._save(builds)
            storage.remove(self.out.private(STAGED))
        except Exception as error:  # the build is published: the next run tidies
            log(f"warning: the build is published; recording it failed ({error})")

    # -- retention ----------------------------------------------------------------------------

    def collect(self, retained: int, inputs: Iterable[str], log: Log) -> list[str]:
        """Deletes the files of retired builds beyond the `retained` most recent (only files
        the ledger lists, whose size still matches, that are no input of this run); returns the
        folders removed."""
        builds = self._ledger()
        retired = [b for b in builds if b.get("state") == "retired"]
        retired.sort(key=lambda b: _number(b["dir"]))
        doomed = retired[: max(0, len(retired) - retained)]
        protected = {os.path.realpath(p) for p in inputs if not storage.is_remote(p)}
        removed = []
        for build in doomed:
            testhooks.point("collect")
            try:
                whole = self._delete_files(build, protected, log)
            except OSError as error:  # the new build is published: a warning, not a failure
                log(f"warning: could not remove {build['dir'] or 'an earlier build'} ({error})")
                continue
            if whole:
                builds.remove(build)
                removed.append(build["dir"] or "(top level)")
                self._save(builds)
        if removed:
            log(f"removed earlier builds beyond the retention ({retained}): {', '.join(removed)}")
        return removed

    def _linked(self, folder: str) -> bool:
        """Whether a build folder is a link (moved away by its user and linked back): the tool
        never deletes through one."""
        return (
            bool(folder)
            and not self.out.remote
            and os.path.islink(storage.join(self.out.path, folder))
        )

    def _delete_files(self, build: dict[str, Any], protected: set[str], log: Log) -> bool:
        sizes = build.get("sizes") or {}
        folder = build["dir"]
        if folder and not BUILD_DIR.fullmatch(folder):
            return True  # not a folder the tool makes: nothing in it is the tool's
        if self._linked(folder):
            log(
                f"kept {storage.join(self.out.path, folder)}: a link (its files are not the tool's)"
            )
            return True
        whole = True
        for name in build.get("files", []):
            base = str(name).rpartition("/")[2]
            inside = str(name) == f"{folder}/{base}" if folder else "/" not in str(name)
            legacy = not folder and name == manifest_lib.LEGACY_PROVENANCE
            if not legacy and (not inside or not _OWN_FILE.fullmatch(base)):
                continue  # a name the tool never writes there
            try:
                path = self.out.public(name)
            except manifest_lib.ManifestError:
                continue
            if not storage.exists(path):
                continue
            local = None if self.out.remote else os.path.realpath(path)
            if local in protected or storage.size(path) != sizes.get(name, -1):
                log(f"kept {path}: an input of this run, or changed since the tool wrote it")
                whole = False
                continue
            storage.remove(path)
        if build["dir"]:
            folder = storage.join(self.out.path, build["dir"])
            if not self.out.remote:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)  # only once empty: nothing of anyone else's goes
        return whole

    def _clear_folder(self, folder: str) -> None:
        """An unpublished staging folder's files (the tool's names only), then the folder."""
        if not BUILD_DIR.fullmatch(folder) or self._linked(folder):
            return
        root = storage.join(self.out.path, folder)
        for name in storage.listdir(root):
            if _OWN_FILE.fullmatch(name):
                storage.remove(storage.join(root, name))
        if not self.out.remote:
            with contextlib.suppress(OSError):
                os.rmdir(root)


_TEMPORARY = re.compile(r".+\.partial-(\d+)(?:-\d+)?")
_TOP_TEMPORARY = re.compile(r"manifest\.json\.partial-(\d+)(?:-\d+)?")


def _alive(pid: int) -> bool:
    """Whether a process `pid` runs (this one counts as alive: its writes are in progress)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _number(folder: str) -> int:
    match = BUILD_DIR.fullmatch(folder)
    return int(match.group(1)) if match else -1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
