"""Building work units on Apache Beam (an optional extra: `make-pretrain-records[beam]`).

The driver plans the units, reuses complete ones and publishes; Beam only builds the missing
units, each with exactly the code of the local runner, so the bytes are the same on any runner
and any number of workers. A unit's shards are staged (temp file + rename) in OUT/.mpr/units on
a filesystem the driver and the workers share.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

RUNNERS = ("direct", "dataflow", "flink", "spark", "portable")
_BEAM_RUNNER = {
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
    "portable": "PortableRunner",
}
ATTEMPTS = 3


class BeamMissingError(ImportError):
    """Apache Beam is not installed (a usage error: the message names the extra)."""


def _import_beam() -> Any:
    try:
        import apache_beam
    except ImportError as error:
        raise BeamMissingError(
            "--runner other than local needs Apache Beam: pip install 'make-pretrain-records[beam]'"
        ) from error
    return apache_beam


def pipeline_options(runner: str, workers: int, extra: dict[str, str]) -> tuple[Any, Any]:
    """(runner object or name, PipelineOptions) for `runner`; local runs use FnApiRunner
    (Beam's default DirectRunner wants to download a binary, which fails offline)."""
    _import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = [f"--{key}={value}" for key, value in sorted(extra.items())]
    if runner == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        mode = "multi_processing" if workers > 1 else "in_memory"
        options = PipelineOptions(flags, direct_num_workers=workers, direct_running_mode=mode)
        return FnApiRunner(), options
    options = PipelineOptions(flags, num_workers=workers)
    return _BEAM_RUNNER[runner], options


class _BuildUnit:
    """DoFn body: loads the op and the tokenizer once per worker, builds one unit per element."""

    def __init__(self, out: str, config: Any, model: bytes, units: dict[str, Any]) -> None:
        self.out, self.config, self.model, self.units = out, config, model, units
        self.tokenizer = None

    def setup(self) -> None:
        from pretrain_records.ops import masking
        from pretrain_records.pipeline.tokenize import Tokenizer

        try:
            masking.load_library()
        except ImportError:
            # A remote worker gets the C++ sources in the package: build against its TF.
            from pretrain_records.ops import build as op_build

            op_build.build()
            masking.load_library()
        self.tokenizer = Tokenizer(self.model, name="spm.model")

    def process(self, fingerprint: str) -> Any:
        from pretrain_records.pipeline.records import build_unit

        marker = os.environ.get("MPR_FAULT_WORKER_ONCE")
        if marker and not os.path.exists(marker):
            # Fault injection for tests: this worker fails once, mid-unit.
            with open(marker, "w") as stream:
                stream.write(fingerprint)
            raise RuntimeError(f"injected worker fault in unit {fingerprint}")
        unit = self.units[fingerprint]
        build_unit(unit, fingerprint, self.config, self.tokenizer, self.out, None)
        yield fingerprint


def _pipeline(beam: Any, runner: Any, options: Any, fingerprints: list[str], body: Any) -> Any:
    class BuildUnitFn(beam.DoFn):
        def setup(self) -> None:
            body.setup()

        def process(self, fingerprint: str) -> Any:
            yield from body.process(fingerprint)

    try:
        pipeline = beam.Pipeline(runner=runner, options=options)
    except ValueError as error:  # Beam's validation of the pipeline options
        from pretrain_records.pipeline.config import ConfigError

        problems = " ".join(line.strip() for line in str(error).splitlines()[1:] if line.strip())
        raise ConfigError(f"--beam-option: {problems or error}") from None
    _ = (
        pipeline
        | "Units" >> beam.Create(fingerprints)
        | "Spread" >> beam.Reshuffle()
        | "Build" >> beam.ParDo(BuildUnitFn())
    )
    return pipeline


def describe(
    pending: dict[str, Any],
    out: str,
    config: Any,
    runner: str,
    workers: int,
    options: dict[str, str],
) -> dict[str, Any]:
    """Dry run: the job graph for `runner`, built and serialized offline, never submitted."""
    beam = _import_beam()
    beam_runner, beam_options = pipeline_options(runner, workers, options)
    body = _BuildUnit(out, config, b"", pending)
    pipeline = _pipeline(beam, beam_runner, beam_options, sorted(pending), body)
    proto = pipeline.to_runner_api()
    names = sorted(
        t.unique_name for t in proto.components.transforms.values() if "/" not in t.unique_name
    )
    return {"runner": runner, "transforms": names, "graph_bytes": proto.ByteSize()}


def build_units(
    pending: dict[str, Any],
    out: str,
    config: Any,
    model: bytes,
    runner: str,
    workers: int,
    options: dict[str, str],
    done: Callable[[str], bool],
    log: Callable[[str], None],
) -> None:
    """Builds the `pending` units (fingerprint -> Unit) on Beam. The local FnApiRunner does not
    retry a failed bundle (Dataflow, Flink and Spark do), so the driver resubmits the units
    still missing: units are idempotent, a retry yields the same bytes."""
    beam = _import_beam()
    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    body = _BuildUnit(out, config, model, pending)
    remaining = sorted(pending)
    for attempt in range(1, ATTEMPTS + 1):
        beam_runner, beam_options = pipeline_options(runner, workers, options)
        try:
            _pipeline(beam, beam_runner, beam_options, remaining, body).run().wait_until_finish()
            return
        except Exception as error:  # a worker failure surfaces here, whatever its type
            remaining = [fp for fp in remaining if not done(fp)]
            if attempt == ATTEMPTS or not remaining:
                if not remaining:
                    return
                raise
            first_line = str(error).strip().splitlines()[-1][:200] if str(error) else error
            log(f"beam attempt {attempt} failed ({first_line}); retrying {len(remaining)} units")
