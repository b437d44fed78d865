"""Loader throughput (examples per second), static records vs dynamic masking, one run.

Records: 128-token SOP instances built by the CLI from the Korean NSMC sample (`tests/data`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import tensorflow as tf
from pretrain_records.pipeline.readback.loader import load_dataset

CORPUS = common.SAMPLES / "ko" / "nsmc_reviews_sample.txt"
CLI = Path(sys.executable).with_name("make-pretrain-records")
BATCH = 64


def build(out: Path, *extra: str) -> None:
    subprocess.run(
        [
            str(CLI),
            "build",
            str(CORPUS),
            "-o",
            str(out),
            "--language",
            "ko",
            "-q",
            "--dupe-factor",
            "1",
            *extra,
        ],
        check=True,
    )


def examples_per_second(path: Path, batches: int = 300, repeats: int = 3) -> float:
    best = 0.0
    for _ in range(repeats):
        ds = load_dataset(str(path), BATCH, seed=1)
        iterator = iter(ds)
        next(iterator)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        best = max(best, batches * BATCH / (time.perf_counter() - start))
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root / "static", "--vocab-size", "8000")
        model = str(root / "static" / "spm.model")
        build(root / "dynamic", "--spm-model", model, "--masking", "dynamic")
        static = examples_per_second(root / "static")
        dynamic = examples_per_second(root / "dynamic")
    print(f"loader, batch {BATCH}, L=128, P=20, {tf.__version__}: examples per second (best of 3)")
    print(f"  static records             {static:10.0f}")
    print(f"  dynamic masking (NgramMask) {dynamic:9.0f}")
    print(
        f"  dynamic / static: {dynamic / static:.3f} (cost of dynamic masking: "
        f"{(1 - dynamic / static) * 100:.1f}% of throughput; target < 10%)"
    )


if __name__ == "__main__":
    main()
