"""Input formats, side by side in one run: the same text as JSONL.gz, JSONL.zst, parquet and a
Wikipedia XML dump (MB/s of text and the ratio to JSONL.gz), and many small files against the
same bytes as one file (the goal: within 1.5x).

    python bench/formats.py [--books 20] [--repeats 3]

The text is the first Gutenberg books of ../shared/corpora/bench cut into ~4 KB documents; the
small files are ~330-byte documents of them. A 32k tokenizer is given; one worker, dupe 5, 128
tokens; median wall seconds of the repeats (the process tree's peak memory beside).
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import json
import re
import shutil
import tempfile
from html import escape
from pathlib import Path

import common
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

ARGS = ["--dupe-factor", "5", "--max-seq-length", "128", "--workers", "1", "-q"]


def documents(books: Path, count: int, size: int) -> list[str]:
    """The books' text cut into documents of about `size` characters, paragraphs kept."""
    found: list[str] = []
    for book in sorted(books.iterdir())[:count]:
        text = book.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", text)]
        current: list[str] = []
        for paragraph in filter(None, paragraphs):
            current.append(paragraph)
            if sum(map(len, current)) >= size:
                found.append("\n".join(current))
                current = []
        if current:
            found.append("\n".join(current))
    return found


def write_formats(root: Path, docs: list[str]) -> dict[str, tuple[Path, list[str]]]:
    """Each format's input folder and its extra build options."""
    jsonl = "".join(json.dumps({"text": d}, ensure_ascii=False) + "\n" for d in docs).encode()
    made: dict[str, tuple[Path, list[str]]] = {}
    for name, data in (
        ("jsonl.gz", gzip.compress(jsonl, 6)),
        ("jsonl.zst", zstandard.ZstdCompressor(level=3).compress(jsonl)),
    ):
        folder = root / name
        folder.mkdir()
        (folder / f"corpus.{name}").write_bytes(data)
        made[name] = (folder, ["--input-format", "jsonl"])
    folder = root / "parquet"
    folder.mkdir()
    table = pa.table({"text": docs, "id": [str(i) for i in range(len(docs))]})
    pq.write_table(table, folder / "corpus.parquet", row_group_size=1000, compression="snappy")
    made["parquet"] = (folder, ["--input-format", "parquet"])
    folder = root / "wikipedia"
    folder.mkdir()
    pages = "".join(
        f"<page><title>Document {i}</title><ns>0</ns><id>{i + 1}</id><revision><id>{i + 1}"
        f"</id><text>{escape(d.replace(chr(10), chr(10) * 2))}</text></revision></page>\n"
        for i, d in enumerate(docs)
    )
    xml = f"<mediawiki><siteinfo><sitename>Bench</sitename></siteinfo>\n{pages}</mediawiki>\n"
    (folder / "benchwiki-pages-articles.xml.bz2").write_bytes(bz2.compress(xml.encode(), 9))
    made["wikipedia (xml.bz2)"] = (folder, ["--input-format", "wikipedia"])
    return made


def small_files(root: Path, docs: list[str], count: int) -> tuple[Path, Path]:
    """`count` files of ~330 bytes (`lines`: a sentence per line) and one file of the same
    documents."""
    pieces: list[str] = []
    for doc in docs:
        sentences = re.split(r"(?<=[.!?]) ", doc.replace("\n", " "))
        current: list[str] = []
        for sentence in sentences:
            current.append(sentence)
            if sum(map(len, current)) >= 300:
                pieces.append("\n".join(current) + "\n")
                current = []
            if len(pieces) == count:
                break
        if len(pieces) == count:
            break
    many, one = root / f"small-{count}", root / f"one-{count}"
    many.mkdir()
    one.mkdir()
    for i, piece in enumerate(pieces):
        (many / f"doc-{i:05d}.txt").write_text(piece, encoding="utf-8")
    (one / "all.txt").write_text("\n".join(pieces), encoding="utf-8")
    return many, one


def text_bytes(docs: list[str]) -> int:
    return sum(len(d.encode()) for d in docs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--books", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="mpr-formats-"))
    try:
        model = common.tokenizer(root)
        docs = documents(common.books(root), options.books, 4000)
        megabytes = text_bytes(docs) / 1e6
        print(f"{len(docs)} documents, {megabytes:.1f} MB of text; median of {options.repeats}")
        print("| format | wall s | MB/s | x jsonl.gz | peak MB |")
        print("| --- | ---: | ---: | ---: | ---: |")
        base = None
        for name, (folder, extra) in write_formats(root, docs).items():
            out = root / f"out-{name}"
            command = [str(common.CLI), "build", str(folder), "-o", str(out)]
            command += ["--spm-model", str(model), *ARGS, *extra]
            wall, peak = common.median_runs(command, options.repeats, lambda o=out: _clear(o))
            base = base or wall
            print(
                f"| {name} | {wall:.2f} | {megabytes / wall:.2f} | {base / wall:.2f} | {peak:.0f} |"
            )
        print()
        print(
            "| small files | bytes | wall s, many files | wall s, one file | ratio (goal <= 1.5) |"
        )
        print("| ---: | ---: | ---: | ---: | ---: |")
        for count in (3000, 10000):
            many, one = small_files(root, docs, count)
            size = sum(p.stat().st_size for p in many.iterdir())
            walls = []
            for folder in (many, one):
                out = root / f"out-{folder.name}"
                command = [str(common.CLI), "build", str(folder), "-o", str(out)]
                command += ["--spm-model", str(model), *ARGS]
                walls.append(
                    common.median_runs(command, options.repeats, lambda o=out: _clear(o))[0]
                )
            ratio = walls[0] / walls[1]
            print(f"| {count:,} | {size:,} | {walls[0]:.2f} | {walls[1]:.2f} | {ratio:.2f} |")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _clear(out: Path) -> None:
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
