"""The `make-pretrain-records` command: a Click group whose commands import TensorFlow lazily."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from pretrain_records.cli import version
from pretrain_records.pipeline import config as config_lib

# TensorFlow's start-up chatter (oneDNN notices, absl warnings) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN only changes float rounding, which no integer record depends on; off, it is also silent.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

EXIT_DATA, EXIT_USAGE, EXIT_LOCKED = 1, 2, 75


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"make-pretrain-records: error: {message}", err=True)
    sys.exit(code)


def _fail_after_pipeline(message: str, code: int) -> NoReturn:
    """`_fail` for an error out of pipeline code, ending the process without Python's
    finalization: a tf.data pipeline the error left behind may still have a Python generator
    call in flight, which can never take the GIL once finalization has begun, and tearing the
    pipeline down then waits for it forever (a rare hang after an error, seen under load).
    By now writers are aborted and temp files removed; the OS releases the lock."""
    click.echo(f"make-pretrain-records: error: {message}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One option per config key (`max_n` <-> `--max-n`); unset options leave YAML/defaults."""
    types = {bool: click.BOOL, int: click.INT, float: click.FLOAT}
    for key in reversed(list(config_lib.RULES)):
        default = config_lib.DEFAULTS[key]
        kind = types.get(type(default), click.STRING)
        help_text = f"{config_lib.RULES[key][1]} [config: {key}, default: {default}]"
        command = click.option(
            f"--{key.replace('_', '-')}", key, type=kind, default=None, help=help_text
        )(command)
    return command


def _resolve(config_file: str | None, values: dict[str, Any]) -> config_lib.BuildConfig:
    layers: list[dict[str, Any]] = []
    try:
        if config_file:
            layers.append(config_lib.load_yaml(config_file))
        layers.append({k: v for k, v in values.items() if v is not None})
        return config_lib.resolve(*layers)
    except config_lib.ConfigError as error:
        _fail(str(error), EXIT_USAGE)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version.VERSION, prog_name="make-pretrain-records")
def main() -> None:
    """Raw text corpora to sharded, TPU-ready BERT/ALBERT pretraining TFRecords."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, help="Output directory.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--force", is_flag=True, help="Rebuild even if the output has another config.")
@click.option("--dry-run", is_flag=True, help="Plan (files, units, shards), write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.option("-v", "--verbose", is_flag=True, help="More log lines.")
@click.option(
    "--runner",
    type=click.Choice(["local", "direct", "dataflow", "flink", "spark", "portable"]),
    default="local",
    show_default=True,
    help="Where to build: this process, or Apache Beam (needs the [beam] extra).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Units built in parallel: worker processes (local, direct) or Beam workers.",
)
@click.option(
    "--beam-option",
    "beam_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Passed to Beam's pipeline options (repeatable).",
)
@_config_options
def build(
    inputs: tuple[str, ...],
    out: str,
    config_file: str | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    runner: str,
    workers: int,
    beam_options: tuple[str, ...],
    **values: Any,
) -> None:
    """Build sharded TFRecords from INPUTS (files, globs, directories; local or gs://)."""
    config = _resolve(config_file, values)
    options = {}
    for item in beam_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--beam-option expects KEY=VALUE, got {item!r}", EXIT_USAGE)
        options[key.lstrip("-")] = value
    from pretrain_records.pipeline.build import Runner

    where = Runner(runner, workers, options)
    from pretrain_records.cli.report import Reporter

    reporter = Reporter(quiet=quiet, verbose=verbose)
    summary = _run_pipeline(
        lambda: _build(list(inputs), out, config, force, dry_run, where, reporter), reporter
    )
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    elif not quiet:
        reporter.log(
            f"done: {summary.get('records', 0)} records in {summary.get('shards')} shards "
            f"under {out}"
            if summary["status"] == "ok"
            else f"plan: {summary}"
        )


def _build(
    inputs: list[str],
    out: str,
    config: Any,
    force: bool,
    dry_run: bool,
    runner: Any,
    reporter: Any,
) -> Any:
    from pretrain_records.pipeline import build as build_lib

    with reporter.progress("records") as advance:
        return build_lib.run(
            inputs,
            out,
            config,
            force=force,
            runner=runner,
            dry_run=dry_run,
            log=reporter.log,
            on_record=advance,
        )


def _run_pipeline(run: Callable[[], Any], reporter: Any) -> Any:
    """Runs pipeline code, turning its errors into one-line messages and exit codes."""
    from pretrain_records.pipeline import instances, manifest, sources, state, tokenize

    try:
        return run()
    except state.LockedError as error:
        _fail_after_pipeline(str(error), EXIT_LOCKED)
    except ImportError as error:
        if type(error).__name__ != "BeamMissingError":
            raise
        _fail_after_pipeline(str(error), EXIT_USAGE)
    except (sources.SourceError, tokenize.TokenizerError, config_lib.ConfigError) as error:
        _fail_after_pipeline(str(error), EXIT_USAGE)
    except (sources.DataError, instances.InstanceError, manifest.ManifestError) as error:
        _fail_after_pipeline(str(error), EXIT_DATA)
    except OSError as error:
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        _fail_after_pipeline(f"{where}{error.strerror or error}", EXIT_DATA)
    except KeyboardInterrupt:
        _fail_after_pipeline("interrupted", 130)
    except Exception as error:
        if not type(error).__module__.startswith("tensorflow"):
            raise
        message = getattr(error, "message", str(error)).strip().splitlines()
        _fail_after_pipeline(message[0] if message else type(error).__name__, EXIT_DATA)


@main.command("train-tokenizer")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "prefix", required=True, help="Writes PREFIX.model, PREFIX.vocab.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--vocab-size", "vocab_size", type=int, default=None, help="Soft vocabulary size.")
@click.option("--input-format", "input_format", default=None, help="lines | jsonl | text")
@click.option("--jsonl-field", "jsonl_field", default=None, help="JSONL text field.")
@click.option("--language", default=None, help="Sentence-splitting language code.")
@click.option("--seed", type=int, default=None, help="Training seed.")
def train_tokenizer(
    inputs: tuple[str, ...], prefix: str, config_file: str | None, **values: Any
) -> None:
    """Train a SentencePiece model with [CLS]/[SEP]/[MASK] and pad id 0 on INPUTS."""
    config = _resolve(config_file, values)
    from pretrain_records.cli.report import Reporter

    def run() -> None:
        from pretrain_records.pipeline import sources, tokenize
        from pretrain_records.pipeline.records import train_tokenizer_on

        paths = sources.expand_inputs(list(inputs))
        proto, vocab = train_tokenizer_on(paths, config, sources.ReadStats())
        tokenize.write_model(proto, vocab, prefix)

    _run_pipeline(run, Reporter())
    click.echo(f"wrote {prefix}.model and {prefix}.vocab", err=True)


@main.command()
@click.argument("path")
@click.option(
    "-n", "count", type=click.IntRange(0), default=3, show_default=True, help="Examples to show."
)
@click.option("--stats", "with_stats", is_flag=True, help="Statistics over every record.")
def inspect(path: str, count: int, with_stats: bool) -> None:
    """Show decoded examples (masks visible) and statistics of an output directory or shard."""
    from pretrain_records.cli.report import Reporter

    def run() -> None:
        from pretrain_records.pipeline import inspection

        for text in inspection.show_examples(path, count):
            click.echo(text)
        if with_stats:
            click.echo(inspection.format_stats(inspection.collect_stats(path)))

    _run_pipeline(run, Reporter())


@main.command()
@click.argument("out")
def verify(out: str) -> None:
    """Check every shard of OUT against its manifest (records, bytes, sha256); exit 0 or 1."""
    from pretrain_records.cli.report import Reporter

    def run() -> list[str]:
        from pretrain_records.pipeline import inspection

        return inspection.verify(out)

    problems = _run_pipeline(run, Reporter())
    for problem in problems:
        click.echo(f"make-pretrain-records: verify: {problem}", err=True)
    if problems:
        sys.exit(EXIT_DATA)
    click.echo(f"{out}: every shard matches the manifest")
