"""Input files: paths, globs and directories expanded to a sorted, de-duplicated file list.

A path that exists is taken literally (so `data[1].txt` is a file, not a glob); anything else is
a glob. Directory walks, local or remote, skip the output directory, hidden files and folders
(`.git`, `.mpr`) and anything that is not a regular file (FIFOs, sockets, devices), counting
what they skip. A file named twice (relative, `./`, absolute, through a symlink) is read once.
Each file gets its path relative to the inputs' common root: it tells apart two files of one
content.

Local walks follow symlinked folders and walk each real folder once: a folder reached again (a
symlink loop, or a second link to a folder already walked) is not walked again and is counted
as `repeated_folders`. A folder that cannot be listed (no permission, an I/O error) is an error
naming it, as an unreadable file is: a walk never leaves a folder out silently.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import stat
from typing import NoReturn

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, UsageError

GLOB_CHARACTERS = "*?["


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str  # as opened (absolute for local files)
    relpath: str  # relative to the common root of every input: how the manifest names it


@dataclasses.dataclass
class Skipped:
    """What directory walks left out, reported in the summary."""

    hidden: int = 0
    output_dir: int = 0
    not_regular: int = 0
    repeated_folders: int = 0  # reached again through a symlink (a loop): walked once
    index_files: int = 0  # a multistream Wikipedia dump's index: read with its dump

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _inside(path: str, directory: str | None) -> bool:
    if directory is None:
        return False
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _walk_local(root: str, out_path: str | None, skipped: Skipped) -> list[str]:
    found = []
    walked = {_identity(root)}
    for here, dirs, names in os.walk(root, onerror=_unlistable, followlinks=True):
        kept_dirs = []
        for name in sorted(dirs):
            full = os.path.join(here, name)
            if name.startswith("."):
                skipped.hidden += 1
            elif _inside(os.path.realpath(full), out_path):
                skipped.output_dir += 1
            elif (identity := _identity(full)) in walked:
                skipped.repeated_folders += 1
            else:
                walked.add(identity)
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in names:
            full = os.path.join(here, name)
            if name.startswith("."):
                skipped.hidden += 1
            elif _inside(os.path.realpath(full), out_path):
                skipped.output_dir += 1
            elif not _is_regular(full):
                skipped.not_regular += 1
            else:
                found.append(full)
    return found


def _identity(folder: str) -> tuple[int, int]:
    """(device, inode) of a folder, through symlinks: what makes it the same folder."""
    try:
        info = os.stat(folder)
    except OSError as error:
        _unlistable(error)
    return info.st_dev, info.st_ino


def _unlistable(error: OSError) -> NoReturn:
    """A folder that cannot be listed (os.walk would leave it out silently)."""
    raise DataError(
        f"{error.filename}: cannot read the folder ({error.strerror or error})",
        path=error.filename,
    )


def _walk_remote(root: str, out_path: str | None, skipped: Skipped) -> list[str]:
    """Files under a `scheme://` folder; hidden entries and OUT skipped and counted."""
    gfile = storage.gfile()
    found = []
    for here, dirs, names in gfile.walk(root):
        kept_dirs = []
        for name in dirs:
            if name.rstrip("/").startswith("."):
                skipped.hidden += 1
            elif _inside(storage.join(here, name.rstrip("/")), out_path):
                skipped.output_dir += 1
            else:
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in names:
            if name.startswith("."):
                skipped.hidden += 1
            elif _inside(storage.join(here, name), out_path):
                skipped.output_dir += 1
            else:
                found.append(storage.join(here, name))
    return found


def _matches(pattern: str, out_path: str | None, skipped: Skipped) -> list[str]:
    """Files one command-line input names (OUT's real path or URL: `out_path`)."""
    if storage.is_remote(pattern):
        if storage.isdir(pattern):
            return _walk_remote(pattern, out_path, skipped)
        if storage.exists(pattern):
            return [pattern]
        found = []
        for match in storage.gfile().glob(pattern):
            if _inside(match, out_path):
                skipped.output_dir += 1
            elif not storage.isdir(match):
                found.append(match)
        return found
    if os.path.lexists(pattern):  # an existing path is literal, whatever its characters
        if os.path.isdir(pattern):
            return _walk_local(pattern, out_path, skipped)
        if not _is_regular(pattern):
            raise UsageError(f"{pattern}: not a regular file (a FIFO, socket or device?)")
        return [pattern]
    if not any(c in pattern for c in GLOB_CHARACTERS):
        raise UsageError(f"no such file: {pattern}")
    found = []
    for match in glob.glob(pattern, recursive=True):
        if os.path.isdir(match):
            found.extend(_walk_local(match, out_path, skipped))
        elif _inside(os.path.realpath(match), out_path):
            skipped.output_dir += 1
        elif _is_regular(match):
            found.append(match)
        else:
            skipped.not_regular += 1
    return found


def expand(patterns: list[str], out: str | None = None) -> tuple[list[InputFile], Skipped]:
    """The files named by `patterns`, sorted by relative path, each once."""
    skipped = Skipped()
    out_path = None
    if out:  # compared with local files by real path, with remote ones by URL
        out_path = out.rstrip("/") if storage.is_remote(out) else os.path.realpath(out)
    by_identity: dict[str, str] = {}
    for pattern in patterns:
        matches = _matches(pattern, out_path, skipped)
        if not matches:
            raise UsageError(f"no file matches {pattern}")
        for match in matches:
            identity = match if storage.is_remote(match) else os.path.realpath(match)
            by_identity.setdefault(identity, match)
    identities = sorted(by_identity)
    root = _common_root(identities)
    files = [InputFile(path=i, relpath=_relative(i, root)) for i in identities]
    return sorted(files, key=lambda f: f.relpath), skipped


def _common_root(paths: list[str]) -> str:
    local = [p for p in paths if not storage.is_remote(p)]
    if len(local) != len(paths) or not paths:
        return ""
    return os.path.commonpath([os.path.dirname(p) for p in paths])


def _relative(path: str, root: str) -> str:
    if not root:
        return path
    return os.path.relpath(path, root)
