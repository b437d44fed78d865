"""What `floor.py` and `peers.py` share: the first books, timed runs, TF Model Garden's script.

Model Garden's `create_pretraining_data.py` ships in the PyPI wheel `tf-models-official`, whose
dependencies pull a second TensorFlow. So the wheel is downloaded alone (`pip download
--no-deps`) into a cache outside the repository, unpacked there, and run with this venv's
python and `PYTHONPATH` pointing at it. Of the modules it imports, only `tf_keras` is missing
here, and the script never uses it (`import tensorflow as tf, tf_keras`): an empty stub in the
cache stands in for it, unless a real `tf_keras` is installed.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import common

MODEL_GARDEN = "2.20.0"  # the newest tf-models-official; its script runs on TF 2.21
SCRIPT = "official.nlp.data.create_pretraining_data"
TF_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"}  # as in the Makefile
CACHE = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    / "make-pretrain-records"
    / "peers"
)


def first_books(root: Path, count: int) -> Path:
    """A folder of the first `count` Gutenberg books (sorted by name) as plain text files."""
    every = common.books(root)
    if count >= common.BOOKS:
        return every
    folder = root / f"books-{count}"
    if not folder.exists():
        folder.mkdir()
        for book in sorted(every.iterdir())[:count]:
            os.link(book, folder / book.name)
    return folder


def tf_env() -> dict[str, str]:
    """TensorFlow's settings `make bench` exports (this environment's values, if it has them)."""
    return {key: os.environ.get(key, value) for key, value in TF_DEFAULTS.items()}


def run_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment, then `extra` over it."""
    return dict(os.environ, **extra)


def model_garden(version: str = MODEL_GARDEN, cache: Path = CACHE) -> Path:
    """The unpacked `tf-models-official` wheel of `version` (downloaded once, without deps)."""
    folder = cache / f"tf-models-official-{version}"
    if (folder / "official" / "nlp" / "data" / "create_pretraining_data.py").exists():
        return folder
    wheels = cache / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        + [f"tf-models-official=={version}", "--dest", str(wheels)],
        check=True,
    )
    (wheel,) = wheels.glob(f"tf_models_official-{version}-*.whl")
    unpacking = cache / f".unpacking-{version}"
    shutil.rmtree(unpacking, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacking)
    unpacking.rename(folder)
    return folder


def stubs(cache: Path = CACHE) -> list[Path]:
    """Folders to put on PYTHONPATH for modules Model Garden imports but never uses."""
    if importlib.util.find_spec("tf_keras") is not None:
        return []
    folder = cache / "stubs"
    stub = folder / "tf_keras" / "__init__.py"
    if not stub.exists():
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text('"""Stub: imported by Model Garden\'s data scripts, never used."""\n')
    return [folder]


def model_garden_env(unpacked: Path, cache: Path = CACHE) -> dict[str, str]:
    """The PYTHONPATH Model Garden's script runs with: the unpacked wheel, then any stubs."""
    return {"PYTHONPATH": os.pathsep.join(str(p) for p in [unpacked, *stubs(cache)])}


def shell_line(command: list[str], env: dict[str, str] | None = None) -> str:
    """`command` as one line to paste into a shell, its extra environment first."""
    prefix = [f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    return " ".join(prefix + [shlex.join(command)])
