"""Planning: input files scanned into pieces, pieces grouped into work units of bounded size.

A file bigger than `unit_bytes` (a config key, 4 MiB by default) is cut into pieces at document
boundaries: the k-th cut is the first boundary at or after byte k * unit_bytes of its
(decompressed) content, so cuts depend only on the bytes and the config, never on the worker
count, and appending to a file moves only its last cut. Smaller files are grouped into units by
a content-defined rule (a unit ends after a piece whose content hash is 0 mod 4, once it holds a
quarter of unit_bytes), so a file coming or going changes one unit. With `sentence_task: nsp` a
unit holding fewer than two documents is merged into its neighbour, so that random next
sentences always have another document to come from.

A unit's key (the seed of its draws) comes from its pieces' content; the relative path and
offset join in only for a piece whose content appeared earlier in the input (two copies of one
file are two units with their own draws). `text` files are one document each and never cut.

Content is read with lone CRs as line ends (see `documents`): cuts, line numbers and piece hashes
are those of the translated bytes, as the readers see them. Before any cut, a file's first bytes
are checked: UTF-16 or UTF-32 text is an error naming the encoding (exit 1), and a `lines` or
`text` file whose first lines are all JSON objects is refused (exit 2) suggesting `jsonl`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import lzma
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pretrain_records.pipeline import documents, storage
from pretrain_records.pipeline.documents import Piece
from pretrain_records.pipeline.errors import DataError, UsageError
from pretrain_records.pipeline.inputs import InputFile

PLAN_VERSION = 1  # bumped when the rules above change: cached scans are then redone
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


@dataclasses.dataclass(frozen=True)
class ScannedFile:
    path: str
    relpath: str
    size: int  # stored bytes
    sha256: str  # of the stored bytes
    compression: str
    pieces: tuple[PieceInfo, ...]
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) when it was read

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
        )


@dataclasses.dataclass(frozen=True)
class Unit:
    """A work unit: pieces built together, with a key from their content."""

    key: str
    pieces: tuple[Piece, ...]
    piece_bytes: tuple[int, ...]  # content bytes of each piece
    documents: int  # documents seen while scanning, counted up to 2 per piece
    label: str  # for people: "books/emma.txt +11 files"

    @property
    def input_bytes(self) -> int:
        return sum(self.piece_bytes)


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
    stream = documents.LineEndReader(stream)
    pieces: list[PieceInfo] = []
    piece = _Accumulator(0, 1, input_format)
    buffer, position, next_cut = b"", 0, unit_bytes
    splittable = input_format != "text"
    while True:
        block = stream.read(documents.BLOCK_BYTES)
        buffer += block
        while splittable and (position + len(buffer) >= next_cut or not block):
            search = max(0, next_cut - position)
            found = _boundary(buffer, search, input_format)
            if found < 0:
                # Keep what a boundary could still start in; the rest is the piece's.
                last = buffer.rfind(b"\n")
                keep = last if last >= search - 1 else len(buffer)
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
) -> ScannedFile:
    """Reads a file: its hash, compression and pieces. A compressed file's pieces come from
    `cache` (updated here) when its bytes were cut before with these settings."""
    stamp = documents.file_stamp(file.path)
    compression = _check_head(file, input_format)
    if compression != "none":
        size, sha = storage.file_sha256(file.path)
        key = cache_key(sha, input_format, unit_bytes)
        if key not in cache:
            with _opened(file) as raw:
                stream = documents.decompressed(raw, compression)
                cache[key] = [
                    dataclasses.astuple(p) for p in _cut(stream, input_format, unit_bytes)
                ]
        pieces = tuple(PieceInfo(*p) for p in cache[key])  # type: ignore[arg-type]
    else:
        with _opened(file) as raw:
            hashing = _HashingReader(raw)
            pieces = tuple(_cut(hashing, input_format, unit_bytes))
            size, sha = hashing.size, hashing.digest.hexdigest()
    if documents.file_stamp(file.path) != stamp:
        raise DataError(f"{file.path}: changed while the build was reading it; rerun")
    return ScannedFile(file.path, file.relpath, size, sha, compression, pieces, stamp)


def _check_head(file: InputFile, input_format: str) -> str:
    """The file's compression, once its first content bytes are known to be UTF-8 text of
    `input_format` as far as they tell (DataError for UTF-16/32, UsageError for JSONL)."""
    with _opened(file) as raw:
        head = _read_up_to(raw, 8)
        compression = documents.compression_of(head, file.path)
        if compression == "none":
            head += _read_up_to(raw, HEAD_BYTES - len(head))
    if compression != "none":
        with _opened(file) as raw:
            head = _read_up_to(documents.decompressed(raw, compression), HEAD_BYTES)
    encoding = documents.wide_encoding(head)
    if encoding is not None:
        family = encoding.split()[0]
        raise DataError(
            f"{file.path}: {encoding} text, not UTF-8: convert it first "
            f"(iconv -f {family} -t UTF-8)",
            path=file.path,
        )
    whole = len(head) < HEAD_BYTES
    if input_format in ("lines", "text") and documents.looks_like_jsonl(head, whole):
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
def _opened(file: InputFile) -> Iterator[IO[bytes]]:
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
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as error:
        raise DataError(f"{file.path}: corrupt or unreadable ({error})") from None


def _piece_ids(files: Iterable[ScannedFile]) -> dict[tuple[str, int], str]:
    """Identity of each piece: its content hash, with its relative path and offset when the same
    content appeared earlier in the (sorted) input."""
    seen: set[str] = set()
    ids = {}
    for f in files:
        for info in f.pieces:
            if info.sha256 in seen:
                mixed = f"{info.sha256}\0{f.relpath}\0{info.start}"
                # A file name need not be UTF-8 (b"caf\xe9.txt"): its bytes as the OS has them.
                ids[(f.relpath, info.start)] = hashlib.sha256(os.fsencode(mixed)).hexdigest()
            else:
                seen.add(info.sha256)
                ids[(f.relpath, info.start)] = info.sha256
    return ids


def group(files: list[ScannedFile], sentence_task: str, unit_bytes: int) -> list[Unit]:
    """Work units of the scanned files (sorted by relative path)."""
    ids = _piece_ids(files)
    groups: list[list[tuple[ScannedFile, PieceInfo]]] = []
    current: list[tuple[ScannedFile, PieceInfo]] = []
    size = 0
    for f in files:
        if len(f.pieces) > 1:  # a big file: each piece a unit
            if current:
                groups.append(current)
                current, size = [], 0
            groups.extend([(f, info)] for info in f.pieces)
            continue
        info = f.pieces[0]
        current.append((f, info))
        size += info.end - info.start
        boundary = int(ids[(f.relpath, info.start)][:8], 16) % 4 == 0
        if size >= unit_bytes or (size >= unit_bytes // 4 and boundary):
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    if sentence_task == "nsp":
        groups = _merge_single_documents(groups)
    return [_unit(g, ids) for g in groups]


def _documents(group: list[tuple[ScannedFile, PieceInfo]]) -> int:
    return sum(info.documents for _, info in group)


def _merge_single_documents(
    groups: list[list[tuple[ScannedFile, PieceInfo]]],
) -> list[list[tuple[ScannedFile, PieceInfo]]]:
    """Groups with fewer than two documents joined to the next (the last to the previous)."""
    merged: list[list[tuple[ScannedFile, PieceInfo]]] = []
    carry: list[tuple[ScannedFile, PieceInfo]] = []
    for g in groups:
        carry = carry + g
        if _documents(carry) >= 2:
            merged.append(carry)
            carry = []
    if carry:
        if merged:
            merged[-1] = merged[-1] + carry
        else:
            merged.append(carry)
    return merged


def _unit(group: list[tuple[ScannedFile, PieceInfo]], ids: dict[tuple[str, int], str]) -> Unit:
    piece_ids = [ids[(f.relpath, info.start)] for f, info in group]
    first, info = group[0]
    label = first.relpath
    if len(first.pieces) > 1:
        label += f" [{human_bytes(info.start)}-{human_bytes(info.end)}]"
    if len(group) > 1:
        label += f" +{len(group) - 1} {'pieces' if len(first.pieces) > 1 else 'files'}"
    return Unit(
        key=hashlib.sha256("\n".join(piece_ids).encode()).hexdigest()[:32],
        pieces=tuple(f.piece(i) for f, i in group),
        piece_bytes=tuple(i.end - i.start for _, i in group),
        documents=min(_documents(group), 2),
        label=label,
    )


def spill_compressed(jobs: list[Any], files: list[ScannedFile], out: Any) -> list[Any]:
    """Jobs whose pieces of split compressed files are readable on their own: each such file
    is inflated once and the pieces to build are written to OUT/.mpr/work/pieces (a worker
    then reads its piece without inflating the file from its start)."""
    wanted: dict[str, list[tuple[int, int, Piece]]] = {}
    for j, job in enumerate(jobs):
        for k, piece in enumerate(job.pieces):
            if piece.compression != "none" and piece.end is not None and piece.source is None:
                wanted.setdefault(piece.path, []).append((j, k, piece))
    if not wanted:
        return jobs
    storage.makedirs(out.work("pieces"))
    replaced: dict[tuple[int, int], Piece] = {}
    by_path = {f.path: f for f in files}
    for path, items in wanted.items():
        scanned = by_path[path]
        with _opened(InputFile(path, scanned.relpath)) as raw:
            stream = documents.decompressed(raw, scanned.compression)
            position = 0
            for j, k, piece in sorted(items, key=lambda item: item[2].start):
                target = out.work("pieces", f"{jobs[j].fingerprint}-{k}.txt")
                position = _copy_range(stream, position, piece.start, piece.end or 0, target)
                replaced[(j, k)] = dataclasses.replace(piece, source=target)
    return [
        dataclasses.replace(
            job, pieces=tuple(replaced.get((j, k), p) for k, p in enumerate(job.pieces))
        )
        for j, job in enumerate(jobs)
    ]


def _copy_range(stream: IO[bytes], position: int, start: int, end: int, target: str) -> int:
    """Copies [start, end) of a stream now at `position` into `target`; returns the new position."""
    while position < start:
        skipped = len(stream.read(min(start - position, documents.BLOCK_BYTES)))
        if not skipped:
            raise EOFError("the file ended before a piece of it")
        position += skipped
    writer = storage.Writer(target)
    try:
        while position < end:
            block = stream.read(min(end - position, documents.BLOCK_BYTES))
            if not block:
                raise EOFError("the file ended inside a piece of it")
            writer.write(block)
            position += len(block)
        writer.close()
    except BaseException:
        writer.discard()
        raise
    return position


def human_bytes(count: float) -> str:
    """12 B, 3.4 kB, 5.6 MB, 7.8 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"
