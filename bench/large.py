"""The 1 GB build: a full build, a refresh after one appended document, a re-cut to another
shard count (no --force), each with wall and CPU seconds of the whole process tree, its peak
memory and the disk the output takes.

    python bench/large.py [--copies 16] [--root DIR] [--keep]

The corpus is generated from ../shared/corpora/bench: every Gutenberg book cut into ~4 KB
documents, `--copies` times (each copy's documents told apart by a first sentence naming the
copy), written as 8 JSONL.gz files (about 125 MB of JSON each at 16 copies). dupe 5, SOP, 128
tokens, the 32k tokenizer given, default workers.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import common

FILES = 8
ARGS = ["--input-format", "jsonl", "--dupe-factor", "5", "--sentence-task", "sop", "--json"]


def generate(root: Path, copies: int) -> tuple[Path, int]:
    """The corpus folder and its uncompressed bytes."""
    folder = root / "corpus"
    if folder.exists():
        return folder, int((root / "corpus.bytes").read_text())
    folder.mkdir(parents=True)
    books = sorted((common.BENCH / "gutenberg_en").glob("*.txt.gz"))
    documents = []
    for book in books:
        text = gzip.decompress(book.read_bytes()).decode("utf-8", "replace").replace("\r\n", "\n")
        current: list[str] = []
        for paragraph in re.split(r"\n\s*\n", text):
            paragraph = re.sub(r"\s+", " ", paragraph).strip()
            if paragraph:
                current.append(paragraph)
            if sum(map(len, current)) >= 4000:
                documents.append("\n".join(current))
                current = []
    total = 0
    streams = [
        gzip.open(folder / f"part-{i}.jsonl.gz", "wt", compresslevel=1) for i in range(FILES)
    ]
    try:
        for copy in range(copies):
            for i, document in enumerate(documents):
                line = json.dumps({"text": f"Copy {copy}, part {i}.\n{document}"}) + "\n"
                streams[(copy * len(documents) + i) % FILES].write(line)
                total += len(line.encode())
    finally:
        for stream in streams:
            stream.close()
    (root / "corpus.bytes").write_text(str(total))
    return folder, total


def measured(command: list[str]) -> dict[str, object]:
    """Wall and CPU seconds (user + sys of the whole process tree), peak MB and the JSON
    summary of a build."""
    usage = common.measured(command)
    summary = json.loads(usage.stdout.strip().splitlines()[-1])
    return {"wall": usage.wall, "cpu": usage.cpu, "peak": usage.peak, "summary": summary}


def disk(path: Path) -> float:
    """GB under a folder."""
    total = 0
    for folder, _, names in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, n)) for n in names)
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the corpus and output")
    options = parser.parse_args()
    root = options.root or Path(tempfile.mkdtemp(prefix="mpr-large-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        model = common.tokenizer(root)
        corpus, size = generate(root, options.copies)
        out = root / "out"
        shutil.rmtree(out, ignore_errors=True)
        base = [str(common.CLI), "build", str(corpus), "-o", str(out), "--spm-model", str(model)]
        rows = []
        full = measured(base + ARGS)
        rows.append(("full build", full))
        with gzip.open(corpus / "part-3.jsonl.gz", "at") as stream:
            stream.write(json.dumps({"text": "One more document, appended. It ends here."}) + "\n")
        rows.append(("refresh (one appended document)", measured(base + ARGS)))
        shards = full["summary"]["shards"] + 1
        rows.append(
            (f"re-cut to {shards} shards", measured(base + ARGS + ["--num-shards", str(shards)]))
        )
        print(f"{size / 1e9:.2f} GB of JSONL ({FILES} files .gz), dupe 5, SOP, 128 tokens")
        print("| run | wall s | CPU s | peak MB | records | units rebuilt | output GB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, row in rows:
            summary = row["summary"]
            print(
                f"| {name} | {row['wall']:.1f} | {row['cpu']:.1f} | {row['peak']:.0f} | "
                f"{summary['records']:,} | {summary['units']['rebuilt']} of "
                f"{summary['units']['total']} | {disk(out):.1f} |"
            )
        verify = subprocess.run([str(common.CLI), "verify", str(out)], capture_output=True)
        print(f"verify: exit {verify.returncode}")
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
