"""Work units: input files grouped, their shard counts, and their fingerprints.

A work unit is a group of input files; its shards depend only on its files' bytes, the config
and the seed (every random draw is keyed by the unit's name-derived key, not by its position),
which is what lets a rerun reuse the shards of unchanged units.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zlib
from typing import Any

from pretrain_records.pipeline import manifest, sources
from pretrain_records.pipeline.config import BuildConfig

TARGET_SHARD_BYTES = 128 << 20


UNIT_INPUT_BYTES = 16 << 20  # `text` files are grouped into units of at most about this size


@dataclasses.dataclass(frozen=True)
class Unit:
    key: int  # 63-bit, from the unit's file names: stable when other files come and go
    files: tuple[sources.InputFile, ...]
    shards: int

    @property
    def input_bytes(self) -> int:
        return sum(f.size for f in self.files)


def key_of(*parts: Any) -> int:
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def group_units(
    files: list[sources.InputFile], config: BuildConfig
) -> list[list[sources.InputFile]]:
    """One unit per file, except `text` (one document per file): files grouped by a
    content-defined rule on their names, so adding or removing a file changes one unit."""
    if config.input_format != "text":
        return [[f] for f in files]
    units: list[list[sources.InputFile]] = []
    current: list[sources.InputFile] = []
    size = 0
    for f in files:
        boundary = zlib.crc32(os.path.basename(f.path).encode()) % 4 == 0
        if current and len(current) >= 2 and (boundary or size >= UNIT_INPUT_BYTES):
            units.append(current)
            current, size = [], 0
        current.append(f)
        size += f.size
    if current:
        units.append(current)
    return units


def _estimated_record_bytes(f: sources.InputFile, config: BuildConfig) -> float:
    compressed = f.path.endswith((".gz", ".bz2"))
    expansion = 2.0 * (3.0 if compressed else 1.0)
    passes = config.dupe_factor if config.masking == "static" else 1
    return f.size * expansion * passes


def plan(files: list[sources.InputFile], config: BuildConfig) -> list[Unit]:
    """Work units and their shard counts (`num_shards` auto, or a total split by size)."""
    groups = group_units(files, config)
    estimates = [sum(_estimated_record_bytes(f, config) for f in g) for g in groups]
    if config.num_shards == "auto":
        counts = [max(1, math.ceil(e / TARGET_SHARD_BYTES)) for e in estimates]
    else:
        total = int(config.num_shards)
        if total < len(groups):
            raise sources.SourceError(
                f"num_shards {total} is fewer than the {len(groups)} work units of these inputs "
                "(one per file, `text` files grouped): use num_shards auto or a larger number"
            )
        counts = _largest_remainder([max(e, 1.0) for e in estimates], total)
    return [
        Unit(key=key_of(*(os.path.basename(f.path) for f in g), len(g)), files=tuple(g), shards=c)
        for g, c in zip(groups, counts, strict=True)
    ]


def _largest_remainder(weights: list[float], total: int) -> list[int]:
    """`total` split proportionally to `weights`, at least 1 each."""
    spare = total - len(weights)
    exact = [w / sum(weights) * spare for w in weights]
    counts = [1 + int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


# Bumped whenever the same inputs, config and seed give other records (instance or masking
# draws), so units staged or published by an older version are rebuilt, never mixed in.
RECORDS_VERSION = 2


def unit_fingerprint(unit: Unit, config: BuildConfig, tokenizer_sha: str) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k != "bad_lines"}
    return hashlib.sha256(
        json.dumps(
            {
                "format": manifest.FORMAT,
                "records": RECORDS_VERSION,
                "config": settings,
                "tokenizer": tokenizer_sha,
                "unit": unit.key,
                "files": [[os.path.basename(f.path), f.sha256] for f in unit.files],
                "shards": unit.shards,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()[:32]
