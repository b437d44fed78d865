"""manifest.json: what a build published, read back with every name confined to OUT.

A manifest names each file of its build with its size and sha256 (`shards` and `files`): that
is how the tool knows which files are its own. Only a manifest carrying the tool's marks
(`"tool": "make-pretrain-records"`, `"format"` 2 or later) is the tool's; format 1 (the first
versions, which recorded no hashes) is treated as foreign.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError

MANIFEST = "manifest.json"
FORMAT = 2
TOOL = "make-pretrain-records"
LEGACY_PROVENANCE = ".mpr/provenance.bin"  # where builds of the first layout kept it
SHARD_NAME = re.compile(r"train-\d{5}-of-\d{5}\.tfrecord(\.gz|\.zz)?")
BUILD_FOLDER = re.compile(r"build-\d{5,}")


class ManifestError(DataError):
    """A missing, unreadable, foreign or unsafe manifest (exit 1)."""


def safe_member(directory: str, name: Any) -> str:
    """The path of `name` inside `directory` (a file at its top level, or in a build folder
    `build-NNNNN/`); ManifestError for anything that would leave it."""
    if name == LEGACY_PROVENANCE:
        return storage.join(directory, ".mpr", "provenance.bin")
    if isinstance(name, str) and name.count("/") == 1:
        folder, _, file = name.partition("/")
        if BUILD_FOLDER.fullmatch(folder) and _plain_name(file):
            return storage.join(directory, folder, file)
    if not _plain_name(name):
        path = storage.join(directory, MANIFEST)
        raise ManifestError(f"{path}: refusing file name {str(name)[:80]!r}")
    return storage.join(directory, name)


def _plain_name(name: Any) -> bool:
    return not (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or "\0" in name
    )


def provenance_name(manifest: dict[str, Any]) -> str | None:
    """The name of a build's provenance file (which unit each record came from), if it has
    one."""
    for entry in manifest.get("files", []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name.rsplit("/", 1)[-1] == "provenance.bin":
            return name
    return None


def parse(data: bytes, directory: str) -> dict[str, Any]:
    """A manifest's content, checked: ours, well formed, every name inside `directory`."""
    path = storage.join(directory, MANIFEST)
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a make-pretrain-records manifest ({error})") from None
    # The tool's own marks: a manifest without them (even one listing shards and a config) is
    # foreign, and so is everything beside it.
    if (
        not isinstance(manifest, dict)
        or manifest.get("tool") != TOOL
        or not isinstance(manifest.get("format"), int)
        or manifest["format"] < 2
        or not isinstance(manifest.get("shards"), list)
        or not isinstance(manifest.get("config"), dict)
    ):
        raise ManifestError(f"{path}: not a make-pretrain-records manifest")
    folder = manifest.get("build_dir") or ""
    if not isinstance(folder, str) or (folder and not BUILD_FOLDER.fullmatch(folder)):
        raise ManifestError(f"{path}: refusing build folder {str(folder)[:80]!r}")
    for entry in manifest["shards"] + manifest.setdefault("files", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("bytes", 0), int):
            raise ManifestError(f"{path}: malformed file entry {str(entry)[:80]}")
        name = entry.get("name")
        safe_member(directory, name)
        if folder and name != LEGACY_PROVENANCE and not str(name).startswith(f"{folder}/"):
            raise ManifestError(f"{path}: {str(name)[:80]!r} is outside its build's folder")
    for shard in manifest["shards"]:
        if not SHARD_NAME.fullmatch(str(shard.get("name")).rpartition("/")[2]):
            raise ManifestError(f"{path}: refusing shard name {str(shard.get('name'))[:80]!r}")
    if not isinstance(manifest["config"].get("compression", "none"), str):
        raise ManifestError(f"{path}: malformed config (compression)")
    manifest["config"].setdefault("compression", "none")
    return manifest


def read(directory: str) -> dict[str, Any]:
    """Reads and checks `directory`/manifest.json."""
    path = storage.join(directory, MANIFEST)
    try:
        data = storage.read_bytes(path)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (not a finished build?)") from None
    except OSError as error:
        raise ManifestError(f"{path}: unreadable manifest ({error.strerror or error})") from None
    return parse(data, directory)


def owned_files(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every file the manifest's build published: name -> {bytes, sha256}. An entry without a
    sha256 is not the tool's (it cannot tell the file it wrote)."""
    return {
        e["name"]: e
        for e in manifest["shards"] + manifest.get("files", [])
        if isinstance(e.get("sha256"), str)
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    """The manifest as UTF-8 JSON, readable as it is (non-ASCII names unescaped). A name that
    is not UTF-8 (b"caf\\xe9.txt", held as "caf\\udce9.txt") is written with JSON escapes,
    which json.loads and os.fsencode turn back into its bytes."""
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    # Lone surrogates (no UTF-8 encoder takes them) appear only inside JSON strings, where a
    # \uXXXX escape stands for each.
    text = re.sub("[\ud800-\udfff]", lambda match: f"\\u{ord(match.group()):04x}", text)
    return (text + "\n").encode()
