"""Building work units on Apache Beam (an optional extra: `make-pretrain-records[beam]`).

The same units as the local executors are the Beam work items, each built by exactly the
local code (`unit_build.build_units`), so the bytes are the same on any runner and any number of
workers. Units write their kept records under OUT/.mpr/units, which the driver and the workers
must share (gs://, or a shared mount); the driver then merges and publishes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.errors import MprError, UsageError, error_classes
from pretrain_records.pipeline.ground.events import Events
from pretrain_records.pipeline.ground.machine import core_share
from pretrain_records.pipeline.outdir.outdir import OutputDir
from pretrain_records.pipeline.records.unit_job import UnitJob, UnitResult, largest_first

RUNNERS = ("direct", "dataflow", "flink", "spark", "portable")
_BEAM_RUNNER = {
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "portable": "PortableRunner",
}
ATTEMPTS = 3


def _import_beam() -> Any:
    try:
        import apache_beam
    except ImportError:
        raise UsageError(
            "--runner other than local needs Apache Beam: pip install 'make-pretrain-records[beam]'"
        ) from None
    return apache_beam


def _quiet() -> bool:
    """-q: Beam's logger is set to errors only."""
    return logging.getLogger("apache_beam").getEffectiveLevel() >= logging.ERROR


@contextlib.contextmanager
def _stderr_held(silence: bool) -> Iterator[None]:
    """Beam's worker processes log to the stderr they inherit, whatever their log level
    (start-up chatter, a failed bundle's traceback twice over): their output goes to a temp
    file, given back on stderr only when the run fails with an error that is not the tool's
    own (which the build reports in one line); under -q it is always dropped."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except Exception as error:
            if not silence and our_error(error) is None:
                sys.stderr.flush()
                sink.seek(0)
                os.write(saved, sink.read()[-(64 << 10) :])
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


# How the tool's own errors come out of Beam: raised as they are (with " [while running
# 'Build']" appended), or as a RuntimeError whose text holds the worker's traceback.
_OURS = re.compile(r"\b(\w+Error): (.+?)(?: \[while running '[^']*'\])*\s*$", re.MULTILINE)


def our_error(error: BaseException) -> MprError | None:
    """The tool's error (a DataError naming the file and line) that a unit raised inside
    Beam, rebuilt from what Beam raised with it; None when `error` carries none."""
    texts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MprError):
            texts.append(f"{type(current).__name__}: {current}")
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    classes = error_classes()
    for text in texts:
        found = [m for m in _OURS.finditer(text) if m.group(1) in classes]
        if found:
            name, message = found[-1].group(1), found[-1].group(2).strip()
            return classes[name](message)
    return None


@contextlib.contextmanager
def _beam_errors_unlogged() -> Iterator[None]:
    """Beam logs a failed bundle's traceback (dozens of lines) before raising it; the build
    reports the error itself, in one line, so those logs are held back meanwhile."""
    logger = logging.getLogger("apache_beam")
    level = logger.level
    logger.setLevel(max(logging.CRITICAL, level))
    try:
        yield
    finally:
        logger.setLevel(level)


def pipeline_options(runner: str, workers: int, extra: dict[str, str]) -> tuple[Any, Any]:
    """(runner object or name, PipelineOptions) for `runner`; `direct` uses FnApiRunner
    (Beam's default DirectRunner wants to download a binary, which fails offline)."""
    _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [f"--{key}={value}" for key, value in sorted(extra.items())]
    level = logging.getLevelName(logging.getLogger("apache_beam").getEffectiveLevel())
    flags.append(f"--default_sdk_harness_log_level={level}")
    if runner == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        mode = "multi_processing" if workers > 1 else "in_memory"
        options = PipelineOptions(flags, direct_num_workers=workers, direct_running_mode=mode)
        return FnApiRunner(), options
    options = PipelineOptions(flags, num_workers=workers)
    return _BEAM_RUNNER[runner], options


class _BuildUnit:
    """DoFn body: loads the op and the tokenizer once per worker; builds a bundle's units
    (Beam's elements) together, through one pipeline."""

    def __init__(
        self, out: str, model: bytes, jobs: dict[str, UnitJob], threads: int | None = None
    ) -> None:
        """`threads`: tf.data's threads in each worker process (None: the worker's cores)."""
        self.out, self.model, self.jobs, self.threads = out, model, jobs, threads
        self.tokenizer: Any = None
        self.bundle: list[str] = []

    def setup(self) -> None:
        from pretrain_records.ops import library
        from pretrain_records.pipeline.tokenizer.tokenize import Tokenizer

        try:
            library.load()
        except ImportError:
            # A remote worker gets the C++ sources in the package: build against its TF.
            from pretrain_records.ops import compile_library

            compile_library.compile_library()
            library.load()
        self.tokenizer = Tokenizer(self.model, name="spm.model")

    def start_bundle(self) -> None:
        self.bundle = []

    def process(self, fingerprint: str) -> Any:
        """Collects the bundle's units (built together in finish_bundle, one pipeline)."""
        marker = testhooks.fail_worker_once()
        if marker and not os.path.exists(marker):
            with open(marker, "w") as stream:
                stream.write(fingerprint)
            raise RuntimeError(f"injected worker fault in unit {fingerprint}")
        self.bundle.append(fingerprint)
        return iter(())

    def finish_bundle(self) -> None:
        """Builds the bundle's units through one pipeline (its functions instantiated once)."""
        from pretrain_records.pipeline.running.unit_build import build_units

        out = OutputDir(self.out)
        todo = [fp for fp in self.bundle if out.kept_unit(fp) is None]  # a retried bundle
        jobs = [self.jobs[fingerprint] for fingerprint in todo]
        claims = iter(largest_first(jobs))
        if jobs:
            build_units(jobs, lambda: next(claims, None), self.tokenizer, out, threads=self.threads)
        self.bundle = []


def _pipeline(beam: Any, runner: Any, options: Any, fingerprints: list[str], body: Any) -> Any:
    class BuildUnitFn(beam.DoFn):
        def setup(self) -> None:
            body.setup()

        def start_bundle(self) -> None:
            body.start_bundle()

        def process(self, fingerprint: str) -> Any:
            yield from body.process(fingerprint)

        def finish_bundle(self) -> None:
            body.finish_bundle()

    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
    except ValueError as error:  # Beam's validation of the pipeline options
        problems = " ".join(line.strip() for line in str(error).splitlines()[1:] if line.strip())
        raise UsageError(f"--beam-option: {problems or error}") from None
    _ = (
        pipeline
        | "Units" >> beam.Create(fingerprints)
        | "Spread" >> beam.Reshuffle()
        | "Build" >> beam.ParDo(BuildUnitFn())
    )
    return pipeline


def describe(
    runner: str, workers: int, options: dict[str, str], out: OutputDir, units: int
) -> dict[str, Any]:
    """Dry run: the job graph for `runner`, built and serialized offline, never submitted."""
    beam = _import_beam()
    beam_runner, beam_options = pipeline_options(runner, workers, options)
    fingerprints = [f"{i:032x}" for i in range(units)]
    pipeline = _pipeline(
        beam, beam_runner, beam_options, fingerprints, _BuildUnit(out.path, b"", {})
    )
    proto = pipeline.to_runner_api()
    names = sorted(
        t.unique_name for t in proto.components.transforms.values() if "/" not in t.unique_name
    )
    return {
        "runner": runner,
        "transforms": names,
        "graph_bytes": proto.ByteSize(),
        "kept_records": out.private("units"),
    }


@dataclasses.dataclass(frozen=True)
class Beam:
    """The executor that builds missing units on a Beam runner."""

    runner: str
    workers: int
    options: dict[str, str]

    def build(
        self, jobs: list[UnitJob], model: bytes, out: OutputDir, events: Events
    ) -> list[UnitResult]:
        """Runs the units as Beam elements. The local FnApiRunner does not retry a failed
        bundle (Dataflow, Flink and Spark do), so the driver resubmits the units still missing:
        units are idempotent, a retry yields the same bytes."""
        beam = _import_beam()
        # The local runner's worker processes share this machine's cores; elsewhere each
        # worker process uses its own machine's.
        share = core_share(self.workers) if self.runner == "direct" else None
        body = _BuildUnit(out.path, model, {job.fingerprint: job for job in jobs}, share)
        remaining = sorted(body.jobs)
        events.log(f"building {len(jobs)} units on Beam ({self.runner}, {self.workers} workers)")
        for attempt in range(1, ATTEMPTS + 1):
            beam_runner, beam_options = pipeline_options(self.runner, self.workers, self.options)
            try:
                job = _pipeline(beam, beam_runner, beam_options, remaining, body)
                with _stderr_held(_quiet()), _beam_errors_unlogged():
                    job.run().wait_until_finish()
                break
            except Exception as error:  # a worker failure surfaces here, whatever its type
                ours = our_error(error)
                if ours is not None:  # bad input fails again on a retry: reported at once
                    raise ours from None
                remaining = [fp for fp in remaining if out.kept_unit(fp) is None]
                if not remaining:
                    break
                if attempt == ATTEMPTS:
                    raise
                last = str(error).strip().splitlines()[-1][:200] if str(error).strip() else error
                events.log(
                    f"beam attempt {attempt} failed ({last}); retrying {len(remaining)} units"
                )
        results = []
        for job in jobs:
            record = out.kept_unit(job.fingerprint)
            if record is None:
                raise RuntimeError(f"Beam finished without unit {job.label}")
            result = UnitResult.from_json(record)
            events.advance(job.input_bytes * job.passes(), result.records)
            results.append(result)
        return results
