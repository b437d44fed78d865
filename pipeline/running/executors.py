"""Where missing units are built: this process, a pool of worker processes, or Apache Beam.

Every executor runs `unit_build.build_units` and returns the results; the bytes of a unit never
depend on where it was built. Worker processes are spawned (TensorFlow does not survive fork);
each loads TensorFlow, the op library and the tokenizer once, then runs one pipeline that
claims units in turn (a shared counter), largest first, until none is left (so they share the work
however uneven the units); their logs, progress and results come back through a pipe each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import time
from collections.abc import Iterator
from typing import Any, Protocol

from pretrain_records.pipeline.ground.errors import MprError
from pretrain_records.pipeline.ground.events import Events
from pretrain_records.pipeline.ground.machine import available_cores, available_memory, core_share
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.records.unit_job import UnitJob, UnitResult, largest_first
from pretrain_records.pipeline.running.planning import human_bytes


class Executor(Protocol):
    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]: ...


@dataclasses.dataclass(frozen=True)
class InProcess:
    """Units in this process, through one pipeline (tf.data's threads run beside Python:
    SentencePiece and the ops release the GIL)."""

    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]:
        from pretrain_records.pipeline.running.unit_build import build_units
        from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

        def started(job: UnitJob) -> None:
            events.log(f"building {job.label} ({human_bytes(job.input_bytes)})")

        order = iter(largest_first(jobs))
        tokenizer = Tokenizer(model, name="spm.model")
        return build_units(jobs, lambda: next(order, None), tokenizer, out, events.advance, started)


@dataclasses.dataclass(frozen=True)
class Processes:
    """Units in `workers` spawned worker processes, which claim them in turn (a shared counter
    over the units, largest first) and send their logs, progress and results (or an error)
    back through a pipe of their own. A worker that dies without a word (the OOM killer,
    kill -9) closes its pipe: an error at once, never a wait. When the build ends, well or
    not, the workers are killed rather than waited for: a worker's interpreter shutting down
    after a failed pipeline can hang in TensorFlow's teardown, and the build must never hang
    with the lock."""

    workers: int

    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]:
        import multiprocessing

        count = min(self.workers, len(jobs))
        events.log(f"building {len(jobs)} units in {count} worker processes")
        context = multiprocessing.get_context("spawn")
        claimed: Any = context.Value("q", 0)
        threads = core_share(count)
        setup = _WorkerSetup(model, out.path, largest_first(jobs), os.getpid(), threads)
        workers: list[tuple[Any, Any]] = []
        completed = False
        try:
            for index in range(count):
                reader, writer = context.Pipe(duplex=False)
                process = context.Process(
                    target=_worker_main,
                    args=(jobs, setup, writer, claimed),
                    name=f"make-pretrain-records worker {index}",
                    daemon=True,
                )
                workers.append((process, reader))
                with _stopping_signals_blocked():  # until the worker ignores them
                    process.start()
                writer.close()  # the worker's end: closed by the kernel when the worker dies
            results = _collect(workers, events)
            completed = True
            return results
        finally:
            _stop(workers)
            if not completed:  # units a killed worker left half-built; complete ones stay
                with contextlib.suppress(Exception):
                    for job in jobs:
                        if out.kept_unit(job.fingerprint) is None:
                            out.drop_partial_unit(job.fingerprint)


def _stop(workers: list[tuple[Any, Any]]) -> None:
    """Kills the workers and waits for them (no lock taken here: a dead worker may hold the
    shared counter's)."""
    for process, _ in workers:
        if process.pid is not None:
            process.kill()
    for process, reader in workers:
        if process.pid is not None:
            process.join(timeout=10)
        reader.close()


@contextlib.contextmanager
def _stopping_signals_blocked() -> Iterator[None]:
    """SIGINT and SIGTERM held back in this thread (a worker started meanwhile inherits the
    mask, and lifts it once it ignores them: Ctrl-C never reaches a worker half started)."""
    import signal

    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _collect(workers: list[tuple[Any, Any]], events: Events) -> list[UnitResult]:
    """Every worker's results, relaying its logs and progress meanwhile; a worker's error is
    raised here, and so is a worker whose pipe closes before it sent its results."""
    from multiprocessing.connection import wait

    results: list[UnitResult] = []
    running = {reader: index for index, (_, reader) in enumerate(workers)}
    while running:
        for reader in wait(list(running)):
            index = running[reader]
            try:
                kind, payload = reader.recv()
            except (EOFError, OSError):
                process = workers[index][0]
                process.join(timeout=5)
                raise MprError(
                    f"worker process {process.pid} died ({_describe_exit(process.exitcode)}) "
                    "before finishing its units; rerun to resume (complete units are kept)"
                ) from None
            if kind == "log":
                events.log(payload)
            elif kind == "advance":
                events.advance(*payload)
            elif kind == "done":
                results.extend(payload)
                del running[reader]
            else:
                raise payload
    return results


def _describe_exit(code: int | None) -> str:
    import signal

    if code is None:
        return "still running, its pipe closed"
    if code >= 0:
        return f"exit code {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"killed by {name}" + (", out of memory?" if -code == signal.SIGKILL else "")


@dataclasses.dataclass(frozen=True)
class _WorkerSetup:
    """What every worker is started with."""

    model: bytes
    out: str
    order: list[int]
    parent: int
    threads: int


_worker: dict[str, Any] = {}


def _worker_main(jobs: list[UnitJob], setup: _WorkerSetup, connection: Any, claimed: Any) -> None:
    """A worker process: starts, builds the units it claims, and sends back its results or
    its error (each message pickled as it is sent, so a failure to pickle is reported too)."""
    try:
        _start_worker(setup, connection, claimed)
        connection.send(("done", _build_in_worker(jobs)))
    except BaseException as error:  # noqa: BLE001 - every failure goes back to the build
        connection.send(("error", _portable(error)))
    connection.close()


def _portable(error: BaseException) -> BaseException:
    """`error` if the build may raise it as it is (it pickles, it is an Exception or an
    interrupt), else an MprError describing it."""
    if isinstance(error, (Exception, KeyboardInterrupt)):
        try:
            pickle.loads(pickle.dumps(error))
            return error
        except Exception:  # noqa: BLE001, S110 - described below instead
            pass
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:  # noqa: BLE001 - a broken __str__
        text = type(error).__name__
    return MprError(f"a worker failed: {text}")


def _start_worker(setup: _WorkerSetup, connection: Any, claimed: Any) -> None:
    """Worker start-up: killed with its parent (Linux), TensorFlow's thread pools sized to
    this worker's share of the cores, the op library and the tokenizer loaded once."""
    _die_with_parent()
    if os.getppid() != setup.parent:  # the parent died before the line above took effect
        os._exit(1)
    _leave_stopping_to_the_parent()
    import tensorflow as tf
    from pretrain_records.ops import library
    from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

    tf.config.threading.set_inter_op_parallelism_threads(setup.threads)
    tf.config.threading.set_intra_op_parallelism_threads(setup.threads)
    library.load()
    tokenizer = Tokenizer(setup.model, name="spm.model")
    tokenizer.threads = setup.threads
    _worker.update(
        setup=setup,
        tokenizer=tokenizer,
        out=OutputDir(setup.out),
        connection=connection,
        claimed=claimed,
        pending=[0, 0],
        sent=time.monotonic(),
    )


def _claim() -> int | None:
    """The next unit to build (the counter every worker shares); None when none is left."""
    claimed, order = _worker["claimed"], _worker["setup"].order
    with claimed.get_lock():
        index = claimed.value
        if index >= len(order):
            return None
        claimed.value = index + 1
    return order[index]


def _die_with_parent() -> None:
    """Asks Linux to kill this process when its parent dies (prctl PR_SET_PDEATHSIG), so no
    worker outlives a killed build; elsewhere the progress reports notice a lost parent."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def _leave_stopping_to_the_parent() -> None:
    """Ctrl-C and a timeout's SIGTERM reach the whole process group: a worker ignores them, so
    that the build reports the interrupt (130, 143), not a worker dead of it; the parent kills
    its workers as it stops, and Linux kills them if it dies."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def _build_in_worker(jobs: list[UnitJob]) -> list[UnitResult]:
    from pretrain_records.pipeline.running.unit_build import build_units

    def started(job: UnitJob) -> None:
        message = f"building {job.label} ({human_bytes(job.input_bytes)})"
        _worker["connection"].send(("log", message))

    results = build_units(
        jobs,
        _claim,
        _worker["tokenizer"],
        _worker["out"],
        _report,
        started,
        _worker["setup"].threads,
    )
    _flush_progress()
    return results


def _report(input_bytes: int, records: int) -> None:
    """Progress from a worker, sent a few times a second; a worker whose build is gone stops."""
    pending = _worker["pending"]
    pending[0] += input_bytes
    pending[1] += records
    if time.monotonic() - _worker["sent"] > 0.25:
        if os.getppid() != _worker["setup"].parent:
            raise SystemExit("the build that started this worker is gone")
        _flush_progress()


def _flush_progress() -> None:
    pending = _worker["pending"]
    if pending != [0, 0]:
        _worker["connection"].send(("advance", tuple(pending)))
        pending[:] = [0, 0]
    _worker["sent"] = time.monotonic()


# `--workers auto` starts a second worker process from this many bytes of input passes to build
# (input bytes x dupe passes), one more per further as many, up to the cores and one per
# WORKER_MEMORY_BYTES of available memory: each worker costs a TensorFlow start-up (~3 s of a
# core here) and its own memory, and one process already uses more than a core with tf.data's
# threads. Measured on 2 cores (bench/end_to_end.py, medians of 3), 2 workers against 1: 0.97x
# at 20 MB x 1 pass, 1.05x at 20 MB x 2, 1.04x at 20 MB x 5, 1.25x at 64 MB x 1, 1.13x at 64 MB
# x 5; a worker's peak resident memory was 0.6-0.85 GB.
AUTO_PASS_BYTES_PER_WORKER = 48 << 20
WORKER_MEMORY_BYTES = 1 << 30


def beam_workers(workers: int | None) -> int:
    """Beam's worker count for `--workers` (None, auto: this machine's cores)."""
    return workers or available_cores()


def executor_for(
    runner: str, workers: int | None, options: dict[str, str], jobs: list[UnitJob]
) -> Executor:
    """The executor of a build: Beam for a Beam runner, else worker processes when more than
    one worker has more than one unit to build, else this process. `workers` None is auto."""
    if runner != "local":
        from pretrain_records.pipeline.running.beam import Beam

        return Beam(runner, beam_workers(workers), options)
    if workers is None:
        work = sum(job.input_bytes * job.passes() for job in jobs)
        caps = [available_cores(), 1 + work // AUTO_PASS_BYTES_PER_WORKER]
        memory = available_memory()
        if memory is not None:
            caps.append(max(1, memory // WORKER_MEMORY_BYTES))
        workers = min(caps)
    if workers > 1 and len(jobs) > 1:
        return Processes(workers)
    return InProcess()
