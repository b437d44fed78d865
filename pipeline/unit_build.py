"""Building one work unit: its tf.data pipeline drained into kept runs under OUT/.mpr/units.

The records are collected in memory, given their shuffle keys and written sorted by key (a new
run every RUN_BYTES, so memory stays bounded by that); every run is fsynced before unit.json,
the unit's completion mark, is written. Whatever goes wrong, the unit's partial files go and
the pipeline is torn down before the error leaves (no tf.data thread is left to block exit).
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.config import BuildConfig
from pretrain_records.pipeline.documents import Piece, ReadStats
from pretrain_records.pipeline.errors import DataError, from_tf_error
from pretrain_records.pipeline.outdir import OutputDir
from pretrain_records.pipeline.runs import RunInfo, record_keys, write_run
from pretrain_records.pipeline.tokenize import Tokenizer

RUN_BYTES = 256 << 20
RECORDS_VERSION = 3  # bumped when the same inputs, config and seed give other records

Progress = Callable[[int, int], None]  # (input bytes, records) done since the last call


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

    def shuffle_seed(self) -> int:
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


class _RunCollector:
    """Records of a unit in memory until RUN_BYTES, then a run file sorted by key."""

    def __init__(self, job: UnitJob, directory: str) -> None:
        self.job, self.directory = job, directory
        self.records: list[bytes] = []
        self.pieces: list[np.ndarray] = []
        self.size = self.count = 0
        self.runs: list[RunInfo] = []

    def add(self, records: np.ndarray, piece: int) -> None:
        batch = records.tolist()
        self.records.extend(batch)
        self.pieces.append(np.full(len(batch), piece, np.uint32))
        self.size += sum(map(len, batch))
        if self.size >= RUN_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.records:
            return
        ordinals = np.arange(self.count, self.count + len(self.records), dtype=np.uint64)
        keys = record_keys(self.job.shuffle_seed(), ordinals)
        path = storage.join(self.directory, f"run-{len(self.runs)}.bin")
        pieces = np.concatenate(self.pieces)
        self.runs.append(write_run(path, keys, ordinals.astype(np.uint32), pieces, self.records))
        self.count += len(self.records)
        self.records, self.pieces, self.size = [], [], 0


def build_unit(
    job: UnitJob, tokenizer: Tokenizer, out: OutputDir, progress: Progress | None = None
) -> UnitResult:
    """Builds a unit's kept runs; returns its result (also written as its unit.json)."""
    from pretrain_records.pipeline import unit_pipeline

    directory = out.fresh_unit_dir(job.fingerprint)
    cache = out.work("cache", job.fingerprint)
    seeds = unit_pipeline.UnitSeeds(
        instances=tuple(
            seed_of("instances", job.config.seed, job.key, p) for p in range(job.passes())
        ),
        masks=tuple(seed_of("masks", job.config.seed, job.key, p) for p in range(job.passes())),
    )
    collector = _RunCollector(job, directory)
    stats = np.zeros(5, np.int64)
    try:
        dataset = unit_pipeline.unit_records(
            job.pieces,
            job.piece_bytes,
            job.config,
            tokenizer,
            seeds,
            storage.join(cache, "chunks"),
        )
        _drain(dataset, collector, stats, progress)
        collector.flush()
    except BaseException as error:
        out.drop_partial_unit(job.fingerprint)
        raise _converted(error) from None
    out.drop_cache(job.fingerprint)
    result = UnitResult(
        job.fingerprint, collector.count, ReadStats.from_list(stats.tolist()), tuple(collector.runs)
    )
    out.write_private_json(result.to_json(), "units", job.fingerprint, "unit.json")
    return result


def _drain(
    dataset: Any, collector: _RunCollector, stats: np.ndarray, progress: Progress | None
) -> None:
    """Iterates the pipeline to its end; on any error the iterator is destroyed here, while
    Python is fully alive, so TensorFlow's worker threads can finish (never at exit)."""
    iterator = iter(dataset)
    try:
        for records, size, chunk_stats, piece in iterator:
            records = records.numpy()
            collector.add(records, int(piece))
            stats += chunk_stats.numpy()
            if progress is not None:
                progress(int(size), len(records))
    finally:
        del iterator
        gc.collect()


def _converted(error: BaseException) -> BaseException:
    """The error to raise for a failed unit: ours as they were raised inside the pipeline;
    TensorFlow's traceback (which keeps the pipeline alive) dropped."""
    import tensorflow as tf

    if isinstance(error, tf.errors.OpError):
        ours = from_tf_error(error)
        error.__traceback__ = None
        if ours is not None:
            return ours
        message = error.message.strip().splitlines()
        return DataError(message[0] if message else type(error).__name__)
    return error
