"""End-to-end build speed and memory against the floor, on a fixed slice of ../shared/corpora/bench.

Slice: the first Gutenberg books (sorted by name) up to 5.5 MB of text, the size of the peers'
measured run (Model Garden 68-103 s, ALBERT 292 s at 128 tokens, dupe factor 5), plus the first
2,000 NSMC documents (Korean JSONL). One SentencePiece model (32k) is trained once and given to
every build, so the table measures the build itself.

The floor, measured in the same run: `import tensorflow` plus SentencePiece encoding of the same
text with the same model on both cores. The two formats are two build commands, so two
processes each importing TensorFlow; the table gives the ratio to the floor with one import
("x floor") and with one import per build command ("x floor/cmd").
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "bench"
CLI = Path(sys.executable).with_name("make-pretrain-records")
ENGLISH_BYTES = 5_500_000
KOREAN_DOCUMENTS = 2_000


def make_slice(root: Path, scale: int = 1) -> tuple[Path, Path, int]:
    """Writes the English slice (text files) and the Korean slice (JSONL); returns sizes."""
    english = root / f"en-x{scale}"
    english.mkdir()
    total = 0
    for book in sorted((CORPORA / "gutenberg_en").glob("*.txt.gz")):
        text = gzip.decompress(book.read_bytes())
        for copy in range(scale):
            (english / f"{copy}-{book.name[:-3]}").write_bytes(text)
        total += len(text) * scale
        if total >= ENGLISH_BYTES * scale:
            break
    korean = root / f"ko-x{scale}.jsonl"
    with gzip.open(CORPORA / "nsmc_movies.jsonl.gz", "rt", encoding="utf-8") as source:
        lines = [next(source) for _ in range(KOREAN_DOCUMENTS)]
    korean.write_text("".join(lines * scale), encoding="utf-8")
    if scale == 1:  # plain text of the Korean slice, for training the tokenizer on both
        texts = [json.loads(line)["text"] for line in lines]
        (english / "zz-korean.txt").write_text("\n\n".join(texts), encoding="utf-8")
    return english, korean, total + korean.stat().st_size


def train_tokenizer_command(text_dir: Path, prefix: Path) -> list[str]:
    """The CLI call training the benchmarks' 32k SentencePiece model on `text` files."""
    return [
        str(CLI),
        "train-tokenizer",
        str(text_dir),
        "-o",
        str(prefix),
        "--vocab-size",
        "32000",
        "--input-format",
        "text",
    ]


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB of the child) of a command."""
    code = (
        "import resource, subprocess, sys, time;"
        f"t = time.perf_counter(); subprocess.run({command!r}, check=True,"
        " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL);"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, kb = out.stdout.split()
    return float(seconds), float(kb) / 1024


def _encode_chunk(args: tuple[str, list[str]]) -> int:
    import sentencepiece as spm

    model, lines = args
    sp = spm.SentencePieceProcessor(model_file=model)
    return sum(len(ids) for ids in sp.encode(lines, num_threads=1))


def import_seconds() -> float:
    """Wall time of `python -c 'import tensorflow'` (best of 3)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import tensorflow"], check=True, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - start)
    return min(times)


def encode_seconds(model: str, english: Path, korean: Path) -> float:
    """SentencePiece encoding of the slice's text (lines) on both cores."""
    lines = []
    for path in sorted(english.iterdir()):
        lines += [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line]
    for line in korean.read_text(encoding="utf-8").splitlines():
        lines += json.loads(line)["text"].splitlines()
    chunks = [(model, lines[i::2]) for i in range(2)]
    start = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        pool.map(_encode_chunk, chunks)
    return time.perf_counter() - start


def big_file(root: Path, model: str) -> tuple[int, float, float, int]:
    """One big JSONL file (the whole NSMC set, one work unit) built at dupe factor 1:
    (its bytes, seconds, peak MB, records)."""
    big = root / "nsmc.jsonl"
    with gzip.open(CORPORA / "nsmc_movies.jsonl.gz", "rb") as source:
        big.write_bytes(source.read())
    out = root / "big"
    seconds, peak = timed(
        [str(CLI), "build", str(big), "-o", str(out), "--spm-model", model]
        + ["--input-format", "jsonl", "--language", "ko", "-q"]
    )
    records = json.loads((out / "manifest.json").read_text())["totals"]["records"]
    return big.stat().st_size, seconds, peak, records


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        english, korean, size = make_slice(root)
        english4, korean4, size4 = make_slice(root, scale=4)
        prefix = root / "spm"
        seconds_tok, _ = timed(train_tokenizer_command(english, prefix))
        (english / "zz-korean.txt").unlink()
        model = f"{prefix}.model"
        imports = import_seconds()
        encoding = {1: encode_seconds(model, english, korean)}
        encoding[4] = encode_seconds(model, english4, korean4)
        rows = []
        for label, inputs, nbytes, dupe, workers in [
            ("x1, dupe 1", (english, korean), size, 1, 1),
            ("x1, dupe 5", (english, korean), size, 5, 1),
            ("x4, dupe 1", (english4, korean4), size4, 1, 1),
            ("x4, dupe 1, 2 workers", (english4, korean4), size4, 1, 2),
        ]:
            out = root / "out"
            shutil.rmtree(out, ignore_errors=True)
            seconds = peak = 0.0
            records = 0
            for fmt, path in (("text", inputs[0]), ("jsonl", inputs[1])):
                sub = out / fmt
                s, p = timed(
                    [
                        str(CLI),
                        "build",
                        str(path),
                        "-o",
                        str(sub),
                        "--spm-model",
                        model,
                        "--input-format",
                        fmt,
                        "--dupe-factor",
                        str(dupe),
                        "--language",
                        "en" if fmt == "text" else "ko",
                        "-q",
                        "--workers",
                        str(workers),
                    ]
                )
                seconds += s
                peak = max(peak, p)
                records += json.loads((sub / "manifest.json").read_text())["totals"]["records"]
            rows.append(
                (
                    label,
                    seconds,
                    records,
                    nbytes,
                    peak,
                    encoding[1 if label.startswith("x1") else 4],
                )
            )
        big = big_file(root, model)
    print(
        f"end to end: {size / 1e6:.1f} MB slice (English books + Korean JSONL), 128 tokens, "
        f"{multiprocessing.cpu_count()} cores; tokenizer training (once): {seconds_tok:.1f} s"
    )
    print(
        f"floor: import tensorflow {imports:.1f} s + SentencePiece encoding on 2 cores "
        f"{encoding[1]:.1f} s (x1) / {encoding[4]:.1f} s (x4) = {imports + encoding[1]:.1f} s (x1)"
    )
    print(
        f"{'':22} {'wall s':>8} {'records':>9} {'inst/s':>8} {'MB/s':>6} {'peak MB':>8} "
        f"{'x floor':>8} {'x floor/cmd':>12}"
    )
    for label, seconds, records, nbytes, peak, encode in rows:
        floor, floor_per_command = imports + encode, 2 * imports + encode
        print(
            f"{label:22} {seconds:8.1f} {records:9d} {records / seconds:8.0f} "
            f"{nbytes / 1e6 / seconds:6.2f} {peak:8.0f} {seconds / floor:8.2f} "
            f"{seconds / floor_per_command:12.2f}"
        )
    big_bytes, seconds, peak, records = big
    print(
        f"one {big_bytes / 1e6:.1f} MB JSONL file (all of NSMC), dupe 1: {seconds:.1f} s, "
        f"{big_bytes / 1e6 / seconds:.2f} MB/s, {records / seconds:.0f} inst/s, peak {peak:.0f} MB"
    )
    x1 = next(r for r in rows if r[0] == "x1, dupe 1")
    x4 = next(r for r in rows if r[0] == "x4, dupe 1")
    print(f"peak RSS x4 / x1 corpus: {x4[4] / x1[4]:.2f} (flat: within 1.15)")


if __name__ == "__main__":
    main()
