"""The `make-pretrain-records` command: a Click group whose commands import TensorFlow lazily.

Commands parse and resolve options, call the pipeline and report; errors of the pipeline's
hierarchy (`pipeline.errors`) become one line on stderr and their exit code, here and only here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from pretrain_records.cli import stop_signals
from pretrain_records.pipeline import config as config_lib
from pretrain_records.pipeline.ground import testhooks
from pretrain_records.pipeline.ground.errors import MprError
from pretrain_records.pipeline.ground.version import VERSION

# TensorFlow's start-up chatter (oneDNN notices, absl warnings) is noise for a CLI user.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN only changes float rounding, which no integer record depends on; off, it is also silent.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


_JSON_ERRORS = "pretrain_records.json_errors"  # click context meta: --json was given
# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators: a file name may
# hold any of them, and printed raw they would break the one line an error is.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_AT_LINE = re.compile(r"(.+):(\d+)", re.DOTALL)
_JSON_REPORTED = threading.Event()  # a failure was reported as JSON: never a second one


def one_line(message: str) -> str:
    """`message` with control characters shown escaped (`\\n`, `\\x1b`): always one line."""
    return _CONTROL.sub(lambda m: _ESCAPES.get(m[0]) or _escape(ord(m[0])), message)


def _escape(code: int) -> str:
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def error_location(message: str) -> tuple[str | None, int | None]:
    """(file, line) that a message starting `PATH:LINE: ` or `PATH: ` names, PATH an existing
    local path (the longest such prefix); (None, None) when it names none."""
    found: tuple[str | None, int | None] = (None, None)
    at = message.find(": ")
    while at > 0:
        head = message[:at]
        numbered = _AT_LINE.fullmatch(head)
        if numbered and os.path.lexists(numbered[1]):
            found = numbered[1], int(numbered[2])
        elif os.path.lexists(head):
            found = head, None
        at = message.find(": ", at + 1)
    return found


def _json_errors() -> bool:
    """Whether the running command was given --json (its failures then print JSON too)."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.meta.get(_JSON_ERRORS))


def _fail(
    message: str,
    code: int,
    *,
    path: str | None = None,
    line: int | None = None,
    as_json: bool | None = None,
) -> NoReturn:
    """Ends the command: one error line on stderr, exit `code`; under --json also one object
    {"status": "error", "exit_code", "message", "file", "line"} on stdout (file and line null
    when unknown; from `path` / `line`, else from the message's `PATH:LINE: ` start)."""
    click.echo(f"make-pretrain-records: error: {one_line(message)}", err=True)
    if _json_errors() if as_json is None else as_json:
        _echo_json_error(message, code, path, line)
    sys.exit(code)


def _json_error(message: str, code: int, path: str | None, line: int | None) -> str | None:
    """A failure as one JSON object, for `--json >> log.jsonl` consumers; None once one was
    made: a run stopped by a signal may end twice (its own error, then the stop watcher)."""
    if _JSON_REPORTED.is_set():
        return None
    _JSON_REPORTED.set()
    if path is None:
        path, line = error_location(message)
    report = {"status": "error", "exit_code": code, "message": message}
    return json.dumps({**report, "file": path, "line": line}, sort_keys=True)


def _echo_json_error(message: str, code: int, path: str | None, line: int | None) -> None:
    report = _json_error(message, code, path, line)
    if report is not None:
        click.echo(report)


def _json_hard_stop(message: str, code: int) -> None:
    """The stop watcher's report under --json: written past Python's stdout buffer, which the
    stuck main thread may hold."""
    report = _json_error(message, code, None, None)
    if report is not None:
        os.write(1, f"{report}\n".encode())


def _interrupted(interrupt: KeyboardInterrupt, as_json: bool | None = None) -> NoReturn:
    terminated = isinstance(interrupt, stop_signals.Terminated)
    message = "terminated (SIGTERM)" if terminated else "interrupted"
    _fail(message, stop_signals.exit_code(interrupt), as_json=as_json)


@contextmanager
def _reported_errors(verbose: bool = False) -> Iterator[None]:
    """The pipeline's errors as one line and their exit code; an unexpected exception too
    (with its traceback under -v)."""
    try:
        yield
    except MprError as error:
        _fail(str(error), error.exit_code, path=error.path, line=error.line)
    except OSError as error:
        name = getattr(error, "filename", None)
        where = f"{name}: " if name else ""
        path = os.fsdecode(name) if isinstance(name, (str, bytes)) and name else None
        _fail(f"{where}{error.strerror or error}", 1, path=path)
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
        default = config_lib.DEFAULTS.get(config_lib.ALIASES.get(key, key))
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
    click.get_current_context().meta[_JSON_ERRORS] = as_json
    _JSON_REPORTED.clear()  # a new run (several may run in one process, as tests do)
    config = _resolve(config_file, values)
    options = []
    for item in beam_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--beam-option expects KEY=VALUE, got {item[:80]!r}", 2)
        options.append((key.lstrip("-"), value))
    _quiet_libraries(quiet)
    from pretrain_records.cli.progress import Reporter
    from pretrain_records.pipeline.running.build import BuildRequest, run

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
@click.option(
    "--input-format",
    "input_format",
    default=None,
    help="lines | jsonl | text | parquet | wikipedia",
)
@click.option("--text-field", "text_field", default=None, help="JSONL field / parquet column.")
@click.option("--jsonl-field", "jsonl_field", default=None, help="Old name of --text-field.")
@click.option("--filters", default=None, help="Row conditions, e.g. 'language == en; x >= 3'.")
@click.option("--language", default=None, help="Sentence-splitting language code.")
@click.option("--seed", type=int, default=None, help="Training seed.")
def train_tokenizer(
    inputs: tuple[str, ...], prefix: str, config_file: str | None, **values: Any
) -> None:
    """Train a SentencePiece model with [CLS]/[SEP]/[MASK] and pad id 0 on INPUTS."""
    config = _resolve(config_file, values)
    with _reported_errors():
        from pretrain_records.pipeline.tokenizer import training

        training.check_prefix(prefix, config.language)  # before reading any input
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
        from pretrain_records.pipeline.readback import inspection, stats

        for text in inspection.show_examples(path, count):
            click.echo(text)
        if with_stats:
            click.echo(stats.format_stats(stats.collect_stats(path, sample)))


@main.command()
@click.argument("out")
@click.option(
    "--quick",
    is_flag=True,
    help="Skip the records' CRCs: sizes, sha256 and record counts (from the frames) only.",
)
def verify(out: str, quick: bool) -> None:
    """Check every file of OUT against its manifest (bytes, sha256, record counts) and every
    record's CRCs; exit 0 or 1."""
    with _reported_errors():
        from pretrain_records.pipeline.readback.verification import verify as verify_build

        problems = verify_build(out, quick=quick)
    for problem in problems:
        click.echo(f"make-pretrain-records: verify: {one_line(problem)}", err=True)
    if problems:
        sys.exit(1)
    checked = "(record CRCs not checked)" if quick else "and every record's CRCs"
    click.echo(f"{out}: every file matches the manifest {checked}")


@main.command()
@click.argument("out")
@click.option("--files", is_flag=True, help="List every shard instead of their glob.")
def current(out: str, files: bool) -> None:
    """Print the current build's shards of OUT: the glob (or the files) a trainer's
    input_path takes. Each build lies in a folder of its own, kept while the retention keeps
    it, so a job reading this glob keeps its build when a refresh publishes the next."""
    with _reported_errors():
        from pretrain_records.pipeline.records import manifest as manifest_lib
        from pretrain_records.pipeline.running.build import input_path

        manifest = manifest_lib.read(out)
        if files:
            for shard in manifest["shards"]:
                click.echo(manifest_lib.safe_member(out, shard["name"]))
        else:
            click.echo(input_path(out, manifest))


def entry() -> None:
    """The console script: the command, stoppable by SIGTERM as by Ctrl-C (`stop_signals`); an
    interrupt outside a command's own error handling (its imports, its summary) still gets its
    exit code, not click's "Aborted!" and 1."""
    # Failures outside a command's own handling (click's usage errors, an interrupt while it
    # imports, a hard stop) know no context: --json is read from the arguments.
    as_json = asks_json(sys.argv[1:])
    stop_signals.install(testhooks.stop_grace(), _json_hard_stop if as_json else None)
    try:
        code = main.main(standalone_mode=False)
    except click.ClickException as error:
        error.show()
        if as_json:
            _echo_json_error(error.format_message(), error.exit_code, None, None)
        sys.exit(error.exit_code)
    except click.exceptions.Abort as abort:
        cause = abort.__cause__ or abort.__context__
        if isinstance(cause, KeyboardInterrupt):
            _interrupted(cause, as_json)
        click.echo("Aborted!", err=True)  # as click's standalone mode (an EOFError)
        if as_json:
            _echo_json_error("aborted", 1, None, None)
        sys.exit(1)
    except KeyboardInterrupt as interrupt:
        _interrupted(interrupt, as_json)
    except Exception as error:  # a bug outside a command's error handling: its traceback stays
        if as_json:
            _echo_json_error(f"unexpected {type(error).__name__}: {error}", 1, None, None)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def asks_json(argv: list[str]) -> bool:
    """Whether a command line runs `build` with --json (options before a `--` only)."""
    words = argv[: argv.index("--")] if "--" in argv else argv
    commands = [w for w in words if not w.startswith("-")]
    return bool(commands) and commands[0] == "build" and "--json" in words
