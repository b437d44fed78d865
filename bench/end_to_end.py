"""Whole builds: speed on 1, 2 and `auto` workers, peak memory of the process tree, the floor.

Then the peak memory of a build of the books against one of four copies of them (flat in corpus
size).

Corpora (../shared/corpora/bench): the first 60 Gutenberg books as 60 `text` files (20 MB), and
all of NSMC as one 64 MB JSONL file (a single file: only its split into units lets workers
share it). One 32k SentencePiece model, trained once, is given to every build, so the table
measures the build itself. Each row is the median of --repeats runs of its configuration, run
back to back; the peak is the largest resident set of the whole process tree (workers
included), sampled.

The floor, measured in the same run: one `import tensorflow` plus SentencePiece encoding of the
same text on both cores (2 processes). With --baseline CLI, the same rows are also run with
another build of the tool (e.g. the previous version), side by side.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
from pathlib import Path

import common


def _encode(args: tuple[str, list[str]]) -> int:
    import sentencepiece as spm

    model, lines = args
    processor = spm.SentencePieceProcessor(model_file=model)
    return sum(len(ids) for ids in processor.encode(lines, num_threads=1))


def encode_seconds(model: Path, lines: list[str]) -> float:
    """SentencePiece encoding of `lines` on both cores."""
    with multiprocessing.Pool(2) as pool:
        start = time.perf_counter()
        pool.map(_encode, [(str(model), lines[i::2]) for i in range(2)])
        return time.perf_counter() - start


def text_lines(books: Path, nsmc: Path) -> dict[str, list[str]]:
    lines = [
        line
        for path in sorted(books.iterdir())
        for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
        if line.strip()
    ]
    reviews = [
        review
        for line in nsmc.read_text(encoding="utf-8").splitlines()
        for review in json.loads(line)["text"].splitlines()
        if review.strip()
    ]
    return {"books": lines, "nsmc": reviews}


def build_command(cli: Path, corpus: Path, out: Path, model: Path, case: dict) -> list[str]:
    command = [str(cli), "build", str(corpus), "-o", str(out), "--spm-model", str(model)]
    command += ["--input-format", case["format"], "--language", case["language"], "-q"]
    command += ["--dupe-factor", str(case["dupe"])]
    if case["workers"] != "default":
        command += ["--workers", case["workers"]]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another make-pretrain-records to compare")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        books, nsmc, model = common.books(root), common.nsmc(root), common.tokenizer(root)
        sizes = {
            "books": sum(p.stat().st_size for p in books.iterdir()),
            "nsmc": nsmc.stat().st_size,
        }
        lines = text_lines(books, nsmc)
        imports = common.import_seconds()
        floors = {name: imports + encode_seconds(model, text) for name, text in lines.items()}
        cases = [
            dict(corpus="books", format="text", language="en", dupe=5, workers=w)
            for w in ("1", "2", "auto")
        ] + [
            dict(corpus="nsmc", format="jsonl", language="ko", dupe=d, workers=w)
            for d in (1, 5)
            for w in ("1", "2", "auto")
        ]
        tools = [("this", common.CLI)] + ([("baseline", args.baseline)] if args.baseline else [])
        rows = []
        for case in cases:
            for tool, cli in tools:
                if tool == "baseline" and case["workers"] == "auto":
                    continue
                out = root / "out"
                corpus = books if case["corpus"] == "books" else nsmc
                command = build_command(cli, corpus, out, model, case)
                seconds, peak = common.median_runs(
                    command, args.repeats, lambda out=out: shutil.rmtree(out, ignore_errors=True)
                )
                rows.append((tool, case, seconds, peak, common.shard_digest(out)))
                shutil.rmtree(out, ignore_errors=True)
        memory = memory_in_corpus_size(root, books, model)
    print(
        f"end to end, {multiprocessing.cpu_count()} cores, median of {args.repeats} runs; floor = "
        f"import tensorflow ({imports:.1f} s) + SentencePiece encoding on both cores: "
        + ", ".join(f"{name} {floor:.1f} s" for name, floor in floors.items())
    )
    print(
        f"{'tool':9} {'corpus':6} {'dupe':>4} {'workers':>7} {'wall s':>7} {'MB/s':>6} "
        f"{'x 1 worker':>10} {'x floor':>8} {'peak MB':>8}  shards"
    )
    for tool, case, seconds, peak, digest in rows:
        one = next(
            r[2]
            for r in rows
            if r[0] == tool
            and r[1]["corpus"] == case["corpus"]
            and r[1]["dupe"] == case["dupe"]
            and r[1]["workers"] == "1"
        )
        size = sizes[case["corpus"]]
        print(
            f"{tool:9} {case['corpus']:6} {case['dupe']:4d} {case['workers']:>7} {seconds:7.2f} "
            f"{size / 1e6 / seconds:6.2f} {one / seconds:10.2f} "
            f"{seconds / floors[case['corpus']]:8.2f} {peak:8.0f}  {digest}"
        )
    ours = {}
    for tool, case, _, _, digest in rows:
        if tool == "this":
            ours.setdefault((case["corpus"], case["dupe"]), set()).add(digest)
    print("identical shards for every worker count:", all(len(d) == 1 for d in ours.values()))
    print("memory in corpus size: the books (x1) and four copies of them (x4), dupe 5, one run")
    print(f"{'corpus':6} {'workers':>7} {'wall s':>7} {'peak MB':>8} {'x4 / x1':>8}")
    for line in memory:
        print(line)


def memory_in_corpus_size(root: Path, books: Path, model: Path) -> list[str]:
    """Peak RSS of a build of the books and of four copies of them (in four folders), dupe 5,
    on 1 and 2 workers: flat in corpus size, since units and merge buckets are bounded."""
    four = root / "four"
    for copy in "abcd":
        shutil.copytree(books, four / copy)
    case = dict(format="text", language="en", dupe=5)
    peaks, lines = {}, []
    for workers in ("1", "2"):
        for name, corpus in (("x1", books), ("x4", four)):
            out = root / "out"
            command = build_command(common.CLI, corpus, out, model, {**case, "workers": workers})
            seconds, peak = common.median_runs(command, 1)
            shutil.rmtree(out, ignore_errors=True)
            peaks[name, workers] = peak
            ratio = f"{peak / peaks['x1', workers]:8.2f}" if name == "x4" else ""
            lines.append(f"{name:6} {workers:>7} {seconds:7.2f} {peak:8.0f} {ratio}")
    shutil.rmtree(four)
    return lines


if __name__ == "__main__":
    main()
