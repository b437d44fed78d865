"""The one answer to "is this file still what was recorded?", at the strength a caller can
afford, for every file the tool checks: a published build's files (publication), a staged
build before its commit, a kept unit's runs before the merge reads them, and `verify`.

Levels, each doing what the ones before it do:

    size     the file is there with its recorded size (a stat: cheap on object stores)
    sha256   and its bytes hash to the recorded sha256 (one read of the whole file)
    frames   and, for a TFRecord shard, its frames walked to count its records (same read)
    crc      and both CRC-32C of every record checked (same read)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.records.frames import check_shard

LEVELS = ("size", "sha256", "frames", "crc")


def check_file(
    path: str,
    recorded: Mapping[str, Any],
    level: str,
    compression: str = "none",
    against: str = "its record",
) -> list[str]:
    """What is wrong with the file at `path` against its `recorded` entry (`bytes`, `sha256`,
    and `records` for a shard at the frames and crc levels), each problem one line naming the
    path and what it is checked `against` ("the manifest"); empty when it is intact. An entry
    without a sha256 (format-1 manifests) has its presence and frames checked, not its bytes."""
    if level not in LEVELS:
        raise ValueError(f"unknown integrity level {level!r} (one of {', '.join(LEVELS)})")
    hashed = "sha256" in recorded  # else (format-1 manifests) its bytes are not compared
    try:
        if not storage.exists(path):
            return [f"{path}: missing"]
        if level == "size":
            return _size_problems(path, recorded, storage.size(path), against) if hashed else []
        if level == "sha256":
            if not hashed:
                return []
            size, sha = storage.file_sha256(path)
            return _size_problems(path, recorded, size, against) + _sha_problems(
                path, recorded, sha, against
            )
        check = check_shard(path, compression, crc=level == "crc")
    except OSError as error:
        return [f"{path}: unreadable ({error.strerror or error})"]
    problems = []
    if hashed:
        problems += _size_problems(path, recorded, check.size, against)
        problems += _sha_problems(path, recorded, check.sha256, against)
    problems += check.problems
    if check.complete and "records" in recorded and check.records != recorded["records"]:
        problems.append(f"{path}: {check.records} records, {against} says {recorded['records']}")
    return problems


def _size_problems(path: str, recorded: Mapping[str, Any], size: int, against: str) -> list[str]:
    if size != recorded.get("bytes"):
        return [f"{path}: {size} bytes, {against} says {recorded.get('bytes')}"]
    return []


def _sha_problems(path: str, recorded: Mapping[str, Any], sha: str, against: str) -> list[str]:
    if sha != recorded["sha256"]:
        return [f"{path}: sha256 differs from {against}"]
    return []
