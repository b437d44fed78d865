"""What the benchmarks share: corpora, the CLI, timed runs with the process tree's peak memory.

The large corpora are not in the repository: they are read from `../shared/corpora/bench`
beside the checkout. Small ones come from the repository's `tests/data` (`SAMPLES`).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO.parent / "shared" / "corpora" / "bench"
SAMPLES = REPO / "tests" / "data"  # plain paths: bench never imports tests/conftest.py
CLI = Path(sys.executable).with_name("make-pretrain-records")
BOOKS = 60  # the first 60 Gutenberg books (sorted by name): about 20 MB of text


def books(root: Path) -> Path:
    """The first BOOKS books as `text` files (one document each) under root/books."""
    folder = root / "books"
    if not folder.exists():
        folder.mkdir(parents=True)
        for book in sorted((BENCH / "gutenberg_en").glob("*.txt.gz"))[:BOOKS]:
            (folder / book.name[:-3]).write_bytes(gzip.decompress(book.read_bytes()))
    return folder


def nsmc(root: Path) -> Path:
    """All of NSMC (64 MB of Korean JSONL: 14,730 movies, their reviews) as one file."""
    path = root / "nsmc.jsonl"
    if not path.exists():
        path.write_bytes(gzip.decompress((BENCH / "nsmc_movies.jsonl.gz").read_bytes()))
    return path


def tokenizer(root: Path) -> Path:
    """A 32k SentencePiece model trained once on the books and 3,000 NSMC movies."""
    prefix = root / "mixed32k"
    if not Path(f"{prefix}.model").exists():
        text = root / "tokenizer-text"
        text.mkdir()
        for path in books(root).iterdir():
            (text / path.name).write_bytes(path.read_bytes())
        with open(nsmc(root), encoding="utf-8") as lines:
            movies = [json.loads(next(lines))["text"] for _ in range(3000)]
        (text / "zz-korean.txt").write_text("\n\n".join(movies), encoding="utf-8")
        subprocess.run(
            [str(CLI), "train-tokenizer", str(text), "-o", str(prefix)]
            + ["--vocab-size", "32000", "--input-format", "text"],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return Path(f"{prefix}.model")


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        total += rss.get(current, 0)
        stack.extend(children.get(current, []))
    return total


@dataclasses.dataclass(frozen=True)
class Usage:
    """One run of a command: wall and CPU seconds of its process tree, peak MB, stdout."""

    wall: float
    cpu: float
    peak: float
    stdout: str


def measured(command: list[str], env: dict[str, str] | None = None) -> Usage:
    """Runs `command`, which must succeed; CPU is user + sys of every process of its tree (all
    are waited for), the peak its largest resident set, sampled every 20 ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    peak = [0]

    def sample() -> None:
        while process.poll() is None:
            peak[0] = max(peak[0], _tree_rss(process.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, errors = process.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{errors.decode()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Usage(wall, cpu, peak[0] / 1e6, out.decode())


def run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak MB of the whole process tree) of a command."""
    usage = measured(command)
    return usage.wall, usage.peak


def median_runs(command: list[str], repeats: int, prepare=lambda: None) -> tuple[float, float]:
    """Median wall seconds and the largest peak MB over `repeats` runs (each after `prepare`)."""
    walls, peaks = [], []
    for _ in range(repeats):
        prepare()
        seconds, peak = run(command)
        walls.append(seconds)
        peaks.append(peak)
    return statistics.median(walls), max(peaks)


def shard_digest(out: Path) -> str:
    digest = hashlib.sha256()
    for shard in sorted(out.glob("train-*")):
        digest.update(shard.read_bytes())
    return digest.hexdigest()[:12]


def import_seconds() -> float:
    """Wall time of `python -c 'import tensorflow'` (best of 3)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import tensorflow"], check=True, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - start)
    return min(times)
