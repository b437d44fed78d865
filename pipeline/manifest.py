"""manifest.json: what a build published, read back with every name confined to OUT.

A manifest names each file of its build with its size and sha256 (`shards` and `files`): that
is how the tool knows which files are its own. Format 1 (older versions) listed only shards.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.errors import DataError

MANIFEST = "manifest.json"
FORMAT = 2
TOOL = "make-pretrain-records"
PROVENANCE = ".mpr/provenance.bin"  # the one published file that is not at OUT's top level
SHARD_NAME = re.compile(r"train-\d{5}-of-\d{5}\.tfrecord(\.gz|\.zz)?")


class ManifestError(DataError):
    """A missing, unreadable, foreign or unsafe manifest (exit 1)."""


def safe_member(directory: str, name: Any) -> str:
    """The path of `name` inside `directory`; ManifestError for anything that would leave it."""
    if name == PROVENANCE:
        return storage.join(directory, ".mpr", "provenance.bin")
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or "\\" in name
        or name in (".", "..")
        or "\0" in name
    ):
        path = storage.join(directory, MANIFEST)
        raise ManifestError(f"{path}: refusing file name {str(name)[:80]!r}")
    return storage.join(directory, name)


def parse(data: bytes, directory: str) -> dict[str, Any]:
    """A manifest's content, checked: ours, well formed, every name inside `directory`."""
    path = storage.join(directory, MANIFEST)
    try:
        manifest = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path}: not a make-pretrain-records manifest ({error})") from None
    if (
        not isinstance(manifest, dict)
        or manifest.get("tool", TOOL) != TOOL
        or not isinstance(manifest.get("shards"), list)
        or not isinstance(manifest.get("config"), dict)
    ):
        raise ManifestError(f"{path}: not a make-pretrain-records manifest")
    for entry in manifest["shards"] + manifest.setdefault("files", []):
        if not isinstance(entry, dict) or not isinstance(entry.get("bytes", 0), int):
            raise ManifestError(f"{path}: malformed file entry {str(entry)[:80]}")
        safe_member(directory, entry.get("name"))
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
    sha256 is not the tool's (it cannot tell the file it wrote), except the tokenizer and config
    of format-1 manifests (older versions always wrote them and recorded no hash)."""
    if manifest.get("format", 1) < 2:
        entries = {e["name"]: e for e in manifest["shards"]}
        for name in ("spm.model", "spm.vocab", "config.yaml"):
            entries.setdefault(name, {"name": name})
        return entries
    return {
        e["name"]: e
        for e in manifest["shards"] + manifest.get("files", [])
        if isinstance(e.get("sha256"), str)
    }


def dumps(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=1, ensure_ascii=False) + "\n").encode()
