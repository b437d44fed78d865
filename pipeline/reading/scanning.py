"""Scanning: each input file read once, hashed and cut into pieces at document boundaries.

A file bigger than `unit_bytes` (a config key, 4 MiB by default) is cut into pieces: the k-th
cut is the first document boundary at or after byte k * unit_bytes of its (decompressed)
content, so cuts depend only on the bytes and the config, never on the worker count, and
appending to a file moves only its last cut. `text` files are one document each and never cut.
Parquet files are cut at row groups (`parquet_input`), multistream Wikipedia dumps at bz2
streams (`wikipedia_input`); other Wikipedia dumps are read whole.

Content is read with lone CRs as line ends (see `line_ends`): cuts, line numbers and piece
hashes are those of the translated bytes, as the readers see them. Before any cut, a file's
first bytes are checked: UTF-16 or UTF-32 text is an error naming the encoding (exit 1), and a
`lines` or `text` file whose first lines are all JSON objects is refused (exit 2) suggesting
`jsonl`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Iterator
from typing import IO

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError, UsageError
from pretrain_records.pipeline.reading import line_ends, text_kind
from pretrain_records.pipeline.reading.compression import (
    STREAM_ERRORS,
    compression_of,
    decompressed,
)
from pretrain_records.pipeline.reading.inputs import InputFile
from pretrain_records.pipeline.reading.pieces import BLOCK_BYTES, Piece, file_stamp

PLAN_VERSION = 1  # bumped when the rules change (also planning's): cached scans are redone
# Bumped when cut points change but kept units stay good: cached cuts are redone. 2: lone CRs
# are line ends (a file without any keeps its hashes, and so its kept units).
CUT_VERSION = 2
HEAD_BYTES = 1 << 16  # the first content bytes checked for encoding and format

_BLANK_LINE = re.compile(rb"\n[ \t\r\f\v]*\n")


@dataclasses.dataclass(frozen=True)
class PieceInfo:
    """A scanned range of a file's content: where it is, its hash, documents seen (up to 2)."""

    start: int
    end: int
    first_line: int
    sha256: str
    documents: int
    size: int = -1  # content bytes, when start and end are not byte offsets of the content

    @property
    def content_bytes(self) -> int:
        return self.size if self.size >= 0 else self.end - self.start


@dataclasses.dataclass(frozen=True)
class ScannedFile:
    path: str
    relpath: str
    size: int  # stored bytes
    sha256: str  # of the stored bytes
    compression: str
    pieces: tuple[PieceInfo, ...]
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) when it was read
    format: str | None = None  # its own format (parquet), when not the config's

    def piece(self, info: PieceInfo) -> Piece:
        whole = len(self.pieces) == 1
        return Piece(
            path=self.path,
            relpath=self.relpath,
            compression=self.compression,
            start=0 if whole else info.start,
            end=None if whole else info.end,
            first_line=info.first_line,
            stamp=self.stamp,
            format=self.format,
        )


class _Counter:
    """Counts a piece's documents (up to 2) from its bytes, cheaply."""

    def __init__(self, input_format: str) -> None:
        self.format, self.count, self.in_document, self.line_has_text = (
            input_format,
            0,
            False,
            False,
        )

    def feed(self, data: bytes) -> None:
        if self.count >= 2 or not data:
            return
        if self.format == "text":
            self.count = max(self.count, int(bool(data.strip())))
            return
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            text = self.line_has_text or bool(line.strip())
            if i == len(lines) - 1:  # the line goes on in the next bytes
                self.line_has_text = text
                break
            self.line_has_text = False
            self._line(text)
            if self.count >= 2:
                return

    def _line(self, has_text: bool) -> None:
        if self.format == "jsonl":
            self.count += has_text
        elif has_text and not self.in_document:
            self.in_document, self.count = True, self.count + 1
        elif not has_text:
            self.in_document = False

    def finish(self) -> int:
        if self.line_has_text:
            self._line(True)
        return min(self.count, 2)


class _Accumulator:
    """The piece being scanned: hash, line count, documents."""

    def __init__(self, start: int, first_line: int, input_format: str) -> None:
        self.start, self.first_line = start, first_line
        self.digest, self.newlines = hashlib.sha256(), 0
        self.counter = _Counter(input_format)

    def add(self, data: bytes) -> None:
        self.digest.update(data)
        self.newlines += data.count(b"\n")
        self.counter.feed(data)

    def close(self, end: int) -> PieceInfo:
        return PieceInfo(
            self.start, end, self.first_line, self.digest.hexdigest(), self.counter.finish()
        )


def _boundary(data: bytes, start: int, input_format: str) -> int:
    """Index just after the first document boundary at or after `start` in `data`, or -1."""
    if input_format == "jsonl":
        found = data.find(b"\n", max(start - 1, 0))
        return -1 if found < 0 else found + 1
    match = _BLANK_LINE.search(data, max(start - 1, 0))
    return -1 if match is None else match.end()


class _HashingReader:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()


def _cut(stream: IO[bytes], input_format: str, unit_bytes: int) -> list[PieceInfo]:
    """Pieces of a content stream (see the module docstring)."""
    stream = line_ends.LineEndReader(stream)
    pieces: list[PieceInfo] = []
    piece = _Accumulator(0, 1, input_format)
    buffer, position, next_cut = b"", 0, unit_bytes
    splittable = input_format != "text"
    while True:
        block = stream.read(BLOCK_BYTES)
        buffer += block
        while splittable and (position + len(buffer) >= next_cut or not block):
            search = max(0, next_cut - position)
            found = _boundary(buffer, search, input_format)
            if found < 0:
                # Keep what a boundary could still start in; the rest is the piece's.
                last = buffer.rfind(b"\n")
                keep = last if last >= max(search - 1, 0) else len(buffer)
                piece.add(buffer[:keep])
                position, buffer = position + keep, buffer[keep:]
                break
            piece.add(buffer[:found])
            position, buffer = position + found, buffer[found:]
            pieces.append(piece.close(position))
            piece = _Accumulator(position, piece.first_line + piece.newlines, input_format)
            while next_cut <= position:
                next_cut += unit_bytes
        if not block:
            break
        if not splittable:
            piece.add(buffer)
            position, buffer = position + len(buffer), b""
    piece.add(buffer)
    position += len(buffer)
    if position > piece.start or not pieces:
        pieces.append(piece.close(position))
    return pieces


def cache_key(sha256: str, input_format: str, unit_bytes: int) -> str:
    """The key of a compressed file's cut points in the plan cache."""
    return f"{sha256}:{input_format}:{unit_bytes}:{PLAN_VERSION}.{CUT_VERSION}"


def scan(
    file: InputFile,
    input_format: str,
    unit_bytes: int,
    cache: dict[str, list[list[int | str]]],
    text_field: str = "text",
    filter_fields: tuple[str, ...] = (),
) -> ScannedFile:
    """Reads a file: its hash, compression and pieces. A compressed file's pieces come from
    `cache` (updated here) when its bytes were cut before with these settings. A parquet file
    (its PAR1 magic) is read as parquet whatever `input_format` says."""
    stamp = file_stamp(file.path)
    if _is_parquet(file, input_format):
        scanned = _scan_parquet(file, unit_bytes, text_field, filter_fields)
    elif input_format == "wikipedia":
        scanned = _scan_wikipedia(file, unit_bytes)
    else:
        scanned = _scan_text(file, input_format, unit_bytes, cache)
    if file_stamp(file.path) != stamp:
        raise DataError(f"{file.path}: changed while the build was reading it; rerun")
    return dataclasses.replace(scanned, stamp=stamp)


def _scan_text(
    file: InputFile, input_format: str, unit_bytes: int, cache: dict[str, list[list[int | str]]]
) -> ScannedFile:
    compression = check_head(file, input_format)
    if compression != "none":
        size, sha = storage.file_sha256(file.path)
        key = cache_key(sha, input_format, unit_bytes)
        if key not in cache:
            with opened(file) as raw:
                stream = decompressed(raw, compression)
                cache[key] = [
                    dataclasses.astuple(p) for p in _cut(stream, input_format, unit_bytes)
                ]
        pieces = tuple(PieceInfo(*p) for p in cache[key])  # type: ignore[arg-type]
    else:
        with opened(file) as raw:
            hashing = _HashingReader(raw)
            pieces = tuple(_cut(hashing, input_format, unit_bytes))
            size, sha = hashing.size, hashing.digest.hexdigest()
    return ScannedFile(file.path, file.relpath, size, sha, compression, pieces)


def _is_parquet(file: InputFile, input_format: str) -> bool:
    from pretrain_records.pipeline.reading import parquet_input

    with opened(file) as raw:
        head = _read_up_to(raw, 4)
    if parquet_input.is_parquet(head):
        return True
    if input_format == "parquet":
        raise DataError(f"{file.path}: not a parquet file (no PAR1 magic)", path=file.path)
    return False


def _scan_parquet(
    file: InputFile, unit_bytes: int, text_field: str, filter_fields: tuple[str, ...]
) -> ScannedFile:
    """Pieces of whole row groups (`parquet_input`); the file's columns are checked."""
    from pretrain_records.pipeline.reading import parquet_input

    size, sha = storage.file_sha256(file.path)
    groups = parquet_input.scan(file.path, unit_bytes, text_field, list(filter_fields))
    pieces = tuple(
        PieceInfo(g.start, g.end, g.first_row, g.sha256, min(g.rows, 2), g.bytes) for g in groups
    )
    return ScannedFile(file.path, file.relpath, size, sha, "none", pieces, format="parquet")


def _scan_wikipedia(file: InputFile, unit_bytes: int) -> ScannedFile:
    """A MediaWiki dump: pieces of whole bz2 streams for a multistream dump with its index
    beside it, else the whole file (`wikipedia_input`)."""
    from pretrain_records.pipeline.reading import wikipedia_input

    size = storage.size(file.path)
    with opened(file) as raw:
        compression = compression_of(_read_up_to(raw, 8), file.path)
    ranges = wikipedia_input.multistream_ranges(file.path, size, unit_bytes)
    share = wikipedia_input.COMPRESSED_SHARE if compression != "none" else 1
    whole, digests = hashlib.sha256(), [hashlib.sha256() for _ in ranges or []]
    with opened(file) as raw:  # one pass: the file's hash and each range's
        position, at = 0, 0
        while block := raw.read(BLOCK_BYTES):
            whole.update(block)
            while ranges and block:
                take = min(len(block), ranges[at][1] - position)
                if take <= 0:
                    break  # past the last range: the file grew while it was read
                digests[at].update(block[:take])
                block, position = block[take:], position + take
                if position == ranges[at][1] and at + 1 < len(ranges):
                    at += 1
    sha = whole.hexdigest()
    if not ranges:
        pieces = (PieceInfo(0, size, 1, sha, 2, size * share),)
    else:
        pieces = tuple(
            PieceInfo(a, b, 1, d.hexdigest(), 2, (b - a) * share)
            for (a, b), d in zip(ranges, digests, strict=True)
        )
    return ScannedFile(file.path, file.relpath, size, sha, compression, pieces, format="wikipedia")


def check_head(file: InputFile, input_format: str) -> str:
    """The file's compression, once its first content bytes are known to be UTF-8 text of
    `input_format` as far as they tell (DataError for UTF-16/32, UsageError for JSONL)."""
    with opened(file) as raw:
        head = _read_up_to(raw, 8)
        compression = compression_of(head, file.path)
        if compression == "none":
            head += _read_up_to(raw, HEAD_BYTES - len(head))
    if compression != "none":
        with opened(file) as raw:
            head = _read_up_to(decompressed(raw, compression), HEAD_BYTES)
    encoding = text_kind.wide_encoding(head)
    if encoding is not None:
        family = encoding.split()[0]
        raise DataError(
            f"{file.path}: {encoding} text, not UTF-8: convert it first "
            f"(iconv -f {family} -t UTF-8)",
            path=file.path,
        )
    whole = len(head) < HEAD_BYTES
    if input_format in ("lines", "text") and text_kind.looks_like_jsonl(head, whole):
        raise UsageError(
            f"{file.path}: its first lines are JSON objects, not input_format "
            f"{input_format}; is it JSONL (--input-format jsonl)?",
            path=file.path,
        )
    return compression


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes of a stream, fewer only at its end."""
    data = b""
    while len(data) < size and (block := stream.read(size - len(data))):
        data += block
    return data


@contextlib.contextmanager
def opened(file: InputFile) -> Iterator[IO[bytes]]:
    """The file's stream; read errors (a corrupt gzip, EIO) as DataError naming it."""
    try:
        stream = storage.open_read(file.path)
    except OSError as error:
        raise DataError(f"{file.path}: cannot read ({error.strerror or error})") from error
    try:
        with stream:
            yield stream
    except DataError:
        raise
    except STREAM_ERRORS as error:
        raise DataError(f"{file.path}: corrupt or unreadable ({error})") from None
