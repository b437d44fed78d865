"""Shared pytest set-up: quiet TensorFlow, the CLI as a subprocess, real corpora, tiny models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
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


def corpus(relative: str) -> Path:
    path = CORPORA / relative
    assert path.exists(), f"missing shared corpus {path}"
    return path


@pytest.fixture(scope="session")
def english_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real SentencePiece model (with [CLS]/[SEP]/[MASK], pad 0) trained on botchan."""
    prefix = tmp_path_factory.mktemp("spm") / "en"
    run_cli(
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
    """Three `lines` files (three work units) cut from the Korean NSMC review sample."""
    text = corpus("ko/nsmc_reviews_sample.txt").read_text(encoding="utf-8")
    documents = [d.strip() for d in text.split("\n\n") if d.strip()]
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"part-{i}.txt").write_text("\n\n".join(documents[i::3]) + "\n")
    return folder
