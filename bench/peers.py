"""Our build against TF Model Garden's `create_pretraining_data.py`, same books, same tokenizer.

    python bench/peers.py [--books 60] [--dupe 5] [--root DIR] [--keep]
    python bench/peers.py --books 3 --dupe 1                          # a quick check

The first `--books` Gutenberg books (60: 20 MB), read as `lines` by both tools (one sentence
per line, a blank line between documents), the benchmarks' 32k SentencePiece model (or
--spm-model), NSP, 128 tokens, 20 predictions, 15% masked, per-piece masking (Model Garden's
whole-word masking only knows WordPiece's `##`, so ours runs with `--max-n 1 --whole-word
false` too), seed 12345. One run each, one after the other; wall and CPU seconds (user + sys of
the whole process tree) and peak memory of the tree, and the ratio theirs / ours. Both
outputs are counted with tf.data, so a peer that writes nothing is not reported as fast.

Model Garden runs from its PyPI wheel unpacked in a cache outside the repository, with this
venv's python and TensorFlow (see `peer_setup.py`); its `main` loads every document and every
instance into memory before writing one file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import common
import peer_setup

SEED = 12345


def ours_command(books: Path, out: Path, model: Path, dupe: int) -> list[str]:
    """Our build of the books with Model Garden's settings."""
    return [str(common.CLI), "build", str(books), "-o", str(out), "--spm-model", str(model)] + [
        "--input-format=lines",
        f"--dupe-factor={dupe}",
        "--sentence-task=nsp",
        "--max-seq-length=128",
        "--max-predictions-per-seq=20",
        "--mask-ratio=0.15",
        "--max-n=1",
        "--whole-word=false",
        f"--seed={SEED}",
        "--json",
    ]


def theirs_command(books: Path, out: Path, model: Path, dupe: int) -> list[str]:
    """Model Garden's script on the same books (run with `peer_setup.model_garden_env`)."""
    return [sys.executable, "-m", peer_setup.SCRIPT, f"--input_file={books}/*.txt"] + [
        f"--output_file={out}",
        "--tokenization=SentencePiece",
        f"--sp_model_file={model}",
        "--do_lower_case=false",
        "--max_seq_length=128",
        "--max_predictions_per_seq=20",
        "--masked_lm_prob=0.15",
        f"--dupe_factor={dupe}",
        f"--random_seed={SEED}",
    ]


def count_records(pattern: str) -> int:
    """Records in the TFRecord files matching `pattern` (0 if none)."""
    os.environ.update(peer_setup.tf_env())
    import tensorflow as tf

    files = tf.io.gfile.glob(pattern)
    if not files:
        return 0
    dataset = tf.data.TFRecordDataset(files)
    return int(dataset.reduce(0, lambda count, _: count + 1))


def parse_options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--books", type=int, default=common.BOOKS, help="the first N books")
    parser.add_argument("--dupe", type=int, default=5, help="dupe factor of both tools")
    parser.add_argument("--spm-model", type=Path, help="default: the benchmarks' 32k model")
    parser.add_argument("--model-garden", default=peer_setup.MODEL_GARDEN, help="its version")
    parser.add_argument("--cache", type=Path, default=peer_setup.CACHE, help="for its wheel")
    parser.add_argument("--root", type=Path, help="where the books and outputs go")
    parser.add_argument("--keep", action="store_true", help="keep the root folder")
    options, _ = parser.parse_known_args()  # `make bench` passes every script the same flags
    return options


def row(name: str, usage: common.Usage, records: int) -> str:
    """One tool's run as a table row."""
    return (
        f"| {name} | {usage.wall:.1f} | {usage.cpu:.1f} | {usage.peak:.0f} | {records:,} | "
        f"{records / usage.wall:,.0f} |"
    )


def report(
    title: str, version: str, ours: common.Usage, theirs: common.Usage, records: list[int]
) -> None:
    """The table and the ratios theirs / ours (`records`: ours, theirs)."""
    our_records, their_records = records
    print(title)
    print("| tool | wall s | CPU s | peak MB | records | records/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(row("make-pretrain-records", ours, our_records))
    print(row(f"Model Garden {version}", theirs, their_records))
    print(
        f"theirs / ours: wall {theirs.wall / ours.wall:.2f}x, CPU {theirs.cpu / ours.cpu:.2f}x, "
        f"peak memory {theirs.peak / ours.peak:.2f}x"
    )


def main() -> None:
    options = parse_options()
    root = options.root or Path(tempfile.mkdtemp(prefix="mpr-peers-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        unpacked = peer_setup.model_garden(options.model_garden, options.cache)
        model = options.spm_model or common.tokenizer(root)
        books = peer_setup.first_books(root, options.books)
        size = sum(path.stat().st_size for path in books.iterdir())
        out, their_file = root / "ours", root / "model-garden" / "records.tfrecord"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(their_file.parent, ignore_errors=True)
        their_file.parent.mkdir()
        ours_run = ours_command(books, out, model, options.dupe)
        theirs_run = theirs_command(books, their_file, model, options.dupe)
        our_env = peer_setup.tf_env()
        their_env = {**our_env, **peer_setup.model_garden_env(unpacked, options.cache)}
        ours = common.measured(ours_run, peer_setup.run_env(our_env))
        theirs = common.measured(theirs_run, peer_setup.run_env(their_env))
        summary = json.loads(ours.stdout.strip().splitlines()[-1])
        our_records = count_records(summary["input_path"])
        their_records = count_records(str(their_file))
        if their_records == 0 or our_records != summary["records"]:
            raise SystemExit(f"records: ours {our_records} ({summary}), theirs {their_records}")
        title = (
            f"the first {options.books} Gutenberg books ({size / 1e6:.1f} MB, `lines`), "
            f"dupe {options.dupe}, NSP, 128 tokens, one run each"
        )
        report(title, options.model_garden, ours, theirs, [our_records, their_records])
        print("commands (our output folder must not exist):")
        print("  ours:  ", f"rm -rf {out} &&", peer_setup.shell_line(ours_run, our_env))
        print("  theirs:", peer_setup.shell_line(theirs_run, their_env))
        if not options.keep and not options.root:
            print("  (their files were in a temporary folder: --root DIR --keep keeps them)")
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
