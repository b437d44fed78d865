"""Two rows of issue 24, each a ratio measured side by side in one run:

1. The global merge's cost: this tree against the build before the global merge (commit
   3ab5ccc, or `--baseline REV`) on one ~5 MB text file (the first Gutenberg books joined:
   the World English Bible the issue names is not among the bench corpora), dupe 5, in process
   (`--workers 1`), the same tokenizer; pairs alternate (baseline, today) `--pairs` times.
   The baseline runs from a `git worktree` of REV in a temporary folder, its op compiled there.
2. A second worker: CPU seconds per MB (user + sys of the process tree) and wall on 2 workers
   against 1, on the 60 books as 60 files (dupe 5) and on NSMC as one 64 MB JSONL file (dupe 1).

    python bench/ratios.py [--pairs 5] [--baseline 3ab5ccc] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

BOOK_BYTES = 5_000_000  # about the World English Bible's 4.9 MB


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree) of a command that must succeed."""
    usage = common.measured(command, env)
    return usage.wall, usage.cpu


def joined_books(root: Path) -> Path:
    """The first books, joined into one text file of about BOOK_BYTES."""
    path = root / "books.txt"
    if not path.exists():
        parts, size = [], 0
        for book in sorted(common.books(root).iterdir()):
            data = book.read_bytes()
            parts.append(data)
            size += len(data)
            if size >= BOOK_BYTES:
                break
        path.write_bytes(b"\n\n".join(parts))
    return path


def baseline_env(root: Path, revision: str) -> dict[str, str]:
    """An environment whose `pretrain_records` is a worktree of `revision`, its op built."""
    tree = root / "baseline"
    subprocess.run(
        ["git", "-C", str(common.REPO), "worktree", "add", "--detach", "-f", str(tree), revision],
        check=True,
        capture_output=True,
    )
    shim = root / "shim" / "pretrain_records"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("")
    for part in ("cli", "pipeline", "ops", "configs"):
        (shim / part).symlink_to(tree / part)
    env = {**os.environ, "PYTHONPATH": str(shim.parent)}
    builder = "compile_library" if (tree / "ops" / "compile_library.py").exists() else "build"
    compile_op = [sys.executable, "-m", f"pretrain_records.ops.{builder}", "--cxx", "g++"]
    subprocess.run(compile_op, env=env, check=True, capture_output=True)
    return env


def merge_cost(root: Path, revision: str, pairs: int) -> None:
    text, model = joined_books(root), common.tokenizer(root)
    env = baseline_env(root, revision)
    out = root / "out"
    # The same launcher for both trees (the baseline's console entry point had another name).
    launcher = "import sys; from pretrain_records.cli.main import main; sys.exit(main())"
    command = [sys.executable, "-c", launcher, "build", str(text), "-o", str(out)]
    command += ["--spm-model", str(model)]
    command += ["--input-format", "text", "--dupe-factor", "5", "--workers", "1", "-q"]
    runs: dict[str, list[tuple[float, float]]] = {"baseline": [], "today": []}
    for _ in range(pairs):
        for name, environment in (("baseline", env), ("today", None)):
            shutil.rmtree(out, ignore_errors=True)
            runs[name].append(timed(command, environment))
    wall = {n: statistics.median(r[0] for r in v) for n, v in runs.items()}
    cpu = {n: statistics.median(r[1] for r in v) for n, v in runs.items()}
    size = text.stat().st_size / 1e6
    print(f"1. {size:.1f} MB of books as one text file, dupe 5, 1 worker, {pairs} pairs (median)")
    print("| tree | wall s | CPU s |")
    print("| --- | ---: | ---: |")
    print(
        f"| {revision} (before the global merge) | {wall['baseline']:.2f} | {cpu['baseline']:.2f} |"
    )
    print(f"| today | {wall['today']:.2f} | {cpu['today']:.2f} |")
    print(
        f"today / baseline: {wall['today'] / wall['baseline']:.2f}x the wall, "
        f"{cpu['today'] / cpu['baseline']:.2f}x the CPU (goal <= 1.0x)"
    )
    print(f"   command: {' '.join(command)}  (baseline: PYTHONPATH={env['PYTHONPATH']})")


def second_worker(root: Path) -> None:
    model = common.tokenizer(root)
    cases = [
        ("60 books as 60 files, dupe 5", common.books(root), ["--input-format", "text"], 5),
        ("NSMC, one 64 MB JSONL, dupe 1", common.nsmc(root), ["--input-format", "jsonl"], 1),
    ]
    print("2. a second worker")
    print("| corpus | workers | wall s | CPU s | CPU s per MB | 2 / 1 CPU per MB | 1 / 2 wall |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, corpus, options, dupe in cases:
        size = sum(p.stat().st_size for p in corpus.iterdir()) if corpus.is_dir() else 0
        size = (size or corpus.stat().st_size) / 1e6
        measured = {}
        for workers in ("1", "2"):
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            command = [str(common.CLI), "build", str(corpus), "-o", str(out)]
            command += ["--spm-model", str(model), *options, "--dupe-factor", str(dupe)]
            command += ["--language", "ko" if "NSMC" in name else "en", "--workers", workers, "-q"]
            measured[workers] = timed(command)
        for workers, (wall, cpu) in measured.items():
            extra = ""
            if workers == "2":
                per_mb = (cpu / size) / (measured["1"][1] / size)
                extra = f" {per_mb:.2f}x | {measured['1'][0] / wall:.2f}x"
            else:
                extra = " | "
            print(f"| {name} | {workers} | {wall:.1f} | {cpu:.1f} | {cpu / size:.2f} |{extra} |")
    print("goal: CPU per MB at 2 workers within 1.1x of 1 worker's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--baseline", default="3ab5ccc")
    parser.add_argument("--skip-baseline", action="store_true")
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mpr-ratios-"))
    try:
        if not options.skip_baseline:
            merge_cost(root, options.baseline, options.pairs)
        second_worker(root)
    finally:
        if (root / "baseline").exists():
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(common.REPO),
                    "worktree",
                    "remove",
                    "--force",
                    str(root / "baseline"),
                ],
                capture_output=True,
            )
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
