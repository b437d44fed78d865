"""How well shards mix the corpus, and what a refresh costs.

Mixing (the table of the global-merge issue): the first 60 Gutenberg books, 128 tokens, NSP,
dupe factor 2, as 60 `text` files and as one file (`lines`: a book per document, a paragraph
per line). Each record's book
is found from its text: 8-token windows of its first segment (masked positions left out) are
looked up in the books' own windows, and the majority names the book. Per shard: the share of
the 60 books it holds, the distinct books among 256 consecutive records, and |Spearman(position
in shard, book order)|, averaged over shards.

Refresh: the 60 files at dupe factor 5 built, one file changed, built again: its time against
the full build (with the tokenizer given; and with the tokenizer trained, as a first build
does), and the disk the kept records take beside the shards. With --baseline CLI, the mixing
rows are also measured for another build of the tool.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
from pathlib import Path

import common
import numpy as np
import sentencepiece as spm
import tensorflow as tf

WINDOW = 8
BUILD = ["--max-seq-length", "128", "--sentence-task", "nsp", "--dupe-factor", "2", "-q"]


def window_keys(ids: np.ndarray) -> np.ndarray:
    """A 64-bit key for every WINDOW consecutive ids."""
    if len(ids) < WINDOW:
        return np.zeros(0, np.uint64)
    view = np.lib.stride_tricks.sliding_window_view(ids.astype(np.uint64), WINDOW)
    keys = np.zeros(len(view), np.uint64)
    with np.errstate(over="ignore"):
        for k in range(WINDOW):
            keys = keys * np.uint64(1_000_003) + view[:, k]
    return keys


def book_index(model: Path, books: list[Path]) -> dict[int, int]:
    """Window key -> book, for windows found in exactly one book."""
    processor = spm.SentencePieceProcessor(model_file=str(model))
    owner: dict[int, int] = {}
    for b, path in enumerate(books):
        text = path.read_text(encoding="utf-8", errors="replace")
        ids = np.array([i for line in processor.encode(text.splitlines()) for i in line], np.int64)
        for key in np.unique(window_keys(ids)).tolist():
            owner[key] = b if owner.get(key, b) == b else -1
    return {k: b for k, b in owner.items() if b >= 0}


def shard_books(out: Path, owners: dict[int, int]) -> list[np.ndarray]:
    """For each shard, the book of each record (-1: not found)."""
    spec = {
        name: tf.io.FixedLenFeature([128], tf.int64)
        for name in ("input_ids", "segment_ids", "input_mask")
    }
    spec["masked_lm_positions"] = tf.io.FixedLenFeature([20], tf.int64)
    found = []
    for shard in sorted(out.glob("train-*")):
        records = tf.data.TFRecordDataset(str(shard)).map(
            lambda r: tf.io.parse_single_example(r, spec)
        )
        books = []
        for r in records.as_numpy_iterator():
            ids = r["input_ids"].copy()
            ids[r["masked_lm_positions"]] = -1  # replaced tokens break a window
            first = ids[1 : int(np.argmax(r["segment_ids"] == 1)) or int(r["input_mask"].sum())]
            keys = window_keys(np.where(first < 0, 2**40, first))
            votes = collections.Counter(owners[k] for k in keys.tolist() if k in owners)
            books.append(votes.most_common(1)[0][0] if votes else -1)
        found.append(np.array(books))
    return found


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from pretrain_records.pipeline.readback.stats import spearman as rank_correlation

    return rank_correlation(x, y)


def mixing(shards: list[np.ndarray], count: int) -> tuple[float, float, float, float]:
    """(share of books per shard, distinct books per 256 consecutive records, |Spearman|,
    share of records identified)."""
    share, distinct, rho, known = [], [], [], []
    for books in shards:
        ok = books[books >= 0]
        known.append(len(ok) / max(1, len(books)))
        share.append(len(np.unique(ok)) / count)
        windows = [ok[i : i + 256] for i in range(0, max(1, len(ok) - 255), 256)]
        distinct.append(np.mean([len(np.unique(w)) for w in windows]))
        rho.append(abs(spearman(np.arange(len(ok)), ok)))
    return (
        float(np.mean(share)),
        float(np.mean(distinct)),
        float(np.mean(rho)),
        float(np.mean(known)),
    )


def one_file(books: list[Path], path: Path) -> Path:
    """The books as one `lines` file: a book per document, a paragraph per line."""
    with open(path, "w", encoding="utf-8") as stream:
        for book in books:
            text = book.read_text(encoding="utf-8", errors="replace").replace("\r", "")
            for paragraph in text.split("\n\n"):
                line = " ".join(paragraph.split())
                if line:
                    stream.write(line + "\n")
            stream.write("\n")
    return path


def refresh_figures(root: Path, folder: Path, model: Path) -> dict[str, float]:
    """Full builds (tokenizer given / trained) and a refresh after one of the files changed."""
    copy = root / "refresh-in"
    shutil.copytree(folder, copy)
    args = ["--input-format", "text", "--dupe-factor", "5", "-q"]
    out, trained = root / "refresh-out", root / "trained-out"
    given = ["--spm-model", str(model), *args]
    full, _ = common.run([str(common.CLI), "build", str(copy), "-o", str(out), *given])
    full_trained, _ = common.run([str(common.CLI), "build", str(copy), "-o", str(trained), *args])
    changed = sorted(copy.iterdir())[17]
    changed.write_text(changed.read_text(encoding="utf-8") + "\n\nA new closing paragraph.\n")
    refresh, _ = common.run([str(common.CLI), "build", str(copy), "-o", str(out), *given])
    manifest = json.loads((out / "manifest.json").read_text())
    kept = sum(p.stat().st_size for p in (out / ".mpr" / "units").rglob("run-*"))
    return {
        "full": full,
        "full_trained": full_trained,
        "refresh": refresh,
        "rebuilt": len(manifest["rebuilt_units"]),
        "units": len(manifest["units"]),
        "kept_mb": kept / 1e6,
        "shards_mb": manifest["totals"]["bytes"] / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another make-pretrain-records to compare")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder, model = common.books(root), common.tokenizer(root)
        books = sorted(folder.iterdir())
        owners = book_index(model, books)
        single = one_file(books, root / "books.txt")
        tools = [("this", common.CLI)] + ([("baseline", args.baseline)] if args.baseline else [])
        rows = []
        for tool, cli in tools:
            for layout, path, fmt in (("60 files", folder, "text"), ("one file", single, "lines")):
                out = root / f"{tool}-{layout.replace(' ', '-')}"
                command = [str(cli), "build", str(path), "-o", str(out), "--spm-model", str(model)]
                seconds, _ = common.run(command + ["--input-format", fmt, *BUILD])
                rows.append((tool, layout, seconds, *mixing(shard_books(out, owners), len(books))))
        refresh = refresh_figures(root, folder, model)
    print("mixing: 60 books, 128 tokens, NSP, dupe 2 (per shard, mean)")
    print(
        f"{'tool':9} {'layout':9} {'build s':>7} {'book share':>11} {'books/256':>9} "
        f"{'|rho|':>6} {'found':>6}"
    )
    for tool, layout, seconds, share, distinct, rho, known in rows:
        print(
            f"{tool:9} {layout:9} {seconds:7.1f} {share:11.2f} {distinct:9.1f} {rho:6.3f} "
            f"{known:6.2f}"
        )
    r = refresh
    print(
        f"refresh (60 files, dupe 5, one changed): {r['refresh']:.1f} s, {r['rebuilt']} of "
        f"{r['units']} units rebuilt; full build {r['full']:.1f} s with the tokenizer given "
        f"({r['refresh'] / r['full']:.0%}), {r['full_trained']:.1f} s training it "
        f"({r['refresh'] / r['full_trained']:.0%}); kept records {r['kept_mb']:.0f} MB beside "
        f"{r['shards_mb']:.0f} MB of shards"
    )


if __name__ == "__main__":
    main()
