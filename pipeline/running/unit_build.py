"""Building units: their tf.data pipeline drained into kept runs under OUT/.mpr/units.

A unit's records are collected in memory, given their shuffle keys and written sorted by key (a
new run every RUN_BYTES, so memory stays bounded by that); every run is fsynced before
unit.json, the unit's completion mark, is written. Whatever goes wrong, the partial unit's files
go (complete units stay, for the next run) and the pipeline is torn down before the error
leaves, so that no tf.data thread is left to block the process's exit.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, from_tf_error
from pretrain_records.pipeline.ground.hashing import record_keys
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.reading.pieces import STATS_FIELDS, ReadStats, check_unchanged
from pretrain_records.pipeline.records.runs import RunInfo, write_run
from pretrain_records.pipeline.records.unit_job import TokenCounts, UnitJob, UnitResult
from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

Claim = Callable[[], int | None]  # the next unit to build (an index into the jobs), or None

RUN_BYTES = 256 << 20

Progress = Callable[[int, int], None]  # (input bytes, records) done since the last call


class _UnitWriter:
    """One unit's records in memory until RUN_BYTES, then a run file sorted by key."""

    def __init__(self, job: UnitJob, out: OutputDir) -> None:
        self.job, self.out = job, out
        self.directory = out.fresh_unit_dir(job.fingerprint)
        self.records: list[bytes] = []
        self.pieces: list[np.ndarray] = []
        self.size = self.count = 0
        self.stats = np.zeros(STATS_FIELDS, np.int64)
        self.tokens = np.zeros(2, np.int64)  # (input, in records), summed over every pass
        self.runs: list[RunInfo] = []

    def add(
        self, records: np.ndarray, stats: np.ndarray, pieces: np.ndarray, tokens: np.ndarray
    ) -> None:
        """A chunk's records (and the piece of the unit each comes from), statistics and
        token counts."""
        batch = records.tolist()
        self.records.extend(batch)
        self.pieces.append(pieces.astype(np.uint32))
        self.size += sum(map(len, batch))
        self.stats += stats
        self.tokens += tokens
        if self.size >= RUN_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.records:
            return
        ordinals = np.arange(self.count, self.count + len(self.records), dtype=np.uint64)
        keys = record_keys(self.job.shuffle_seed(), ordinals)
        path = storage.join(self.directory, f"run-{len(self.runs)}.bin")
        pieces = np.concatenate(self.pieces)
        self.runs.append(write_run(path, keys, ordinals.astype(np.uint32), pieces, self.records))
        self.count += len(self.records)
        self.records, self.pieces, self.size = [], [], 0

    def finish(self) -> UnitResult:
        """The last run, then unit.json (every run is fsynced by then): the unit is complete,
        if its files did not change while it was read."""
        for piece in self.job.pieces:
            check_unchanged(piece)
        self._flush()
        per_pass = (self.stats // self.job.passes()).tolist()  # each pass reports the same
        tokens = TokenCounts(int(self.tokens[0]), int(self.tokens[1]), self.job.passes())
        result = UnitResult(
            self.job.fingerprint,
            self.count,
            ReadStats.from_list(per_pass),
            tuple(self.runs),
            tokens,
        )
        self.out.write_private_json(result.to_json(), "units", self.job.fingerprint, "unit.json")
        return result


def build_units(
    jobs: list[UnitJob],
    claim: Claim,
    tokenizer: Tokenizer,
    out: OutputDir,
    progress: Progress | None = None,
    started: Callable[[UnitJob], None] | None = None,
    threads: int | None = None,
) -> list[UnitResult]:
    """Builds the units this process claims (`claim` gives the next index into `jobs`), through
    one pipeline (on `threads` threads, default all cores); returns their results (each also
    written as the unit's unit.json, its mark of completion)."""
    from pretrain_records.pipeline.records import unit_pipeline

    results: list[UnitResult] = []
    writers: dict[int, _UnitWriter] = {}
    try:
        iterator = iter(unit_pipeline.units_records(jobs, claim, tokenizer, threads))
        try:
            for unit, records, size, stats, pieces, last, tokens in iterator:
                index = int(unit)
                if index not in writers:
                    writers[index] = _UnitWriter(jobs[index], out)
                    if started is not None:
                        started(jobs[index])
                batch = records.numpy()
                writers[index].add(batch, stats.numpy(), pieces.numpy(), tokens.numpy())
                if progress is not None:
                    progress(int(size), len(batch))
                if bool(last):
                    results.append(writers[index].finish())
                    del writers[index]
        finally:
            del iterator
            gc.collect()
        if writers:
            raise RuntimeError(f"units left unfinished: {[w.job.label for w in writers.values()]}")
    except BaseException as error:
        for writer in writers.values():  # units cut short; complete ones stay, for the next run
            out.drop_partial_unit(writer.job.fingerprint)
        raise _converted(error) from None
    return results


def _converted(error: BaseException) -> BaseException:
    """The error to raise for a failed build: ours as they were raised inside the pipeline;
    TensorFlow's traceback (which keeps the pipeline alive) dropped."""
    import tensorflow as tf

    if isinstance(error, tf.errors.OpError):
        ours = from_tf_error(error)
        error.__traceback__ = None
        if ours is not None:
            return ours
        message = error.message.strip().splitlines()
        first = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message[0]) if message else ""
        return DataError(first or type(error).__name__)
    return error
