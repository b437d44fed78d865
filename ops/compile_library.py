"""Compiles the op library with g++ against the installed TensorFlow.

The library, _pretrain_records_ops.so, holds the MakeInstances, NgramMask and EncodeExamples ops.

Run as ``python -m pretrain_records.ops.compile_library`` (``make ops`` does). Flags come from
``tf.sysconfig``; the translation units compile in parallel. A stamp file beside
the library records the TensorFlow version and a hash of the sources, so the loader can
tell a stale build from a current one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CC = HERE / "cc"
LIBRARY = HERE / "_pretrain_records_ops.so"
STAMP = HERE / "_pretrain_records_ops.stamp.json"
CORE_SOURCES = [
    "core/ngram_masker.cc",
    "core/example_encoder.cc",
    "core/instance_maker.cc",
]
TF_SOURCES = [
    "kernels/ngram_mask_kernel.cc",
    "ops/ngram_mask_op.cc",
    "kernels/encode_examples_kernel.cc",
    "ops/encode_examples_op.cc",
    "kernels/make_instances_kernel.cc",
    "ops/make_instances_op.cc",
]
HEADERS = [
    "core/ngram_masker.h",
    "core/ngram_masker_impl.h",
    "core/example_encoder.h",
    "core/instance_maker.h",
    "core/row_random.h",
]
OPTIMIZE = ["-O3", "-fPIC", "-Wall", "-DNDEBUG"]


def sources_digest(cc_dir: Path = CC) -> str:
    """Returns the sha256 of every source and header the library is built from."""
    digest = hashlib.sha256()
    for name in sorted(CORE_SOURCES + TF_SOURCES + HEADERS):
        digest.update(name.encode())
        digest.update((cc_dir / name).read_bytes())
    return digest.hexdigest()


def _tf_flags() -> tuple[list[str], list[str], str]:
    import tensorflow as tf

    return tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags(), tf.__version__


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"build failed: {' '.join(command[:4])} ...")


def compile_library(force: bool = False, cxx: str = "g++") -> Path:
    """Compiles and links the op library unless an up-to-date one exists."""
    compile_flags, link_flags, tf_version = _tf_flags()
    stamp = {"tensorflow": tf_version, "sources_sha256": sources_digest()}
    if not force and LIBRARY.exists() and STAMP.exists():
        if json.loads(STAMP.read_text()) == stamp:
            print(f"{LIBRARY.name} is up to date")
            return LIBRARY
    with tempfile.TemporaryDirectory(prefix="ngram_mask_build_") as tmp:
        jobs = []
        for source in CORE_SOURCES + TF_SOURCES:
            obj = Path(tmp) / (Path(source).stem + ".o")
            jobs.append(
                ([cxx, "-c", str(CC / source), "-o", str(obj), *compile_flags, *OPTIMIZE], obj)
            )
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(_run, [command for command, _ in jobs]))
        partial = LIBRARY.with_suffix(".so.partial")
        _run(
            [cxx, "-shared", "-o", str(partial), *(str(obj) for _, obj in jobs), *link_flags, "-O3"]
        )
        os.replace(partial, LIBRARY)
    STAMP.write_text(json.dumps(stamp, indent=2) + "\n")
    print(f"built {LIBRARY} against TensorFlow {tf_version}")
    return LIBRARY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "g++"), help="C++ compiler")
    args = parser.parse_args()
    compile_library(force=args.force, cxx=args.cxx)


if __name__ == "__main__":
    main()
