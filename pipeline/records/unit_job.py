"""A work unit as executors pass it around: what to build (UnitJob) and what was built
(UnitResult, also kept as the unit's unit.json)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import operator
from collections.abc import Iterable
from typing import Any

from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.reading.pieces import Piece, ReadStats
from pretrain_records.pipeline.records.runs import RunInfo

# Bumped when the same inputs, config and seed give other records, or when unit.json gains what
# the manifest's totals need (5: token counts), so that units an older version kept are rebuilt
# and the build is merged again (its id changes) with a manifest that has them. 6: chunks span
# the pieces of a unit (small files cost what their bytes cost). 7: runs of format MPRRUN03 (a
# header with the records' bytes; the merge reads each run once).
RECORDS_VERSION = 7


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
class TokenCounts:
    """Tokens of the input and, of them, those the records keep: integer totals over all passes.

    `input`: the tokens the tokenizer gave the documents, counted in every pass (each pass reads
    them all: the per-pass count times `passes`, exactly). `in_records`: the tokens the records
    carry from their own document (segment A, and B unless it is NSP's random segment from
    another document; no [CLS]/[SEP]), summed over every pass: each pass truncates by its own
    draws, so only the total is exact. Totals add up across units; the per-pass figures the
    manifest reports come from the grand totals (`per_pass`).
    """

    input: int = 0
    in_records: int = 0
    passes: int = 1  # dupe_factor for static masking, 1 for dynamic

    def __add__(self, other: TokenCounts) -> TokenCounts:
        if self.passes != other.passes:
            raise ValueError(f"token counts of {self.passes} and {other.passes} passes")
        return TokenCounts(
            self.input + other.input, self.in_records + other.in_records, self.passes
        )

    @classmethod
    def total(cls, counts: Iterable[TokenCounts]) -> TokenCounts:
        """The sum of units' counts (all of the same passes); zeros for none."""
        counts = list(counts)
        return functools.reduce(operator.add, counts) if counts else cls()

    def per_pass(self) -> dict[str, int]:
        """{"input", "in_records", "dropped"} per pass: `input` exact, `in_records` the total
        over the passes divided by their number, rounded down; `dropped` the difference."""
        input_tokens = self.input // self.passes
        kept = self.in_records // self.passes
        return {"input": input_tokens, "in_records": kept, "dropped": input_tokens - kept}


@dataclasses.dataclass(frozen=True)
class UnitResult:
    """A complete unit, as unit.json records it."""

    fingerprint: str
    records: int
    stats: ReadStats
    runs: tuple[RunInfo, ...]
    tokens: TokenCounts

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "records": self.records,
            "stats": dataclasses.asdict(self.stats),
            "runs": [dataclasses.asdict(r) for r in self.runs],
            "tokens": dataclasses.asdict(self.tokens),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> UnitResult:
        """Raises ValueError for a unit.json without token counts: an older version's, whose
        fingerprint (of an older RECORDS_VERSION) this version never looks up."""
        if not isinstance(data.get("tokens"), dict):
            raise ValueError(f"unit {data.get('fingerprint')}: unit.json has no token counts")
        return cls(
            fingerprint=data["fingerprint"],
            records=int(data["records"]),
            stats=ReadStats(**data.get("stats", {})),
            runs=tuple(RunInfo(**r) for r in data["runs"]),
            tokens=TokenCounts(**data["tokens"]),
        )


def largest_first(jobs: list[UnitJob]) -> list[int]:
    """The order units are handed out in: largest first, so that small ones fill the gaps."""
    return sorted(range(len(jobs)), key=lambda i: (-jobs[i].input_bytes, jobs[i].fingerprint))
