"""Shared pytest set-up: quiet TensorFlow, the CLI in process and as a subprocess, real corpora,
tiny models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO / "tests" / "data"  # in the repository: see its README.md for sources, licences
CLI = Path(sys.executable).with_name("make-pretrain-records")


def run_cli(
    *args: object, check: int | None = 0, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs the installed command (extra `env` on top of ours); asserts the exit code."""
    result = subprocess.run(
        [str(CLI), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check is not None:
        assert result.returncode == check, (
            f"make-pretrain-records {' '.join(map(str, args))} -> {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def invoke(*args: object, check: int | None = 0) -> Any:
    """Runs the CLI in this process (click's CliRunner); asserts the exit code. Builds run on
    one worker (this process) unless `--workers` is given."""
    from click.testing import CliRunner
    from pretrain_records.cli.main import main

    argv = [str(a) for a in args]
    if argv and argv[0] == "build" and "--workers" not in argv:
        argv += ["--workers", "1"]
    result = CliRunner().invoke(main, argv)
    if check is not None:
        detail = ""
        if result.exc_info is not None and not isinstance(result.exception, SystemExit):
            detail = "".join(traceback.format_exception(*result.exc_info))
        assert result.exit_code == check, (
            f"make-pretrain-records {' '.join(argv)} -> {result.exit_code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n{detail}"
        )
    return result


def start_paused(
    point: str, *args: object, hooks: str = "", own_group: bool = False
) -> subprocess.Popen:
    """Starts a build that stops at a test hook's pause point (other `hooks` settings beside;
    in a process group of its own with `own_group`); returns once it is there."""
    env = dict(os.environ, MPR_TEST_HOOKS=";".join(filter(None, [f"pause={point}", hooks])))
    process = subprocess.Popen(
        [str(CLI), *map(str, args)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=own_group,
    )
    lines = []
    deadline = threading.Timer(300, process.kill)  # a run that hangs before its point
    deadline.start()
    try:
        for line in process.stderr:
            lines.append(line)
            if line.startswith("MPR-PAUSED"):
                return process
    finally:
        deadline.cancel()
    process.wait()
    raise AssertionError(f"the run ended before {point}:\n{''.join(lines)}")


def worker_pids(pid: int) -> set[int]:
    """The live worker processes of build `pid` (multiprocessing's resource tracker aside)."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            found.update(int(child) for child in listing.read().split())
    return {child for child in found if is_alive(child) and _is_worker(child)}


def _is_worker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"spawn_main" in cmdline.read()
    except FileNotFoundError:
        return False


def is_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def one_error_line(stderr: str) -> str:
    """The single error line of a failed run (log lines aside); no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, stderr
    return errors[0]


def current_build(out: Path) -> Path:
    """The folder of the build `out/manifest.json` names (each build has its own)."""
    import json

    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return Path(out) / manifest.get("build_dir", "")


def shard_paths(out: Path) -> list[Path]:
    """The published shards of `out`, in manifest order."""
    import json

    manifest = json.loads((Path(out) / "manifest.json").read_text())
    return [Path(out) / s["name"] for s in manifest["shards"]]


def shard_hashes(out: Path) -> dict[str, str]:
    """Each published shard's file name (without its build folder) -> sha256: two outputs of
    the same build compare equal whatever their build numbers."""
    if not (Path(out) / "manifest.json").exists():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in shard_paths(out)}


def corpus(relative: str) -> Path:
    """A corpus of tests/data, by its path there (`en/botchan.txt`)."""
    path = CORPORA / relative
    assert path.exists(), f"missing test corpus {path}"
    return path


@pytest.fixture(scope="session")
def english_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SentencePiece model (with [CLS]/[SEP]/[MASK], pad 0) trained on botchan."""
    prefix = tmp_path_factory.mktemp("spm") / "en"
    invoke(
        "train-tokenizer",
        corpus("en/botchan.txt"),
        "-o",
        prefix,
        "--input-format",
        "text",
        "--vocab-size",
        2000,
    )
    return Path(f"{prefix}.model")


def summary_of(result: Any) -> dict:
    """The `--json` summary a CLI run printed."""
    import json

    return json.loads(result.stdout)


@pytest.fixture()
def model_args(english_model: Path) -> list:
    """Options of a quick build with the English test model."""
    return ["--spm-model", english_model, "--dupe-factor", 1, "--max-seq-length", 64]


ARGS = [
    "--vocab-size",
    1500,
    "--language",
    "ko",
    "--max-seq-length",
    64,
    "--max-predictions-per-seq",
    10,
    "--dupe-factor",
    2,
    "--sentence-task",
    "nsp",
]


@pytest.fixture()
def three_files(tmp_path: Path) -> Path:
    """Three `lines` files cut from the Korean NSMC review sample (one work unit: small files
    are grouped)."""
    text = corpus("ko/nsmc_reviews_sample.txt").read_text(encoding="utf-8")
    documents = [d.strip() for d in text.split("\n\n") if d.strip()]
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"part-{i}.txt").write_text("\n\n".join(documents[i::3]) + "\n")
    return folder
