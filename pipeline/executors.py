"""Where missing units are built: this process, a pool of worker processes, or Apache Beam.

Every executor runs `unit_build.build_unit` on each job and returns the results; the bytes of a
unit never depend on where it was built. Worker processes are spawned (TensorFlow does not
survive fork), each loads TensorFlow, the op library and the tokenizer once, and builds units
largest first; their progress comes back through a queue.
"""

from __future__ import annotations

import dataclasses
import os
import queue
import time
from typing import Any, Protocol

from pretrain_records.pipeline.events import Events
from pretrain_records.pipeline.outdir import OutputDir
from pretrain_records.pipeline.planning import human_bytes
from pretrain_records.pipeline.unit_build import UnitJob, UnitResult


def available_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota)) if quota else max(1, cores)


def _cgroup_quota() -> int | None:
    try:  # cgroup v2
        limit, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        return None if limit == "max" else max(1, -(-int(limit) // int(period)))
    except (OSError, ValueError):
        pass
    try:  # cgroup v1
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        return None if quota <= 0 else max(1, -(-quota // period))
    except (OSError, ValueError):
        return None


class Executor(Protocol):
    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]: ...


@dataclasses.dataclass(frozen=True)
class InProcess:
    """Units one after another in this process (tf.data's own threads run beside Python)."""

    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]:
        from pretrain_records.pipeline.tokenize import Tokenizer
        from pretrain_records.pipeline.unit_build import build_unit

        tokenizer = Tokenizer(model, name="spm.model")
        results = []
        for job in jobs:
            events.log(f"building {job.label} ({human_bytes(job.input_bytes)})")
            results.append(build_unit(job, tokenizer, out, events.advance))
        return results


@dataclasses.dataclass(frozen=True)
class Processes:
    """Units in `workers` spawned worker processes."""

    workers: int

    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]:
        import multiprocessing
        from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

        count = min(self.workers, len(jobs))
        events.log(f"building {len(jobs)} units in {count} worker processes")
        context = multiprocessing.get_context("spawn")
        updates: Any = context.Queue()
        threads = max(1, available_cores() // count)
        ordered = sorted(jobs, key=lambda j: (-j.input_bytes, j.fingerprint))
        with ProcessPoolExecutor(
            count,
            mp_context=context,
            initializer=_start_worker,
            initargs=(model, out.path, updates, os.getpid(), threads),
        ) as pool:
            futures = {pool.submit(_build_in_worker, job): job for job in ordered}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
                    _relay(updates, events)
                    for future in done:
                        future.result()  # a worker's error, raised here
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
            _relay(updates, events)
            return [f.result() for f in futures]


def _relay(updates: Any, events: Events) -> None:
    while True:
        try:
            kind, payload = updates.get_nowait()
        except queue.Empty:
            return
        if kind == "log":
            events.log(payload)
        else:
            events.advance(*payload)


_worker: dict[str, Any] = {}


def _start_worker(model: bytes, out: str, updates: Any, parent: int, threads: int) -> None:
    """Worker start-up: TensorFlow's thread pools sized to this worker's share of the cores,
    the op library and the tokenizer loaded once."""
    import tensorflow as tf
    from pretrain_records.ops import library
    from pretrain_records.pipeline.tokenize import Tokenizer

    tf.config.threading.set_inter_op_parallelism_threads(threads)
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    library.load()
    _worker.update(
        tokenizer=Tokenizer(model, name="spm.model"),
        out=OutputDir(out),
        updates=updates,
        parent=parent,
        pending=[0, 0],
        sent=time.monotonic(),
    )


def _build_in_worker(job: UnitJob) -> UnitResult:
    from pretrain_records.pipeline.unit_build import build_unit

    _worker["updates"].put(("log", f"building {job.label} ({human_bytes(job.input_bytes)})"))
    result = build_unit(job, _worker["tokenizer"], _worker["out"], _report)
    _flush_progress()
    return result


def _report(input_bytes: int, records: int) -> None:
    """Progress from a worker, sent a few times a second; a worker whose build is gone stops."""
    pending = _worker["pending"]
    pending[0] += input_bytes
    pending[1] += records
    if time.monotonic() - _worker["sent"] > 0.25:
        if os.getppid() != _worker["parent"]:
            raise SystemExit("the build that started this worker is gone")
        _flush_progress()


def _flush_progress() -> None:
    pending = _worker["pending"]
    if pending != [0, 0]:
        _worker["updates"].put(("advance", tuple(pending)))
        pending[:] = [0, 0]
    _worker["sent"] = time.monotonic()


def executor_for(runner: str, workers: int, options: dict[str, str], pending: int) -> Executor:
    """The executor of a build: Beam for a Beam runner, else worker processes when more than
    one worker has more than one unit to build, else this process."""
    if runner != "local":
        from pretrain_records.pipeline.beam import Beam

        return Beam(runner, workers, options)
    if workers > 1 and pending > 1:
        return Processes(workers)
    return InProcess()
