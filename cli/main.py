"""The `make-pretrain-records` command: a Click group whose commands import TensorFlow lazily.

Commands parse and resolve options, call the pipeline and report; errors of the pipeline's
hierarchy (`pipeline.errors`) become one line on stderr and their exit code, here and only here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from pretrain_records.cli import stop_signals
from pretrain_records.pipeline import config as config_lib
from pretrain_records.pipeline import testhooks
from pretrain_records.pipeline.errors import MprError
from pretrain_records.pipeline.version import VERSION

# TensorFlow's start-up chatter (oneDNN notices, absl warnings) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN only changes float rounding, which no integer record depends on; off, it is also silent.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"make-pretrain-records: error: {message}", err=True)
    sys.exit(code)


def _interrupted(interrupt: KeyboardInterrupt) -> NoReturn:
    terminated = isinstance(interrupt, stop_signals.Terminated)
    _fail(
        "terminated (SIGTERM)" if terminated else "interrupted", stop_signals.exit_code(interrupt)
    )


@contextmanager
def _reported_errors(verbose: bool = False) -> Iterator[None]:
    """The pipeline's errors as one line and their exit code; an unexpected exception too
    (with its traceback under -v)."""
    try:
        yield
    except MprError as error:
        _fail(str(error), error.exit_code)
    except OSError as error:
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        _fail(f"{where}{error.strerror or error}", 1)
    except KeyboardInterrupt as interrupt:
        _interrupted(interrupt)
    except click.ClickException:
        raise
    except Exception as error:
        if verbose:
            import traceback

            traceback.print_exc()
        message = str(getattr(error, "message", error)).strip().splitlines()
        _fail(f"unexpected {type(error).__name__}: {message[0] if message else ''}", 1)


def _quiet_libraries(quiet: bool) -> None:
    """Python loggers of TensorFlow, absl and Beam: warnings, or only errors under -q."""
    level = logging.ERROR if quiet else logging.WARNING
    for name in ("", "tensorflow", "absl", "apache_beam"):
        logging.getLogger(name).setLevel(level)
    if quiet:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


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
    with _reported_errors():
        if config_file:
            layers.append(config_lib.load_yaml(config_file))
        layers.append({k: v for k, v in values.items() if v is not None})
        return config_lib.resolve(*layers)


class _Workers(click.ParamType):
    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value in ("auto", None):
            return None
        try:
            count = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number or auto", param, ctx)
        if count < 1:
            self.fail(f"{count} is not >= 1", param, ctx)
        return count


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, prog_name="make-pretrain-records")
def main() -> None:
    """Raw text corpora to sharded, TPU-ready BERT/ALBERT pretraining TFRecords."""


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "out", required=True, help="Output directory (local or gs://).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("--force", is_flag=True, help="Rebuild from scratch, even with another config.")
@click.option("--dry-run", is_flag=True, help="Plan (files, units), write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Errors only.")
@click.option("-v", "--verbose", is_flag=True, help="More log lines; tracebacks of bugs.")
@click.option(
    "--runner",
    type=click.Choice(["local", "direct", "dataflow", "flink", "spark", "portable"]),
    default="local",
    show_default=True,
    help="Where to build units: this machine, or Apache Beam (needs the [beam] extra).",
)
@click.option(
    "--workers",
    type=_Workers(),
    default="auto",
    show_default=True,
    help="Units built in parallel: worker processes (local, direct) or Beam workers; auto: up "
    "to this machine's cores (CPU affinity and cgroup quota respected) and one per GiB of "
    "available memory, one more per 48 MiB of input x dupe passes to build (smaller builds run "
    "in this process).",
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
    workers: int | None,
    beam_options: tuple[str, ...],
    **values: Any,
) -> None:
    """Build sharded TFRecords from INPUTS (files, globs, directories; local or gs://)."""
    config = _resolve(config_file, values)
    options = []
    for item in beam_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--beam-option expects KEY=VALUE, got {item[:80]!r}", 2)
        options.append((key.lstrip("-"), value))
    _quiet_libraries(quiet)
    from pretrain_records.cli.progress import Reporter
    from pretrain_records.pipeline.build import BuildRequest, run

    request = BuildRequest(
        inputs=inputs,
        out=out,
        config=config,
        config_file=config_file,
        force=force,
        dry_run=dry_run,
        runner=runner,
        workers=workers,
        beam_options=tuple(options),
    )
    reporter = Reporter(quiet=quiet, verbose=verbose)
    try:
        with _reported_errors(verbose):
            summary = run(request, reporter)
    finally:
        reporter.close()
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    elif summary["status"] == "dry-run":
        click.echo(json.dumps(summary, indent=1, sort_keys=True))
    else:
        reporter.log(
            f"{summary['status']}: {summary['records']} records in {summary['shards']} shards "
            f"under {out} ({summary['units']['rebuilt']} of {summary['units']['total']} units "
            "built)"
        )


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
    with _reported_errors():
        from pretrain_records.pipeline import training

        training.train_tokenizer_files(list(inputs), config, prefix)
    click.echo(f"wrote {prefix}.model and {prefix}.vocab", err=True)


@main.command()
@click.argument("path")
@click.option(
    "-n", "count", type=click.IntRange(0), default=3, show_default=True, help="Examples to show."
)
@click.option("--stats", "with_stats", is_flag=True, help="Statistics over every record.")
@click.option(
    "--sample",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="--stats: records sampled per shard for the mixing section.",
)
def inspect(path: str, count: int, with_stats: bool, sample: int) -> None:
    """Show decoded examples (masks visible) and statistics of an output directory or shard."""
    with _reported_errors():
        from pretrain_records.pipeline import inspection

        for text in inspection.show_examples(path, count):
            click.echo(text)
        if with_stats:
            click.echo(inspection.format_stats(inspection.collect_stats(path, sample)))


@main.command()
@click.argument("out")
def verify(out: str) -> None:
    """Check every file of OUT against its manifest (records, bytes, sha256); exit 0 or 1."""
    with _reported_errors():
        from pretrain_records.pipeline import inspection

        problems = inspection.verify(out)
    for problem in problems:
        click.echo(f"make-pretrain-records: verify: {problem}", err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{out}: every file matches the manifest")


def entry() -> None:
    """The console script: the command, stoppable by SIGTERM as by Ctrl-C (`stop_signals`); an
    interrupt outside a command's own error handling (its imports, its summary) still gets its
    exit code, not click's "Aborted!" and 1."""
    stop_signals.install(testhooks.stop_grace())
    try:
        code = main.main(standalone_mode=False)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Abort as abort:
        cause = abort.__cause__ or abort.__context__
        if isinstance(cause, KeyboardInterrupt):
            _interrupted(cause)
        click.echo("Aborted!", err=True)  # as click's standalone mode (an EOFError)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        _interrupted(interrupt)
    sys.exit(code if isinstance(code, int) else 0)
