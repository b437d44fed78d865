"""The merge alone: kept runs of a realistic size into shards, timed, with peak memory and reads.

Runs of synthetic records of 866-996 bytes (the size of a 128-token record's TFRecord frame
with static masks; random bytes, not real frames: the merge never looks inside) are written
once, as a build's units keep them: `--runs` runs holding `--gb` GB of records in all. Each
merge runs in a process of its own: "s" is the merge call, from opening the runs to the last
shard's fsync; "CPU s" the whole process's user + system time; "peak MB" its maximum resident
memory. Opens and reads of run files are counted at `storage.RandomReader`. "gs:// requests"
is what the merge costs on GCS (a metadata request per open, a ranged GET per read): predicted
from the runs' sizes (the new merge's count is checked exactly against a GCS API server by
tests/test_merge.py), or measured with `--gcs`, which puts the runs on a GCS API server on
localhost (tests/gcs_emulator.py; it answers one request at a time, so its times say nothing
of GCS's). The last line gives the requests of a merge of the 1 GB benchmark build's shape.

With `--baseline DIR`, a checkout of the tool before the change (e.g. `git worktree add DIR
HEAD`), its pipeline/merge.py and runs.py are timed too, on the same records in its own run
format; both merges must give identical shards.

    python bench/merge.py [--gb 2] [--runs 248] [--shards auto] [--compression none]
                          [--repeats 1] [--baseline DIR] [--gcs] [--work DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RECORD_BYTES = (16 + 850, 16 + 980)


def load_modules(root: Path | None) -> tuple[ModuleType, ModuleType]:
    """(runs, merge) of this checkout, or of the one at `root` (its merge importing its runs)."""
    from pretrain_records.pipeline.records import merge, runs

    if root is None:
        return runs, merge
    modules = []
    # The baseline is a checkout of the flat layout (pipeline/runs.py): its modules import
    # pretrain_records.pipeline.{runs,errors,testhooks}, given here for the time of the load.
    key = "pretrain_records.pipeline.runs"
    saved = sys.modules.get(key)
    for name in ("errors", "testhooks"):
        sys.modules.setdefault(
            f"pretrain_records.pipeline.{name}",
            importlib.import_module(f"pretrain_records.pipeline.ground.{name}"),
        )
    try:
        for name in ("runs", "merge"):
            spec = importlib.util.spec_from_file_location(
                f"baseline_{name}", root / "pipeline" / f"{name}.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # dataclasses look their module up there
            spec.loader.exec_module(module)
            modules.append(module)
            if name == "runs":
                sys.modules[key] = module
    finally:
        if saved is None:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = saved
    return modules[0], modules[1]


def write_runs(folder: Path, runs_module: ModuleType, count: int, total: int) -> list[dict]:
    """`count` runs of about total / count bytes of records each; the same records (seeded by
    the run's index) whatever the run format."""
    from pretrain_records.pipeline.ground.hashing import record_keys  # both trees: one hash

    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for unit in range(count):
        rng = np.random.default_rng(unit)
        lengths = rng.integers(*RECORD_BYTES, total // count // sum(RECORD_BYTES) * 2)
        ends = np.cumsum(lengths)
        payload = rng.integers(0, 64, int(ends[-1]), np.uint8).tobytes()  # compressible a bit
        records = [
            payload[a:b] for a, b in zip((ends - lengths).tolist(), ends.tolist(), strict=True)
        ]
        ordinals = np.arange(len(records), dtype=np.uint64)
        keys = record_keys(1000 + unit, ordinals)
        pieces = np.zeros(len(records), np.uint32)
        path = folder / f"run-{unit}.bin"
        runs_module.write_run(str(path), keys, ordinals.astype(np.uint32), pieces, records)
        made.append(
            {"path": str(path), "unit": unit, "records": len(records), "bytes": len(payload)}
        )
    return made


def child(arguments: argparse.Namespace) -> None:
    """One merge, in this process: prints its seconds, shard digest and read counts as JSON."""
    from pretrain_records.pipeline import storage
    from pretrain_records.pipeline.storage import gcs

    runs_module, merge_module = load_modules(arguments.baseline)
    made = json.loads(Path(arguments.child, "runs.json").read_text())
    counts = {"opens": 0, "reads": 0, "read_bytes": 0}
    opened, read = storage.RandomReader.__init__, storage.RandomReader.read

    def counted_open(self, path):
        counts["opens"] += 1
        opened(self, path)

    def counted_read(self, offset, count):
        counts["reads"] += int(count > 0)
        counts["read_bytes"] += int(count)
        return read(self, offset, count)

    storage.RandomReader.__init__, storage.RandomReader.read = counted_open, counted_read
    out = Path(arguments.out)
    total_bytes = sum(run["bytes"] for run in made)
    shards = merge_module.shard_count(arguments.shards, total_bytes)
    start = time.perf_counter()
    entries, _ = merge_module.merge(
        [merge_module.Run(run["path"], run["unit"]) for run in made],
        sum(run["records"] for run in made),
        total_bytes,
        shards,
        arguments.compression,
        lambda name: str(out / name.replace("/", "__")),
    )
    seconds = time.perf_counter() - start
    digest = hashlib.sha256("".join(str(e["sha256"]) for e in entries).encode()).hexdigest()
    requests = sum(gcs.requests().values())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "digest": digest[:12],
                "shards": shards,
                **counts,
                "gcs_requests": requests,
            }
        )
    )


def timed(arguments: argparse.Namespace, runs_dir: Path, baseline: Path | None) -> dict:
    """One merge in a child process: its report and its peak resident MB."""
    out = Path(tempfile.mkdtemp(prefix="shards-", dir=arguments.work))
    command = [sys.executable, __file__, "--child", str(runs_dir), "--out", str(out)]
    command += ["--shards", str(arguments.shards), "--compression", arguments.compression]
    command += ["--baseline", str(baseline)] if baseline else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read() if process.stdout else b""
    process.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(out)
    if process.returncode != 0:
        raise RuntimeError(f"{command} failed")
    cpu = usage.ru_utime + usage.ru_stime  # the whole process: start-up included
    return {**json.loads(output), "peak_mb": usage.ru_maxrss / 1024, "cpu": cpu}


def new_requests(made: list[dict]) -> int:
    """The new merge's requests on gs://, as tests/test_merge.py measures them: per run, a
    metadata request and a read of its header, then its index and its records in blocks (half
    the local ones: each stream holds the block it reads ahead)."""
    from pretrain_records.pipeline.records import merge, runs

    block, index_block = merge.read_blocks(len(made), remote=True)
    index_block = index_block // runs.INDEX_BYTES * runs.INDEX_BYTES
    return sum(
        2
        + math.ceil(runs.INDEX_BYTES * run["records"] / index_block)
        + math.ceil(run["bytes"] / block)
        for run in made
    )


def old_requests(runs: int, record_bytes: float) -> int:
    """The merge before this change on gs://: each run opened (a metadata request) and read 3
    times for its index, then for each bucket of 64 MiB of records opened again and read 6
    times (every run has records in every bucket of a build this size)."""
    buckets = math.ceil(record_bytes / (64 << 20))
    return runs * (1 + 3) + runs * buckets * (1 + 6)


def predicted_requests(runs: int, records: int, record_bytes: float) -> tuple[int, int]:
    """(new, old) requests of a build of this shape, its runs of equal size."""
    run = {"records": records // runs, "bytes": int(record_bytes / runs)}
    return new_requests([run] * runs), old_requests(runs, record_bytes)


def upload(made: list[dict], bucket: str, name: str) -> list[dict]:
    """The runs copied to gs://BUCKET/NAME/, as they would be kept under a gs:// output."""
    from pretrain_records.pipeline import storage

    moved = []
    for run in made:
        path = f"{bucket}/{name}/{Path(run['path']).name}"
        storage.write_bytes(path, Path(run["path"]).read_bytes())
        moved.append({**run, "path": path})
    return moved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=2.0, help="GB of records in all")
    parser.add_argument("--runs", type=int, default=248, help="number of runs (units)")
    parser.add_argument("--shards", default="auto")
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "zlib"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", type=Path, help="a checkout of the tool to compare with")
    parser.add_argument("--work", type=Path, help="folder for runs and shards (default: /tmp)")
    parser.add_argument(
        "--gcs", action="store_true", help="read the runs from a GCS API server on localhost"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
        return
    arguments.work = Path(tempfile.mkdtemp(prefix="bench-merge-", dir=arguments.work))
    emulator = None
    try:
        if arguments.gcs:
            emulator, bucket = start_emulator(arguments.work)
        tools = [("this", None)] + (
            [("baseline", arguments.baseline)] if arguments.baseline else []
        )
        rows, made = [], []
        for name, root in tools:
            runs_dir = arguments.work / f"runs-{name}"
            runs_module, _ = load_modules(root)
            made = write_runs(runs_dir, runs_module, arguments.runs, int(arguments.gb * 1e9))
            if arguments.gcs:
                made = upload(made, bucket, name)
            (runs_dir / "runs.json").write_text(json.dumps(made))
            for _ in range(arguments.repeats):
                rows.append((name, timed(arguments, runs_dir, root)))
        print_table(arguments, made, rows)
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait()
        shutil.rmtree(arguments.work, ignore_errors=True)


def start_emulator(work: Path) -> tuple[subprocess.Popen, str]:
    """tests/gcs_emulator.py's server, STORAGE_EMULATOR_HOST set for the merges, and a bucket."""
    sys.path.insert(0, str(REPO))
    from pretrain_records.pipeline.storage import gcs

    from tests import gcs_emulator

    url, process = gcs_emulator._start(work / "emulator.log")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    gcs.client().create_bucket("bench-merge", project="bench")
    return process, "gs://bench-merge"


def print_table(arguments: argparse.Namespace, made: list[dict], rows: list) -> None:
    records = sum(run["bytes"] for run in made)
    print(
        f"{records / 1e9:.2f} GB of records ({sum(r['records'] for r in made):,}) in "
        f"{len(made)} runs{' on gs://' if arguments.gcs else ''}, {rows[0][1]['shards']} "
        f"shards, compression {arguments.compression}\n"
    )
    what = "measured" if arguments.gcs else "predicted"
    print(
        "| merge | s | MB/s | CPU s | peak MB | opens | reads | MB read "
        f"| gs:// requests ({what}) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in rows:
        if arguments.gcs:
            requests = r["gcs_requests"]
        elif name == "baseline":
            requests = old_requests(len(made), records)
        else:
            requests = new_requests(made)
        print(
            f"| {name} | {r['seconds']:.2f} | {records / 1e6 / r['seconds']:.0f} | "
            f"{r['cpu']:.1f} | "
            f"{r['peak_mb']:.0f} | {r['opens']:,} | {r['reads']:,} | "
            f"{r['read_bytes'] / 1e6:.0f} | {requests:,} |"
        )
    digests = {r["digest"] for _, r in rows}
    print(f"\nidentical shards: {len(digests) == 1} ({', '.join(sorted(digests))})")
    new, old = predicted_requests(248, 9_300_000, 8.5e9)
    print(
        "gs:// requests of the 1 GB benchmark build's merge (248 runs, 9.3M records, 8.5 GB): "
        f"{new:,} (before: {old:,})"
    )


if __name__ == "__main__":
    main()
