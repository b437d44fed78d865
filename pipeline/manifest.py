"""manifest.json: what a build wrote, written last and atomically; read back with path checks."""

from __future__ import annotations

import json
import os
from typing import Any

MANIFEST = "manifest.json"
FORMAT = 1


class ManifestError(RuntimeError):
    """A missing, unreadable or unsafe manifest."""


def write(directory: str, manifest: dict[str, Any]) -> str:
    """Writes `manifest.json` via a temp file and a rename; returns its path."""
    path = os.path.join(directory, MANIFEST)
    temp = os.path.join(directory, f".{MANIFEST}.partial-{os.getpid()}")
    with open(temp, "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=1, sort_keys=False, ensure_ascii=False)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(temp, path)
    return path


def safe_member(directory: str, name: Any) -> str:
    """The path of `name` inside `directory`; ManifestError for anything that would leave it."""
    if (
        not isinstance(name, str)
        or not name
        or name != os.path.basename(name)
        or name in (".", "..")
        or os.path.isabs(name)
    ):
        raise ManifestError(f"{os.path.join(directory, MANIFEST)}: refusing file name {name!r}")
    return os.path.join(directory, name)


def read(directory: str) -> dict[str, Any]:
    """Reads and sanity-checks `manifest.json`; every listed name stays inside `directory`."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, encoding="utf-8") as stream:
            manifest = json.load(stream)
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (not a finished build?)") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: unreadable manifest ({error})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise ManifestError(f"{path}: not a make-pretrain-records manifest")
    for shard in manifest["shards"]:
        if not isinstance(shard, dict):
            raise ManifestError(f"{path}: malformed shard entry {shard!r}")
        safe_member(directory, shard.get("name"))
    return manifest
