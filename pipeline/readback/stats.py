"""`inspect --stats`: what a build holds (lengths, masks, tokens kept) and how well its records
are mixed (the provenance of a sample of records, rank correlation with file order)."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.readback.inspection import examples, locate
from pretrain_records.pipeline.records import manifest as manifest_lib
from pretrain_records.pipeline.records.merge import PROVENANCE_ENTRY


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of maximal runs of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), (ends - starts).tolist(), strict=True))


def length_bins(max_seq_length: int, bins: int = 8) -> list[tuple[int, int]]:
    """Up to `bins` integer ranges [lo, hi] of real lengths 1 .. max_seq_length: distinct, not
    overlapping, of widths differing by one at most (one length each when L <= `bins`)."""
    count = min(bins, max_seq_length)
    edges = [1 + i * max_seq_length // count for i in range(count + 1)]
    return [(edges[i], edges[i + 1] - 1) for i in range(count)]


def _tokens(manifest: dict[str, Any]) -> dict[str, int] | None:
    """The manifest's per-pass token totals (`totals.tokens`), or None if absent or malformed."""
    totals = manifest.get("totals")
    tokens = totals.get("tokens") if isinstance(totals, dict) else None
    keys = ("input", "in_records", "dropped")
    if not isinstance(tokens, dict) or not all(
        isinstance(tokens.get(k), int) and not isinstance(tokens.get(k), bool) for k in keys
    ):
        return None
    return {k: tokens[k] for k in keys}


def collect_stats(path: str, sample: int = 256) -> dict[str, Any]:
    """Length histogram, masked share, span lengths (words, tokens), label balance, mixing, and
    the manifest's per-pass token totals when it has them."""
    directory, manifest, shards = locate(path)
    length = manifest["config"]["max_seq_length"]
    lengths, labels = [], collections.Counter()
    span_tokens, span_words = collections.Counter(), collections.Counter()
    masked = real = 0
    for example in examples(manifest, shards):
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
    bins = length_bins(length)
    per_length = np.bincount(np.asarray(lengths, np.int64), minlength=length + 1)
    histogram = [int(per_length[lo : hi + 1].sum()) for lo, hi in bins]
    if per_length[0]:  # records without a real token (none should exist): shown, not lost
        bins[0] = (0, bins[0][1])
        histogram[0] += int(per_length[0])
    stats = {
        "records": len(lengths),
        "length_bins": [list(b) for b in bins],
        "length_histogram": histogram,
        "mean_length": float(np.mean(lengths)) if lengths else 0.0,
        "masked_share": masked / real if real else 0.0,
        "span_tokens": dict(sorted(span_tokens.items())),
        "span_words": dict(sorted(span_words.items())),
        "labels": dict(sorted(labels.items())),
    }
    tokens = _tokens(manifest)
    if tokens is not None:
        stats["tokens"] = tokens
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
    path = manifest_lib.safe_member(directory, manifest_lib.provenance_name(manifest))
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
    if manifest_lib.provenance_name(manifest) is None:
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
    tokens = stats.get("tokens")
    if tokens:
        share = f"{100 * tokens['in_records'] / tokens['input']:.1f}%" if tokens["input"] else "-"
        lines.append(
            f"input tokens: {tokens['input']:,} per pass; in records {share} "
            f"({tokens['in_records']:,}), dropped by truncation {tokens['dropped']:,}"
        )
    lines.append("length histogram (tokens, both ends included):")
    peak = max(stats["length_histogram"] or [1]) or 1
    for (lo, hi), count in zip(stats["length_bins"], stats["length_histogram"], strict=True):
        label = f"{lo}-{hi}" if hi > lo else f"{lo}"
        lines.append(f"  {label:>11} {count:8d} {'#' * round(40 * count / peak)}")
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
