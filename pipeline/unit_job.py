"""A work unit as executors pass it around: what to build (UnitJob) and what was built
(UnitResult, also kept as the unit's unit.json)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.documents import Piece, ReadStats
from pretrain_records.pipeline.runs import RunInfo

RECORDS_VERSION = 3  # bumped when the same inputs, config and seed give other records


def seed_of(*parts: Any) -> int:
    """A 63-bit seed from anything printable (the build seed, a unit key, a purpose)."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclasses.dataclass(frozen=True)
class UnitJob:
    """Everything a worker needs to build one unit (picklable)."""

    fingerprint: str
    key: str
    label: str
    pieces: tuple[Piece, ...]
    piece_bytes: tuple[int, ...]
    config: BuildConfig

    @property
    def input_bytes(self) -> int:
        return sum(self.piece_bytes)

    def passes(self) -> int:
        return self.config.dupe_factor if self.config.masking == "static" else 1

    def seeds(self) -> tuple[int, int]:
        """(instance seed, mask seed) of the unit's draws."""
        return (
            seed_of("instances", self.config.seed, self.key),
            seed_of("masks", self.config.seed, self.key),
        )

    def shuffle_seed(self) -> int:
        """The seed of its records' keys in the global merge."""
        return seed_of("shuffle", self.config.seed, self.key)


@dataclasses.dataclass(frozen=True)
class UnitResult:
    """A complete unit, as unit.json records it."""

    fingerprint: str
    records: int
    stats: ReadStats
    runs: tuple[RunInfo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "records": self.records,
            "stats": dataclasses.asdict(self.stats),
            "runs": [dataclasses.asdict(r) for r in self.runs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitResult:
        return cls(
            fingerprint=data["fingerprint"],
            records=int(data["records"]),
            stats=ReadStats(**data.get("stats", {})),
            runs=tuple(RunInfo(**r) for r in data["runs"]),
        )
