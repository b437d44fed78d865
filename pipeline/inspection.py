"""Reading a build back: decoded examples, statistics (mixing included), verification."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import google_crc32c
import numpy as np
from pretrain_records.pipeline import manifest as manifest_lib
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.errors import DataError
from pretrain_records.pipeline.merge import PROVENANCE_ENTRY
from pretrain_records.pipeline.schema import feature_names


def _locate(path: str) -> tuple[str, dict[str, Any], list[str]]:
    """(output dir, manifest, shard paths) for an output directory or one of its shards (at
    OUT's top level, or in a build folder `OUT/build-NNNNN/`, whose manifest is OUT's)."""
    if storage.isdir(path):
        manifest = manifest_lib.read(path)
        return (
            path,
            manifest,
            [manifest_lib.safe_member(path, s["name"]) for s in manifest["shards"]],
        )
    directory = path.rsplit("/", 1)[0] if "/" in path else "."
    parent, _, folder = directory.rstrip("/").rpartition("/")
    if manifest_lib.BUILD_FOLDER.fullmatch(folder):
        directory = parent or "."
    return directory, manifest_lib.read(directory), [path]


_PARSED_AT_ONCE = 256  # records parsed by one tf.io.parse_example call


def _examples(manifest: dict[str, Any], shards: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """Parsed records shard by shard, read through `storage` (so on local disks, gs:// and the
    other tf.io.gfile filesystems alike); a shard that cannot be read is a DataError naming
    it."""
    import tensorflow as tf
    from pretrain_records.pipeline import features

    spec = features.parse_spec(manifest["features"])
    compression = manifest["config"]["compression"]
    for shard in shards:
        batch: list[bytes] = []
        for record in read_records(shard, compression):
            batch.append(record)
            if len(batch) == _PARSED_AT_ONCE:
                yield from _parsed(batch, spec, shard, tf)
                batch = []
        yield from _parsed(batch, spec, shard, tf)


def _parsed(
    records: list[bytes], spec: dict[str, Any], shard: str, tf: Any
) -> Iterator[dict[str, np.ndarray]]:
    if not records:
        return
    try:
        columns = {k: v.numpy() for k, v in tf.io.parse_example(records, spec).items()}
    except tf.errors.OpError as error:
        first = error.message.strip().splitlines()[0] if error.message.strip() else ""
        raise DataError(f"{shard}: unreadable ({first})", path=shard) from None
    for row in range(len(records)):
        yield _canonical({k: v[row] for k, v in columns.items()})


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
    directory, manifest, shards = _locate(path)
    length = manifest["config"]["max_seq_length"]
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


_BLOCK = 4 << 20  # bytes read, and at most inflated, at a time: memory stays flat
_FRAME_HEADER = struct.Struct("<QI")  # record length, masked CRC-32C of the length's 8 bytes
_FRAME_FOOTER = struct.Struct("<I")  # masked CRC-32C of the record's bytes
_REPORTED = 5  # bad records named per shard; the rest are counted


def read_records(path: str, compression: str) -> Iterator[bytes]:
    """Each record's bytes of a TFRecord file (`compression`: none, gzip or zlib), read
    through `storage.open_read` in blocks, both CRCs of every frame checked; DataError naming
    the file for a frame that is damaged or cut short, or a compressed stream that is broken.
    Holds a block and one record at most."""
    buffer = bytearray()
    start = 0  # where the next frame begins in `buffer`
    offset = 0  # stream offset of buffer[0]
    record = 0
    where = " of the inflated stream" if compression in _WBITS else ""

    def problem(what: str) -> DataError:
        at = f"record {record} (byte {offset + start}{where})"
        return DataError(f"{path}: unreadable ({at}: {what})", path=path)

    for block in _stream_blocks(path, compression):
        del buffer[:start]
        offset += start
        start = 0
        buffer += block
        while len(buffer) - start >= _FRAME_HEADER.size:
            length, length_crc = _FRAME_HEADER.unpack_from(buffer, start)
            if masked_crc32c(bytes(buffer[start : start + 8])) != length_crc:
                raise problem("length CRC mismatch")
            body = start + _FRAME_HEADER.size
            end = body + length + _FRAME_FOOTER.size
            if end > len(buffer):
                break
            data = bytes(buffer[body : end - _FRAME_FOOTER.size])
            if masked_crc32c(data) != _FRAME_FOOTER.unpack_from(buffer, end - 4)[0]:
                raise problem("data CRC mismatch")
            yield data
            record += 1
            start = end
    if start < len(buffer):
        raise problem("the file ends inside this record")


_WBITS = {"gzip": 31, "zlib": 15}


def _stream_blocks(path: str, compression: str) -> Iterator[bytes]:
    """The record stream of a file in blocks of at most _BLOCK bytes (inflated for gzip and
    zlib); DataError for a compressed stream that is broken or ends early."""
    wbits = _WBITS.get(compression)
    inflate = zlib.decompressobj(wbits=wbits) if wbits else None
    with storage.open_read(path) as stream:
        while block := stream.read(_BLOCK):
            if inflate is None:
                yield block
                continue
            if inflate.eof:
                raise DataError(
                    f"{path}: unreadable (data after the end of its compressed stream)", path=path
                )
            try:
                yield inflate.decompress(block, _BLOCK)
                while inflate.unconsumed_tail:
                    yield inflate.decompress(inflate.unconsumed_tail, _BLOCK)
            except zlib.error as error:
                raise DataError(f"{path}: unreadable ({error})", path=path) from None
            if inflate.eof and inflate.unused_data:
                raise DataError(
                    f"{path}: unreadable (data after the end of its compressed stream)", path=path
                )
    if inflate is not None and not inflate.eof:
        raise DataError(f"{path}: unreadable (the compressed stream ends early)", path=path)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum of `data`: CRC-32C (Castagnoli), rotated right by 15 bits, plus a
    constant (masked, so that a CRC stored inside checksummed data does not cancel out)."""
    return _masked(google_crc32c.value(data))


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class FrameWalk:
    """Walks the frames of one TFRecord stream fed in blocks of any size (uint64 length,
    uint32 masked CRC of it, the data, uint32 masked CRC of the data), counting records and,
    with `crc`, checking both checksums of each. Holds at most a frame's header or footer,
    never a record, so a record of any size takes no memory.

    `problems` lists one line per finding naming `path`, the record (counted from 0) and the
    offset of its frame in the stream (`where` says which stream: "" or " of the inflated
    stream"). After a wrong length CRC the frames that follow cannot be found: `lost` is set
    and the walk stops."""

    def __init__(self, path: str, crc: bool = True, where: str = "") -> None:
        self.path, self.crc, self.where = path, crc, where
        self.records = 0  # complete frames so far
        self.bad_records = 0  # of which with a data CRC mismatch
        self.problems: list[str] = []
        self.lost = False
        self.cut = False  # the stream ended inside a frame
        self._offset = 0  # stream offset of the next byte fed
        self._start = 0  # stream offset of the current frame
        self._partial = b""  # header or footer bytes of the current frame so far
        self._left = -1  # data bytes of the current record still to come; -1: in the header
        self._crc = 0  # CRC-32C of the current record's data so far

    def feed(self, data: bytes) -> None:
        """The next bytes of the stream."""
        pos, end = 0, len(data)
        while pos < end and not self.lost:
            if self._left < 0 and not self._partial and end - pos >= _FRAME_HEADER.size:
                # Most frames lie whole inside a block: checked in place, without copies.
                length, length_crc = _FRAME_HEADER.unpack_from(data, pos)
                stop = pos + _FRAME_HEADER.size + length + _FRAME_FOOTER.size
                if stop <= end:
                    self._start = self._offset + pos
                    if self.crc:
                        if masked_crc32c(data[pos : pos + 8]) != length_crc:
                            self._lose()
                            break
                        body = data[pos + _FRAME_HEADER.size : stop - _FRAME_FOOTER.size]
                        self._check_data(google_crc32c.value(body), data[stop - 4 : stop])
                    self.records += 1
                    pos = stop
                    continue
            pos = self._step(data, pos, end)
        self._offset += end

    def _step(self, data: bytes, pos: int, end: int) -> int:
        """One piece of a frame that crosses the end of a block; the position after it."""
        if self._left < 0:  # header
            if not self._partial:
                self._start = self._offset + pos
            take = min(_FRAME_HEADER.size - len(self._partial), end - pos)
            self._partial += data[pos : pos + take]
            if len(self._partial) == _FRAME_HEADER.size:
                length, length_crc = _FRAME_HEADER.unpack(self._partial)
                if self.crc and masked_crc32c(self._partial[:8]) != length_crc:
                    self._lose()
                    return end
                self._partial, self._left, self._crc = b"", length, 0
            return pos + take
        if self._left > 0:  # data
            take = min(self._left, end - pos)
            if self.crc:
                self._crc = google_crc32c.extend(self._crc, data[pos : pos + take])
            self._left -= take
            return pos + take
        take = min(_FRAME_FOOTER.size - len(self._partial), end - pos)  # footer
        self._partial += data[pos : pos + take]
        if len(self._partial) == _FRAME_FOOTER.size:
            if self.crc:
                self._check_data(self._crc, self._partial)
            self.records += 1
            self._partial, self._left = b"", -1
        return pos + take

    def _here(self) -> str:
        return f"{self.path}: record {self.records} (byte {self._start}{self.where})"

    def _check_data(self, crc: int, footer: bytes) -> None:
        if _masked(crc) == _FRAME_FOOTER.unpack(footer)[0]:
            return
        self.bad_records += 1
        if self.bad_records <= _REPORTED:
            self.problems.append(f"{self._here()}: data CRC mismatch")

    def _lose(self) -> None:
        self.lost = True
        self.problems.append(
            f"{self._here()}: length CRC mismatch; the records after it cannot be found"
        )

    def finish(self) -> None:
        """The stream ended: a frame cut short is a problem; bad records beyond those named
        are counted."""
        if self.bad_records > _REPORTED:
            self.problems.append(
                f"{self.path}: {self.bad_records - _REPORTED} more records with a data CRC mismatch"
            )
        if not self.lost and (self._partial or self._left >= 0):
            self.cut = True
            self.problems.append(f"{self._here()}: the file ends inside this record")


@dataclasses.dataclass
class ShardCheck:
    """What one reading of a shard found: its size and sha256, its records (complete frames)
    and the problems of its frames (empty: none)."""

    size: int
    sha256: str
    records: int
    problems: list[str]
    complete: bool  # every frame was found: `records` is the shard's count


def check_shard(path: str, compression: str, crc: bool = True) -> ShardCheck:
    """Reads a shard once: its sha256 over the stored bytes, and every frame of the (inflated,
    for `gzip` / `zlib`) record stream, with both CRCs of each record unless `crc` is false.
    No TensorFlow; memory stays flat whatever the sizes of the shard and its records."""
    digest, size = hashlib.sha256(), 0
    wbits = _WBITS.get(compression)
    inflate = zlib.decompressobj(wbits=wbits) if wbits else None
    walk = FrameWalk(path, crc, " of the inflated stream" if inflate else "")
    broken = ""  # why the stream could not be inflated to its end
    with storage.open_read(path) as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
            size += len(block)
            if inflate is None:
                walk.feed(block)
                continue
            if broken or walk.lost or inflate.eof:
                if inflate.eof:
                    broken = broken or "data after the end of its compressed stream"
                continue  # still hashed: the sha256 is checked all the same
            try:
                walk.feed(inflate.decompress(block, _BLOCK))
                while inflate.unconsumed_tail and not walk.lost:
                    walk.feed(inflate.decompress(inflate.unconsumed_tail, _BLOCK))
            except zlib.error as error:
                broken = f"unreadable ({error})"
            if inflate.eof and inflate.unused_data:
                broken = "data after the end of its compressed stream"
    if inflate is not None and not broken and not walk.lost and not inflate.eof:
        broken = "the compressed stream ends early"
    if broken:
        walk.lost = True  # a frame cut by the compression is the compression's problem
        walk.problems.append(f"{path}: {broken}")
    walk.finish()
    complete = not walk.lost and not walk.cut
    return ShardCheck(size, digest.hexdigest(), walk.records, walk.problems, complete)


def count_records(path: str, compression: str) -> int:
    """Records of a TFRecord file, counted from its frames without checking CRCs and without
    TensorFlow; DataError for a file that ends inside a frame or whose compression is broken."""
    check = check_shard(path, compression, crc=False)
    if check.problems:
        raise DataError(check.problems[0], path=path)
    return check.records


def verify(out: str, quick: bool = False) -> list[str]:
    """Problems found checking every file of the build against the manifest (empty: none),
    and files that look like shards but are not in it. Needs no TensorFlow.

    Every file: present, its size and sha256 as recorded. Every shard, read once: its records
    counted from their frames, and both CRCs of every record checked (a shard written wrong,
    or changed together with its manifest entry); `quick` skips the CRCs only."""
    manifest = manifest_lib.read(out)
    compression = manifest["config"]["compression"]
    owned = manifest_lib.owned_files(manifest)
    problems: list[str] = []
    for shard in manifest["shards"]:
        path = manifest_lib.safe_member(out, shard["name"])
        if not storage.exists(path):
            problems.append(f"{path}: missing")
            continue
        try:
            check = check_shard(path, compression, crc=not quick)
        except OSError as error:
            problems.append(f"{path}: unreadable ({error.strerror or error})")
            continue
        entry = owned.get(shard["name"], shard)
        problems.extend(_hash_problems(path, entry, check.size, check.sha256))
        problems.extend(check.problems)
        if check.complete and check.records != shard.get("records"):
            problems.append(f"{path}: {check.records} records, manifest says {shard['records']}")
    shard_names = {s["name"] for s in manifest["shards"]}
    for name, entry in owned.items():
        if name in shard_names:
            continue
        path = manifest_lib.safe_member(out, name)
        if not storage.exists(path):
            problems.append(f"{path}: missing")
        elif "sha256" in entry:
            size, sha = storage.file_sha256(path)
            problems.extend(_hash_problems(path, entry, size, sha))
    folder = str(manifest.get("build_dir") or "")
    where = storage.join(out, folder) if folder else out
    for name in storage.listdir(where):
        listed = f"{folder}/{name}" if folder else name
        if manifest_lib.SHARD_NAME.fullmatch(name) and listed not in shard_names:
            problems.append(
                f"{storage.join(where, name)}: looks like a shard but is not in the manifest "
                "(a reader globbing the build's train-* would read it)"
            )
    return problems


def _hash_problems(path: str, entry: dict[str, Any], size: int, sha: str) -> list[str]:
    """A file's size and sha256 against its manifest entry (an entry without a sha256, as
    format-1 manifests wrote, checks nothing)."""
    if "sha256" not in entry:
        return []
    found = []
    if size != entry.get("bytes"):
        found.append(f"{path}: {size} bytes, manifest says {entry.get('bytes')}")
    if sha != entry["sha256"]:
        found.append(f"{path}: sha256 differs from the manifest")
    return found
