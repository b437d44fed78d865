"""`make bench`: every benchmark of the project, one after another, in one process each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "masking.py",
    "instances.py",
    "loader.py",
    "end_to_end.py",
    "mixing.py",
    "beam.py",
    "sentences.py",
    "formats.py",
    "merge.py",
    "large.py",
    "floor.py",
    "peers.py",
    "ratios.py",
]


def main() -> int:
    """Runs each benchmark script; returns non-zero if one failed."""
    here = Path(__file__).parent
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        failed |= subprocess.call([sys.executable, str(here / name), *sys.argv[1:]]) != 0
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
