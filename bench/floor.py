"""The floor of issue 24: a whole build against SentencePiece encoding of the same text once.

    python bench/floor.py [--copies 16] [--root DIR] [--keep]     # the ~1 GB JSONL.gz corpus
    python bench/floor.py --corpus books [--books 60]               # the Gutenberg books
    python bench/floor.py --quick                                   # 4 books, dupe 1

The floor is one process tree that reads, decompresses, JSON-decodes and SentencePiece-encodes
every line of every document, in batches of 4,096 lines, on all cores (the files split
between one process per core, largest first; one file: one process with as many encoding
threads). Then, in the same run, the tool's build of the same corpus with the same tokenizer
(dupe 5, SOP, 128 tokens, default workers), and the ratios: build / floor in wall and in CPU
seconds (user + sys of the whole process tree), with both trees' peak memory. Each command is
printed so that every number can be measured again.

The large corpus is `large.py`'s (`--copies` copies of every book cut into ~4 KB documents, 8
JSONL.gz files); the tokenizer the 32k model of the other benchmarks, unless --spm-model.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common
import large
import peer_setup

BATCH = 4096  # lines per `encode` call


def corpus_files(corpus: Path) -> list[Path]:
    """The files of a corpus (a file or a folder of files), largest first."""
    files = sorted(corpus.iterdir()) if corpus.is_dir() else [corpus]
    return sorted(files, key=lambda path: -path.stat().st_size)


def split_files(files: list[Path], parts: int) -> list[list[Path]]:
    """`files` (largest first) in `parts` groups of about equal bytes (empty groups dropped)."""
    groups: list[list[Path]] = [[] for _ in range(parts)]
    sizes = [0] * parts
    for path in files:
        lightest = sizes.index(min(sizes))
        groups[lightest].append(path)
        sizes[lightest] += path.stat().st_size
    return [group for group in groups if group]


def document_texts(path: Path, input_format: str) -> list[str]:
    """Every document's text in a file: JSONL rows' `text`, or the whole (decompressed) file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as stream:
        if input_format == "jsonl":
            return [json.loads(row)["text"] for row in stream]
        return [stream.read()]


def encode_files(job: tuple[str, list[Path], str, int]) -> dict[str, int]:
    """Reads and encodes every non-empty line of some files; counts what it saw."""
    import sentencepiece as spm

    model, files, input_format, threads = job
    processor = spm.SentencePieceProcessor(model_file=model)
    counts = {"documents": 0, "lines": 0, "pieces": 0}
    batch: list[str] = []

    def flush() -> None:
        counts["lines"] += len(batch)
        counts["pieces"] += sum(map(len, processor.encode(batch, num_threads=threads)))
        batch.clear()

    for path in files:
        for text in document_texts(path, input_format):
            counts["documents"] += 1
            batch.extend(line for line in text.splitlines() if line.strip())
            if len(batch) >= BATCH:
                flush()
    flush()
    return counts


def encode_corpus(model: Path, corpus: Path, input_format: str, cores: int) -> dict[str, int]:
    """The floor's work: encode_files on every file of the corpus, on `cores` cores."""
    groups = split_files(corpus_files(corpus), cores)
    threads = max(1, cores // len(groups))
    jobs = [(str(model), group, input_format, threads) for group in groups]
    if len(jobs) == 1:
        counts = [encode_files(jobs[0])]
    else:
        with multiprocessing.Pool(len(jobs)) as pool:
            counts = pool.map(encode_files, jobs)
            pool.close()
            pool.join()
    return {key: sum(c[key] for c in counts) for key in counts[0]}


def floor_command(model: Path, corpus: Path, input_format: str) -> list[str]:
    """This script in --encode-only mode: the floor as a command of its own."""
    return [sys.executable, str(Path(__file__).resolve()), "--encode-only", str(corpus)] + [
        "--spm-model",
        str(model),
        "--input-format",
        input_format,
    ]


def build_command(model: Path, corpus: Path, input_format: str, out: Path, dupe: int) -> list[str]:
    """The tool's build of the corpus, as issue 24's table runs it (dupe, SOP, 128 tokens)."""
    return [str(common.CLI), "build", str(corpus), "-o", str(out), "--spm-model", str(model)] + [
        "--input-format",
        input_format,
        "--dupe-factor",
        str(dupe),
        "--sentence-task",
        "sop",
        "--max-seq-length",
        "128",
        "--json",
    ]


def corpus_of(options: argparse.Namespace, root: Path) -> tuple[Path, str, int, str]:
    """The corpus to build: path, input format, bytes of text (uncompressed), a description."""
    if options.corpus == "books":
        folder = peer_setup.first_books(root, options.books)
        size = sum(path.stat().st_size for path in folder.iterdir())
        return folder, "text", size, f"the first {options.books} Gutenberg books, `text` files"
    folder, size = large.generate(root, options.copies)
    files = f"{large.FILES} JSONL.gz files"
    return folder, "jsonl", size, f"{options.copies} copies of the books as documents, {files}"


def parse_options() -> argparse.Namespace:
    """The command line; --quick stands for --corpus books --books 4 --dupe 1."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=("large", "books"), default="large")
    parser.add_argument("--copies", type=int, default=16, help="copies of the books (large)")
    parser.add_argument("--books", type=int, default=common.BOOKS, help="books (books)")
    parser.add_argument("--dupe", type=int, default=5, help="dupe factor of the build")
    parser.add_argument("--quick", action="store_true", help="4 books, dupe 1")
    parser.add_argument("--spm-model", type=Path, help="default: the benchmarks' 32k model")
    parser.add_argument("--root", type=Path, help="where the corpus and outputs go")
    parser.add_argument("--keep", action="store_true", help="keep the root folder")
    parser.add_argument("--encode-only", type=Path, metavar="CORPUS", help=argparse.SUPPRESS)
    parser.add_argument("--input-format", default="jsonl", help=argparse.SUPPRESS)
    options, _ = parser.parse_known_args()  # `make bench` passes every script the same flags
    if options.quick:
        options.corpus, options.books, options.dupe = "books", 4, 1
    return options


def row(name: str, usage: common.Usage, floor: common.Usage) -> str:
    """One run as a table row."""
    return (
        f"| {name} | {usage.wall:.1f} | {usage.cpu:.1f} | {usage.wall / floor.wall:.2f} | "
        f"{usage.cpu / floor.cpu:.2f} | {usage.peak:.0f} |"
    )


def report(description: str, size: int, dupe: int, runs: dict[str, common.Usage]) -> None:
    """The table: the floor, the build and a bare `import tensorflow`, each against the floor."""
    floor, build = runs["floor"], runs["build"]
    counts = json.loads(floor.stdout.strip().splitlines()[-1])
    summary = json.loads(build.stdout.strip().splitlines()[-1])
    cores = len(os.sched_getaffinity(0))
    print(f"{description}: {size / 1e6:.1f} MB of text, {cores} cores")
    print(
        f"floor: {counts['documents']:,} documents, {counts['lines']:,} lines, "
        f"{counts['pieces']:,} pieces; build: {summary['records']:,} records, "
        f"{summary['tokens']['input']:,} tokens read"
    )
    print("| run | wall s | CPU s | x floor wall | x floor CPU | peak MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row("floor: read + decode + SentencePiece encode", floor, floor))
    print(row(f"build: dupe {dupe}, SOP, 128 tokens", build, floor))
    print(row("(for scale, not in the floor) import tensorflow", runs["import"], floor))
    print(f"issue 24's goal, the build within 1.5x of the floor: {build.wall / floor.wall:.2f}x")


def main() -> None:
    options = parse_options()
    cores = len(os.sched_getaffinity(0))
    if options.encode_only:
        model, corpus = options.spm_model, options.encode_only
        print(json.dumps(encode_corpus(model, corpus, options.input_format, cores)))
        return
    root = options.root or Path(tempfile.mkdtemp(prefix="mpr-floor-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        model = options.spm_model or common.tokenizer(root)
        corpus, input_format, size, description = corpus_of(options, root)
        out = root / "out"
        shutil.rmtree(out, ignore_errors=True)
        env = peer_setup.tf_env()
        floor_run = floor_command(model, corpus, input_format)
        build_run = build_command(model, corpus, input_format, out, options.dupe)
        import_run = [sys.executable, "-c", "import tensorflow"]
        runs = {
            "floor": common.measured(floor_run, peer_setup.run_env(env)),
            "build": common.measured(build_run, peer_setup.run_env(env)),
            "import": common.measured(import_run, peer_setup.run_env(env)),
        }
        report(description, size, options.dupe, runs)
        print("commands (the build's output folder must not exist):")
        print("  floor:", peer_setup.shell_line(floor_run, env))
        print("  build:", f"rm -rf {out} &&", peer_setup.shell_line(build_run, env))
        print("  import:", peer_setup.shell_line(import_run, env))
        if not options.keep and not options.root:
            print("  (their files were in a temporary folder: --root DIR --keep keeps them)")
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
