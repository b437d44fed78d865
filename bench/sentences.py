"""CPU seconds of sentence splitting (the pipeline's own splitter) on the benchmark corpora.

All paragraphs of NSMC's reviews (Korean) and of the first 60 books (English, blank-line
paragraphs with their lines joined), split by `pipeline.sentences.make_splitter`, the function
the build calls; best of --repeats, in CPU seconds of this process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time

import common
from pretrain_records.pipeline.reading.sentences import make_splitter


def paragraphs() -> dict[str, tuple[str, list[str]]]:
    """{corpus: (language, paragraphs)}."""
    with gzip.open(common.BENCH / "nsmc_movies.jsonl.gz", "rt", encoding="utf-8") as lines:
        reviews = [p for line in lines for p in json.loads(line)["text"].splitlines() if p.strip()]
    books = []
    for book in sorted((common.BENCH / "gutenberg_en").glob("*.txt.gz"))[: common.BOOKS]:
        text = gzip.decompress(book.read_bytes()).decode("utf-8-sig", "replace")
        text = text.replace("\r\n", "\n")
        books += [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]
    return {"nsmc": ("ko", reviews), "books": ("en", books)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args, _ = parser.parse_known_args()
    print("sentence splitting (pipeline.sentences), CPU seconds, best of", args.repeats)
    for name, (language, items) in paragraphs().items():
        split = make_splitter(language)
        best, count = float("inf"), 0
        for _ in range(args.repeats):
            start = time.process_time()
            count = sum(len(split(p)) for p in items)
            best = min(best, time.process_time() - start)
        print(f"  {name:6} {len(items):>9,} paragraphs {count:>10,} sentences {best:6.2f} s")


if __name__ == "__main__":
    main()
