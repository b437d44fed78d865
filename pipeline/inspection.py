"""Reading a build back: decoded examples, statistics (mixing included), verification."""

from __future__ import annotations

import collections
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.errors import DataError
from pretrain_records.pipeline.merge import PROVENANCE_ENTRY
from pretrain_records.pipeline.schema import COMPRESSION, feature_names


def _locate(path: str) -> tuple[str, dict[str, Any], list[str]]:
    """(output dir, manifest, shard paths) for an output directory or one of its shards."""
    if storage.isdir(path):
        manifest = manifest_lib.read(path)
        return (
            path,
            manifest,
            [manifest_lib.safe_member(path, s["name"]) for s in manifest["shards"]],
        )
    directory = path.rsplit("/", 1)[0] if "/" in path else "."
    return directory, manifest_lib.read(directory), [path]


def _examples(manifest: dict[str, Any], shards: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Parsed records shard by shard; a shard that cannot be read is a DataError naming it."""
    import tensorflow as tf
    from pretrain_records.pipeline import features

    spec = features.parse_spec(manifest["features"])
    compression = COMPRESSION[manifest["config"]["compression"]]
    for shard in shards:
        records = tf.data.TFRecordDataset(shard, compression_type=compression)
        parsed = records.map(lambda r: tf.io.parse_single_example(r, spec))
        try:
            for example in parsed.as_numpy_iterator():
                yield _canonical(example)
        except tf.errors.OpError as error:
            first = error.message.strip().splitlines()[0] if error.message.strip() else ""
            raise DataError(f"{shard}: unreadable ({first})") from None


def _canonical(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Written names (v1 or v2) -> our canonical ones."""
    renamed = {written: ours for ours, written in feature_names("v2").items()}
    return {renamed.get(k, k): v for k, v in example.items()}


def show_examples(path: str, count: int) -> Iterator[str]:
    """Decoded examples: pieces, `[[shown|original]]` where masked, segments, label."""
    from pretrain_records.pipeline.tokenize import Tokenizer

    directory, manifest, shards = _locate(path)
    model = manifest_lib.safe_member(directory, manifest["tokenizer"]["file"])
    tokenizer = Tokenizer(storage.read_bytes(model), name=model)
    task = manifest["config"]["sentence_task"]
    meanings = {"nsp": ("actual next", "random B"), "sop": ("in order", "swapped"), "none": "--"}
    if count == 0:
        return
    for number, example in enumerate(_examples(manifest, shards)):
        length = int(example["input_mask"].sum())
        originals: dict[int, int] = {}
        if "masked_lm_positions" in example:
            for p, label, w in zip(
                example["masked_lm_positions"],
                example["masked_lm_ids"],
                example["masked_lm_weights"],
                strict=True,
            ):
                if w > 0:
                    originals[int(p)] = int(label)
        shown = []
        for t, piece in enumerate(tokenizer.decode_pieces(example["input_ids"][:length])):
            if t in originals:
                shown.append(f"[[{piece}|{tokenizer.processor.id_to_piece(originals[t])}]]")
            else:
                shown.append(piece)
        label = int(example["next_sentence_labels"][0])
        yield (
            f"--- example {number}: {length} tokens, {len(originals)} masked, "
            f"{task} label {label} ({meanings[task][label]})\n" + " ".join(shown)
        )
        if number + 1 >= count:
            return


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of maximal runs of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def collect_stats(path: str, sample: int = 256) -> dict[str, Any]:
    """Length histogram, masked share, span lengths (words, tokens), label balance, mixing."""
    directory, manifest, shards = _locate(path)
    length = manifest["config"]["max_seq_length"]
    bins = np.linspace(0, length, 9).astype(int)
    lengths, labels = [], collections.Counter()
    span_tokens, span_words = collections.Counter(), collections.Counter()
    masked = real = 0
    for example in _examples(manifest, shards):
        n = int(example["input_mask"].sum())
        lengths.append(n)
        real += n
        labels[int(example["next_sentence_labels"][0])] += 1
        if "masked_lm_positions" in example:
            positions = example["masked_lm_positions"][example["masked_lm_weights"] > 0]
            masked += len(positions)
            chosen = np.zeros(length, bool)
            chosen[positions] = True
            for start, size in _runs(chosen):
                span_tokens[size] += 1
                starts = example["token_boundary"][start : start + size]
                span_words[max(1, int(starts.sum()))] += 1
    histogram, _ = np.histogram(lengths, bins=bins)
    stats = {
        "records": len(lengths),
        "length_bins": bins.tolist(),
        "length_histogram": histogram.tolist(),
        "mean_length": float(np.mean(lengths)) if lengths else 0.0,
        "masked_share": masked / real if real else 0.0,
        "span_tokens": dict(sorted(span_tokens.items())),
        "span_words": dict(sorted(span_words.items())),
        "labels": dict(sorted(labels.items())),
    }
    if storage.isdir(path):
        stats["mixing"] = mixing(directory, manifest, sample)
    return stats


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as Spearman's correlation wants them)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + ends - 1) / 2.0)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (0 when either side is constant)."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def provenance(directory: str, manifest: dict[str, Any]) -> list[np.ndarray]:
    """Per shard, the input file index of each record (files in the manifest's input order)."""
    files = {entry["path"]: i for i, entry in enumerate(manifest.get("inputs", []))}
    pieces = [[files[p[0]] for p in unit["pieces"]] for unit in manifest["units"]]
    path = manifest_lib.safe_member(directory, manifest_lib.PROVENANCE)
    data = np.frombuffer(storage.read_bytes(path), "<u4").reshape(-1, PROVENANCE_ENTRY.size // 4)
    offsets = np.cumsum([0] + [s["records"] for s in manifest["shards"]])
    flat = np.array([i for unit in pieces for i in unit] or [0], np.int64)
    first = np.cumsum([0] + [len(unit) for unit in pieces])[:-1].astype(np.int64)
    per_shard = []
    for s in range(len(manifest["shards"])):
        rows = data[offsets[s] : offsets[s + 1]].astype(np.int64)
        per_shard.append(flat[first[rows[:, 0]] + rows[:, 1]])
    return per_shard


def mixing(directory: str, manifest: dict[str, Any], sample: int) -> dict[str, Any]:
    """How well every shard samples the whole corpus: the share of input files present in each
    shard, distinct files among `sample` random records and `sample` consecutive records of
    each shard, and |Spearman(position in shard, file order)|."""
    if not any(f.get("name") == manifest_lib.PROVENANCE for f in manifest.get("files", [])):
        return {}
    files = len(manifest.get("inputs", []))
    rng = np.random.default_rng(0)
    present, random_distinct, window_distinct, correlations = [], [], [], []
    for shard in provenance(directory, manifest):
        present.append(len(np.unique(shard)) / files)
        picked = np.sort(rng.choice(len(shard), min(sample, len(shard)), replace=False))
        random_distinct.append(len(np.unique(shard[picked])))
        start = int(rng.integers(0, max(1, len(shard) - sample + 1)))
        window_distinct.append(len(np.unique(shard[start : start + sample])))
        correlations.append(abs(spearman(np.arange(len(shard)), shard)))
    return {
        "files": files,
        "sample": sample,
        "file_share_per_shard": float(np.mean(present)),
        "distinct_files_in_random_sample": float(np.mean(random_distinct)),
        "distinct_files_in_consecutive_records": float(np.mean(window_distinct)),
        "abs_spearman_position_vs_file_order": float(np.mean(correlations)),
    }


def format_stats(stats: dict[str, Any]) -> str:
    """Human-readable statistics."""
    lines = [f"records: {stats['records']}, mean length {stats['mean_length']:.1f} tokens"]
    lines.append("length histogram (tokens):")
    peak = max(stats["length_histogram"] or [1]) or 1
    edges = stats["length_bins"]
    for i, count in enumerate(stats["length_histogram"]):
        bar = "#" * round(40 * count / peak)
        lines.append(f"  {edges[i]:5d}-{edges[i + 1]:<5d} {count:8d} {bar}")
    lines.append(f"masked share of real tokens: {stats['masked_share']:.4f}")
    for unit in ("words", "tokens"):
        spans = stats[f"span_{unit}"]
        total = sum(spans.values()) or 1
        shares = ", ".join(f"{k}: {v / total:.3f}" for k, v in list(spans.items())[:8])
        lines.append(f"masked run lengths in {unit} (adjacent spans merge): {shares}")
    total = sum(stats["labels"].values()) or 1
    balance = ", ".join(f"{k}: {v} ({v / total:.3f})" for k, v in stats["labels"].items())
    lines.append(f"sentence labels: {balance}")
    mix = stats.get("mixing")
    if mix:
        lines.append(
            f"mixing over {mix['files']} input files (per shard, mean): "
            f"{100 * mix['file_share_per_shard']:.0f}% of the files present; "
            f"{mix['distinct_files_in_random_sample']:.1f} distinct files in {mix['sample']} "
            f"random records, {mix['distinct_files_in_consecutive_records']:.1f} in "
            f"{mix['sample']} consecutive ones; |Spearman(position, file order)| "
            f"{mix['abs_spearman_position_vs_file_order']:.3f}"
        )
    return "\n".join(lines)


def count_records(path: str, compression: str) -> int:
    """Records of a TFRecord file, counted from its frames (length, CRC, data, CRC) without
    TensorFlow; DataError for a file that ends inside a frame."""
    import struct
    import zlib

    wbits = {"gzip": 31, "zlib": 15}.get(compression)
    inflate = zlib.decompressobj(wbits=wbits) if wbits else None
    records, pending, need = 0, 0, 12  # bytes of the current frame still to skip / to read
    header = b""
    with storage.open_read(path) as stream:
        while block := stream.read(1 << 22):
            data = inflate.decompress(block) if inflate else block
            view = memoryview(data)
            while view:
                if pending:
                    step = min(pending, len(view))
                    pending -= step
                    view = view[step:]
                    continue
                take = min(need - len(header), len(view))
                header += bytes(view[:take])
                view = view[take:]
                if len(header) == need:
                    pending = struct.unpack("<Q", header[:8])[0] + 4
                    header, records = b"", records + 1
    if inflate is not None and not inflate.eof:
        raise DataError(f"{path}: compressed stream ended early")
    if header or pending:
        raise DataError(f"{path}: ends inside a record")
    return records


def verify(out: str) -> list[str]:
    """Problems found checking every file of the build against the manifest (empty: none),
    and files that look like shards but are not in it. Needs no TensorFlow."""
    manifest = manifest_lib.read(out)
    compression = manifest["config"]["compression"]
    problems = []
    for name, entry in manifest_lib.owned_files(manifest).items():
        path = manifest_lib.safe_member(out, name)
        if not storage.exists(path):
            problems.append(f"{path}: missing")
            continue
        if "sha256" not in entry:
            continue
        size, sha = storage.file_sha256(path)
        if size != entry["bytes"]:
            problems.append(f"{path}: {size} bytes, manifest says {entry['bytes']}")
        if sha != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    for shard in manifest["shards"]:
        path = manifest_lib.safe_member(out, shard["name"])
        if not storage.exists(path):
            continue
        try:
            records = count_records(path, compression)
        except (DataError, OSError, zlib.error) as error:
            problems.append(f"{path}: unreadable ({error})")
            continue
        if records != shard["records"]:
            problems.append(f"{path}: {records} records, manifest says {shard['records']}")
    listed = {s["name"] for s in manifest["shards"]}
    for name in storage.listdir(out):
        if manifest_lib.SHARD_NAME.fullmatch(name) and name not in listed:
            problems.append(
                f"{storage.join(out, name)}: looks like a shard but is not in the manifest "
                "(a reader globbing train-* would read it)"
            )
    return problems
