"""Beam: the same build on the local executors and on Beam's FnApiRunner, 1 and 2 workers.

Input: all of NSMC as one 64 MB JSONL file (16 units of 4 MB), dupe factor 1, 128 tokens, the
benchmarks' 32k tokenizer given. Beam's units are the local units, so every run must give the
same shards (checked). FnApiRunner's multi-process mode is Beam's in-machine scaling.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import common


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus, model = common.nsmc(root), common.tokenizer(root)
        size = corpus.stat().st_size
        rows, digests = [], set()
        for runner, workers in (("local", 1), ("local", 2), ("direct", 1), ("direct", 2)):
            out = root / "out"
            command = [str(common.CLI), "build", str(corpus), "-o", str(out)]
            command += ["--spm-model", str(model), "--input-format", "jsonl", "--language", "ko"]
            command += ["--dupe-factor", "1", "-q", "--runner", runner, "--workers", str(workers)]
            seconds, peak = common.median_runs(
                command, args.repeats, lambda out=out: shutil.rmtree(out, ignore_errors=True)
            )
            digests.add(common.shard_digest(out))
            rows.append((runner, workers, seconds, peak))
    print(f"beam: one {size / 1e6:.0f} MB JSONL file (NSMC), dupe 1, 128 tokens")
    print(f"{'runner':8} {'workers':>7} {'wall s':>8} {'MB/s':>6} {'x local 1':>10} {'peak MB':>8}")
    base = rows[0][2]
    for runner, workers, seconds, peak in rows:
        print(
            f"{runner:8} {workers:7d} {seconds:8.1f} {size / 1e6 / seconds:6.2f} "
            f"{base / seconds:10.2f} {peak:8.0f}"
        )
    print("identical shards across runners and workers:", len(digests) == 1)
    sys.exit(0 if len(digests) == 1 else 1)


if __name__ == "__main__":
    main()
