"""Beam throughput: the same build on the local runner and on Beam's FnApiRunner, 1 and 2 workers.

Input: the English Gutenberg slice of bench/end_to_end.py, twice (about 11 MB of books, 128
tokens, dupe factor 2). Every run must give the same shards (checked).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from end_to_end import CLI, make_slice, train_tokenizer_command


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        english, _, _ = make_slice(root, scale=2)
        size = sum(p.stat().st_size for p in english.iterdir())
        prefix = root / "spm"
        subprocess.run(
            train_tokenizer_command(english, prefix), check=True, stderr=subprocess.DEVNULL
        )
        rows, digests = [], set()
        for runner, workers in (("local", 1), ("local", 2), ("direct", 1), ("direct", 2)):
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            subprocess.run(
                [
                    str(CLI),
                    "build",
                    str(english),
                    "-o",
                    str(out),
                    "--spm-model",
                    f"{prefix}.model",
                    "--input-format",
                    "text",
                    "--dupe-factor",
                    "2",
                    "-q",
                    "--runner",
                    runner,
                    "--workers",
                    str(workers),
                ],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            seconds = time.perf_counter() - start
            digest = hashlib.sha256()
            for shard in sorted(out.glob("train-*")):
                digest.update(shard.read_bytes())
            digests.add(digest.hexdigest())
            rows.append((runner, workers, seconds))
    print(f"beam: {size / 1e6:.1f} MB of English books, dupe 2, 128 tokens")
    print(f"{'runner':8} {'workers':>7} {'wall s':>8} {'MB/s':>6} {'x local 1':>10}")
    base = rows[0][2]
    for runner, workers, seconds in rows:
        print(
            f"{runner:8} {workers:7d} {seconds:8.1f} {size / 1e6 / seconds:6.2f} "
            f"{base / seconds:10.2f}"
        )
    print("identical shards across runners and workers:", len(digests) == 1)
    sys.exit(0 if len(digests) == 1 else 1)


if __name__ == "__main__":
    main()
