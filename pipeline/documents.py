"""Reading documents from input pieces: decompression, lines, formats, sentences.

A piece is a whole file or a byte range of one (big files are split at document boundaries,
see `planning`). Lines come with their real line numbers in the file, so every error names the
file and line; invalid UTF-8 and NUL bytes fail or, with `bad_lines: skip`, are skipped and
counted. Formats: `lines` (a sentence per line, blank lines between documents), `jsonl` (a
document per line, of any length: memory is bounded by the longest document), `text` (one
document per file, paragraphs by blank lines, lines wrapped).

Line ends are LF, CRLF and a lone CR (classic Mac files): every CR that is not part of a line end
CR...LF reads as LF, a translation of the same length, wherever content is read (planning's cuts
and counts too), so offsets, cut points and line numbers agree. A run of CRs before an LF
(CRCRLF, from a double conversion) stays one line end, as it always was. Input that is not UTF-8
but UTF-16 or UTF-32 (a byte order mark, or NUL bytes in every other position) is an error
naming the file and the encoding, whatever `bad_lines` says: read as UTF-8, it would be NUL
bytes in every line.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import json
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterator
from typing import IO

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.errors import DataError

# `lines` and `text`: a longer line is cut into pieces of at most this many bytes (at a UTF-8
# boundary), so a line of many megabytes never sits in memory whole; each cut is counted.
MAX_LINE_BYTES = 1 << 20
BLOCK_BYTES = 1 << 20

# Magic bytes of compressed formats: the supported ones are read through; the others are an
# error naming the format (a suffix alone decides nothing).
SUPPORTED = {"gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00"}
UNSUPPORTED = {
    "zstd": b"\x28\xb5\x2f\xfd",
    "zip": b"PK\x03\x04",
    "7z": b"7z\xbc\xaf\x27\x1c",
    "lz4": b"\x04\x22\x4d\x18",
}


def compression_of(head: bytes, name: str) -> str:
    """`none`, `gzip`, `bz2`, `xz` or `zlib` from a file's first bytes; DataError naming the
    file for a compressed format the tool does not read."""
    for kind, magic in SUPPORTED.items():
        if head.startswith(magic):
            return kind
    for kind, magic in UNSUPPORTED.items():
        if head.startswith(magic):
            raise DataError(f"{name}: {kind}-compressed input is not supported (use gzip, bz2, xz)")
    if _zlib_header(head) and (head[1] in (0x01, 0x9C, 0xDA) or name.endswith((".zz", ".zlib"))):
        return "zlib"
    return "none"


def _zlib_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


_CR_RUN = re.compile(rb"\r+")


def _translate_line_ends(data: bytes) -> bytes:
    """`data` with every lone CR as LF (same length): a run of CRs is part of a line end when
    an LF follows it, else each CR is one. `data` must not end inside a run an LF may follow."""
    if data.count(b"\r") == data.count(b"\r\n"):  # no CR, or CRLF only: the common case
        return data

    def line_ends(match: re.Match[bytes]) -> bytes:
        run = match.group()
        return run if data.startswith(b"\n", match.end()) else b"\n" * len(run)

    return _CR_RUN.sub(line_ends, data)


class LineEndReader(io.RawIOBase):
    """A stream whose lone CRs read as LF (see the module docstring). A byte's translation
    depends only on the bytes after it, so a piece read on its own (it ends after a line end)
    reads as it does inside its file; CRs at the end of a block wait for the next one."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._held = raw, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while True:
            block = self._raw.read(size)
            if not block:
                data, self._held = self._held, b""
                return _translate_line_ends(data)
            data, self._held = self._held + block, b""
            if data.endswith(b"\r"):
                kept = len(data.rstrip(b"\r"))
                data, self._held = data[:kept], data[kept:]
            if data:
                return _translate_line_ends(data)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def decompressed(raw: IO[bytes], compression: str) -> IO[bytes]:
    """A stream of the decompressed bytes (`raw` itself when not compressed)."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if compression == "bz2":
        return bz2.BZ2File(raw)
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "zlib":
        return _ZlibReader(raw)
    return raw


class _ZlibReader(io.RawIOBase):
    """A zlib stream read as a file."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw, self._inflate, self._pending = raw, zlib.decompressobj(), b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._pending) < size:
            block = self._raw.read(BLOCK_BYTES)
            if not block:
                self._pending += self._inflate.flush()
                if not self._inflate.eof:
                    raise EOFError("zlib stream ended before its end marker")
                break
            self._pending += self._inflate.decompress(block)
        if size < 0:
            size = len(self._pending)
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


class _Limited(io.RawIOBase):
    """At most `count` bytes of a stream."""

    def __init__(self, raw: IO[bytes], count: int) -> None:
        self._raw, self._left = raw, count

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._raw.read(size)
        self._left -= len(data)
        return data


@dataclasses.dataclass(frozen=True)
class Piece:
    """A whole input file or the byte range [start, end) of its (decompressed) content.

    `source` is what to open: the file itself, or a spilled copy of a compressed file's range
    (then `start` and `end` are offsets in the decompressed content, and the copy holds just
    that range). `first_line` is the number of the range's first line in the file.
    """

    path: str
    relpath: str
    compression: str
    start: int
    end: int | None  # None: to the end of the file
    first_line: int = 1
    source: str | None = None  # a spilled copy of the range (compressed inputs)
    stamp: tuple[int, int] | None = None  # (size, mtime_ns) of the file when it was planned


def file_stamp(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local file, to tell whether it changed; None elsewhere."""
    if storage.is_remote(path):
        return None
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def check_unchanged(piece: Piece) -> None:
    """DataError when the piece's file changed since it was planned (its records would not
    be those of the bytes the plan hashed)."""
    if piece.stamp is not None and file_stamp(piece.path) != piece.stamp:
        raise DataError(f"{piece.path}: changed while the build was reading it; rerun")


def open_piece(piece: Piece) -> IO[bytes]:
    """The piece's (decompressed) bytes as a stream, lone CRs as LF."""
    return LineEndReader(_piece_bytes(piece))


def _piece_bytes(piece: Piece) -> IO[bytes]:
    if piece.source is not None:
        return storage.open_read(piece.source)
    raw = storage.open_read(piece.path)
    if piece.compression == "none":
        raw.seek(piece.start)
        return raw if piece.end is None else _Limited(raw, piece.end - piece.start)
    stream = decompressed(raw, piece.compression)
    skip = piece.start
    while skip > 0:  # a range of a compressed file that was not spilled: read up to it
        skip -= len(stream.read(min(skip, BLOCK_BYTES))) or skip
    return stream if piece.end is None else _Limited(stream, piece.end - piece.start)


_BYTE_ORDER_MARKS = [  # UTF-32 first: its LE mark starts with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32 LE"),
    (b"\x00\x00\xfe\xff", "UTF-32 BE"),
    (b"\xff\xfe", "UTF-16 LE"),
    (b"\xfe\xff", "UTF-16 BE"),
]


def wide_encoding(head: bytes) -> str | None:
    """The UTF-16 or UTF-32 encoding (`UTF-16 LE` ...) that the first bytes of a file's content
    show: a byte order mark or, without one, mostly-ASCII text (NUL bytes where the high bytes
    of its code units are, none at the others); None for anything else."""
    for mark, name in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return name
    sample = head[: min(len(head), 4096) // 4 * 4]
    if len(sample) < 8 or sample.count(0) * 4 < len(sample):
        return None  # UTF-8 text holds no NUL (or a few, in bad lines): not a wide encoding
    share = [sample[i::4].count(0) / (len(sample) // 4) for i in range(4)]  # NULs at i mod 4
    for name, nul, text in [
        ("UTF-32 LE", (2, 3), (0,)),
        ("UTF-32 BE", (0, 1), (3,)),
        ("UTF-16 LE", (1, 3), (0, 2)),
        ("UTF-16 BE", (0, 2), (1, 3)),
    ]:
        if all(share[i] > 0.9 for i in nul) and all(share[i] < 0.1 for i in text):
            return name
    return None


# The start of a JSON object with a key: `{"id":`. Prose in braces (`{Note: ...}`) is not it.
_JSON_OBJECT_START = re.compile(r'\s*\{\s*"(?:[^"\\]|\\.)*"\s*:')


def looks_like_jsonl(head: bytes, whole: bool, lines: int = 5) -> bool:
    """Whether the first non-blank `lines` of a file's content (its first bytes `head`; the
    whole content when `whole`) are all JSON objects. A line that `head` cuts short (a long
    document) counts when it starts like one."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    found = [line.decode("utf-8", "replace") for line in text.splitlines() if line.strip()]
    cut = None if whole or not found or head.endswith((b"\n", b"\r")) else found.pop()
    found = found[:lines]
    for line in found:
        try:
            if not isinstance(json.loads(line), dict):
                return False
        except (ValueError, RecursionError):
            return False
    if cut is not None and len(found) < lines:
        if not _JSON_OBJECT_START.match(cut):
            return False
        found.append(cut)
    return bool(found)


@dataclasses.dataclass
class ReadStats:
    """What reading skipped or changed; reported in the manifest and the summary."""

    documents: int = 0
    empty_documents: int = 0
    empty_files: int = 0
    bad_lines: int = 0
    split_long_lines: int = 0

    def add(self, other: ReadStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_list(self) -> list[int]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    @classmethod
    def from_list(cls, values: list[int]) -> ReadStats:
        return cls(*(int(v) for v in values))


def _utf8_cut(piece: bytes) -> int:
    """Length of the longest prefix of `piece` that does not end inside a UTF-8 sequence."""
    end = len(piece)
    back = 0
    while back < 3 and end - back - 1 >= 0 and (piece[end - back - 1] & 0xC0) == 0x80:
        back += 1
    lead = end - back - 1
    if lead < 0:
        return end
    first = piece[lead]
    need = 1 if first < 0x80 else 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
    return end if back + 1 >= need else lead


Line = tuple[int, str]  # (line number in the file, text without its line end)


def read_lines(
    piece: Piece, stats: ReadStats, bad_lines: str = "error", cut_long_lines: bool = True
) -> Iterator[Line]:
    """Decoded lines of a piece with their numbers: BOM and CRLF handled, bad lines policed.

    Reads blocks and decodes each block's complete lines at once; a block holding a NUL byte or
    invalid UTF-8 is gone through line by line, for the line's number. With `cut_long_lines`, a
    line longer than MAX_LINE_BYTES is cut at UTF-8 boundaries into pieces of about that size
    (pieces of one line share its number); without, lines are kept whole (JSONL documents).
    """
    name = piece.path
    try:
        stream = open_piece(piece)
    except OSError as error:
        raise DataError(f"{name}: cannot open ({error.strerror or error})") from error
    number = piece.first_line - 1  # of the last line started
    continued = False  # the next bytes continue line `number` (a cut long line)
    at_file_start = piece.start == 0
    try:
        with stream:
            data = b""
            while True:
                # Blocks of MAX_LINE_BYTES: a line after the first of a block always fits in it.
                block = stream.read(MAX_LINE_BYTES)
                data += block
                while cut_long_lines and (
                    (len(data) if (n := data.find(b"\n")) < 0 else n) > MAX_LINE_BYTES
                ):
                    cut = _utf8_cut(data[:MAX_LINE_BYTES]) or MAX_LINE_BYTES
                    number += not continued
                    continued = True
                    stats.split_long_lines += 1
                    yield from _decoded(name, [data[:cut]], number, bad_lines, stats, False)
                    data = data[cut:]
                end = len(data) if not block else data.rfind(b"\n") + 1
                if end:
                    lines = data[:end].split(b"\n")
                    if block or data.endswith(b"\n"):
                        lines.pop()  # after the last line end
                    first = number + (not continued)
                    bom = at_file_start and first == piece.first_line
                    yield from _decoded(name, lines, first, bad_lines, stats, bom)
                    number, continued = first + len(lines) - 1, False
                    data = data[end:]
                if not block:
                    return
    except (OSError, EOFError, zlib.error, lzma.LZMAError) as error:
        raise DataError(f"{name}: corrupt or unreadable ({error})") from None


def _decoded(
    name: str, lines: list[bytes], first: int, bad_lines: str, stats: ReadStats, bom: bool
) -> Iterator[Line]:
    """Decoded `lines` numbered from `first`, CR and (at the file's start) a BOM dropped: all
    at once when they are clean, else line by line."""
    blob = b"\n".join(lines)
    if b"\x00" not in blob:
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if bom and text.startswith("\ufeff"):
                text = text[1:]
            decoded = text.split("\n")
            if "\r" in text:
                decoded = [line[:-1] if line.endswith("\r") else line for line in decoded]
            yield from enumerate(decoded, first)
            return
    for line_no, body in enumerate(lines, first):
        if b"\x00" in body:
            if bad_lines == "skip":
                stats.bad_lines += 1
                continue
            raise DataError(f"{name}:{line_no}: NUL byte in the text")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            if bad_lines == "skip":
                stats.bad_lines += 1
                continue
            raise DataError(
                f"{name}:{line_no}: invalid UTF-8 at byte {error.start} of the line"
            ) from None
        if bom and line_no == first and text.startswith("\ufeff"):
            text = text[1:]
        yield line_no, text.removesuffix("\r")


Splitter = Callable[[str], list[str]]


def paragraph_sentences(text: str, split: Splitter) -> list[str]:
    """Sentences of a text whose paragraphs are separated by blank lines (lines wrapped)."""
    sentences: list[str] = []
    for paragraph in text.split("\n\n"):
        joined = " ".join(line.strip() for line in paragraph.split("\n") if line.strip())
        if joined:
            sentences.extend(split(joined))
    return sentences


def read_documents(
    piece: Piece,
    input_format: str,
    split: Splitter,
    stats: ReadStats,
    jsonl_field: str = "text",
    bad_lines: str = "error",
) -> Iterator[list[str]]:
    """Documents of one piece, each a list of sentences; empty documents skipped and counted."""
    readers = {"lines": _lines_documents, "jsonl": _jsonl_documents, "text": _text_documents}
    before = stats.documents + stats.empty_documents
    for document in readers[input_format](piece, split, stats, jsonl_field, bad_lines):
        if document:
            stats.documents += 1
            yield document
        else:
            stats.empty_documents += 1
    if stats.documents + stats.empty_documents == before and piece.start == 0:
        stats.empty_files += 1


def _lines_documents(
    piece: Piece, split: Splitter, stats: ReadStats, field: str, bad_lines: str
) -> Iterator[list[str]]:
    document: list[str] = []
    for _, line in read_lines(piece, stats, bad_lines):
        line = line.strip()
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document


_SURROGATE = re.compile("[\ud800-\udfff]")


def _jsonl_documents(
    piece: Piece, split: Splitter, stats: ReadStats, field: str, bad_lines: str
) -> Iterator[list[str]]:
    for number, line in read_lines(piece, stats, bad_lines, cut_long_lines=False):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{piece.path}:{number}: invalid JSON ({error.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise DataError(f"{piece.path}:{number}: no string field {field!r}")
        # JSON may escape half a surrogate pair (`"\ud83d"`): text no UTF-8 encoder takes.
        if "\\u" in line and _SURROGATE.search(record[field]):
            if bad_lines == "skip":
                stats.bad_lines += 1
                continue
            raise DataError(
                f"{piece.path}:{number}: invalid Unicode escape: lone surrogate",
                path=piece.path,
                line=number,
            )
        text = record[field].replace("\r\n", "\n")
        yield paragraph_sentences(text.replace("\n", "\n\n"), split)


def _text_documents(
    piece: Piece, split: Splitter, stats: ReadStats, field: str, bad_lines: str
) -> Iterator[list[str]]:
    buffer = io.StringIO()
    for _, line in read_lines(piece, stats, bad_lines):
        buffer.write(line)
        buffer.write("\n")
    sentences = paragraph_sentences(buffer.getvalue(), split)
    if sentences:
        yield sentences
