"""Reading records back: decoded examples, statistics, and verification against the manifest."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from pretrain_records.pipeline import features
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline.tokenize import Tokenizer
from pretrain_records.pipeline.writer import COMPRESSION, file_digest


def _locate(path: str) -> tuple[str, dict[str, Any], list[str]]:
    """(output dir, manifest, shard paths) for an output directory or one of its shards."""
    directory = path if os.path.isdir(path) else os.path.dirname(path) or "."
    manifest = manifest_lib.read(directory)
    if os.path.isdir(path):
        shards = [manifest_lib.safe_member(directory, s["name"]) for s in manifest["shards"]]
    else:
        shards = [path]
    return directory, manifest, shards


def _dataset(manifest: dict[str, Any], shards: list[str]) -> tf.data.Dataset:
    spec = features.parse_spec(manifest["features"])
    compression = COMPRESSION[manifest["config"]["compression"]]
    records = tf.data.TFRecordDataset(shards, compression_type=compression)
    return records.map(lambda r: tf.io.parse_single_example(r, spec))


def _canonical(example: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Written names (v1 or v2) -> our canonical ones."""
    renamed = {written: ours for ours, written in features.feature_names("v2").items()}
    return {renamed.get(k, k): v for k, v in example.items()}


def show_examples(path: str, count: int) -> Iterator[str]:
    """Decoded examples: pieces, `[[shown|original]]` where masked, segments, label."""
    directory, manifest, shards = _locate(path)
    tokenizer = Tokenizer.load(manifest_lib.safe_member(directory, manifest["tokenizer"]["file"]))
    task = manifest["config"]["sentence_task"]
    for number, example in enumerate(_dataset(manifest, shards).take(count).as_numpy_iterator()):
        example = _canonical(example)
        length = int(example["input_mask"].sum())
        ids = example["input_ids"][:length]
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
        pieces = tokenizer.decode_pieces(ids)
        shown = []
        for t, piece in enumerate(pieces):
            if t in originals:
                original = tokenizer.processor.id_to_piece(originals[t])
                shown.append(f"[[{piece}|{original}]]")
            else:
                shown.append(piece)
        label = int(example["next_sentence_labels"][0])
        meaning = {
            "nsp": "random B" if label else "actual next",
            "sop": "swapped" if label else "in order",
            "none": "-",
        }[task]
        yield (
            f"--- example {number}: {length} tokens, {len(originals)} masked, "
            f"{task} label {label} ({meaning})\n" + " ".join(shown)
        )


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of maximal runs of True."""
    runs, start = [], None
    for i, flag in enumerate(flags.tolist() + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def collect_stats(path: str) -> dict[str, Any]:
    """Length histogram, masked share, span lengths (words, tokens), label balance."""
    _, manifest, shards = _locate(path)
    length = manifest["config"]["max_seq_length"]
    bins = np.linspace(0, length, 9).astype(int)
    lengths, labels = [], collections.Counter()
    span_tokens, span_words = collections.Counter(), collections.Counter()
    masked = real = 0
    for example in _dataset(manifest, shards).as_numpy_iterator():
        example = _canonical(example)
        n = int(example["input_mask"].sum())
        lengths.append(n)
        real += n
        labels[int(example["next_sentence_labels"][0])] += 1
        if "masked_lm_positions" in example:
            weights = example["masked_lm_weights"] > 0
            positions = example["masked_lm_positions"][weights]
            masked += len(positions)
            chosen = np.zeros(length, bool)
            chosen[positions] = True
            for start, size in _runs(chosen):
                span_tokens[size] += 1
                starts = example["token_boundary"][start : start + size]
                span_words[max(1, int(starts.sum()))] += 1
    histogram, _ = np.histogram(lengths, bins=bins)
    return {
        "records": len(lengths),
        "length_bins": bins.tolist(),
        "length_histogram": histogram.tolist(),
        "mean_length": float(np.mean(lengths)) if lengths else 0.0,
        "masked_share": masked / real if real else 0.0,
        "span_tokens": dict(sorted(span_tokens.items())),
        "span_words": dict(sorted(span_words.items())),
        "labels": dict(sorted(labels.items())),
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
    return "\n".join(lines)


def verify(out: str) -> list[str]:
    """Problems found checking each shard against the manifest (empty: all good)."""
    manifest = manifest_lib.read(out)
    compression = COMPRESSION[manifest["config"]["compression"]]
    problems = []
    for shard in manifest["shards"]:
        path = manifest_lib.safe_member(out, shard["name"])
        if not os.path.exists(path):
            problems.append(f"{path}: missing")
            continue
        size, sha = file_digest(path)
        if size != shard["bytes"]:
            problems.append(f"{path}: {size} bytes, manifest says {shard['bytes']}")
        if sha != shard["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
        try:
            records = sum(1 for _ in tf.data.TFRecordDataset(path, compression_type=compression))
        except tf.errors.OpError as error:
            problems.append(f"{path}: unreadable ({error.message.splitlines()[0]})")
            continue
        if records != shard["records"]:
            problems.append(f"{path}: {records} records, manifest says {shard['records']}")
    return problems
