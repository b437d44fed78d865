"""The output directory's own bookkeeping: lock, staged units, publication journal, cleanup.

Layout (all under OUT/.mpr/, the tool's private directory):
  lock               flock()ed by the running build; holds its pid
  config.json        the config of the build in progress (a rerun with another needs --force)
  units/<fp>.json    a work unit whose shards are complete (staged or published)
  units/<fp>-<k>     a staged shard, renamed to its public name at publication
  journal.json       public names being published, so a kill mid-publication is recoverable
  cache/             tf.data caches of tokenized documents
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

from pretrain_records.pipeline import manifest as manifest_lib

PRIVATE = ".mpr"
TEMP_MARK = ".partial-"


class LockedError(RuntimeError):
    """Another live run holds the output directory (exit 75)."""


def private_dir(out: str, *parts: str) -> str:
    return os.path.join(out, PRIVATE, *parts)


@contextlib.contextmanager
def locked(out: str) -> Iterator[None]:
    """Holds OUT's lock; a lock left by a dead process is free (flock dies with its owner)."""
    os.makedirs(private_dir(out), exist_ok=True)
    path = private_dir(out, "lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
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
        yield
    finally:
        os.close(fd)


def write_json(path: str, data: Any) -> None:
    """Atomic JSON write (temp file, fsync, rename)."""
    temp = f"{path}{TEMP_MARK}{os.getpid()}"
    with open(temp, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1, ensure_ascii=False)
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temp, path)


def read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None


def remove_stale_temps(out: str) -> None:
    """Deletes temp files of killed runs (only names the tool writes: `.*.partial-<pid>`)."""
    for directory in (out, private_dir(out), private_dir(out, "units")):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            if TEMP_MARK in name:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(directory, name))


def old_manifest(out: str) -> dict[str, Any] | None:
    """The previous complete build's manifest, or None; unsafe names are refused."""
    if not os.path.exists(os.path.join(out, manifest_lib.MANIFEST)):
        return None
    return manifest_lib.read(out)


def owned_public_files(out: str, previous: dict[str, Any] | None) -> set[str]:
    """Public file names the tool wrote here: from the manifest `previous` (as read by
    `old_manifest`) and a publication journal."""
    names: set[str] = set()
    if previous is not None:
        names.update(s["name"] for s in previous["shards"])
    journal = read_json(private_dir(out, "journal.json")) or {}
    for name in journal.get("names", []):
        manifest_lib.safe_member(out, name)
        names.add(name)
    return names


def wipe(out: str) -> None:
    """--force: removes the tool's own files only; anything else in OUT stays."""
    for name in owned_public_files(out, old_manifest(out)):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
    for name in ("manifest.json", "spm.model", "spm.vocab", "config.yaml"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(out, name))
    for name in ("units", "cache", "journal.json", "config.json", "tokenizer.json"):
        path = private_dir(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
