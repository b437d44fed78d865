"""Input files: expansion of paths/globs/directories, fingerprints, and reading documents."""

from __future__ import annotations

import bz2
import dataclasses
import glob
import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

# A longer line is cut into pieces of at most this many bytes (at a UTF-8 boundary), so a line
# of many megabytes never sits in memory whole; each cut is counted.
MAX_LINE_BYTES = 1 << 20


class SourceError(ValueError):
    """An input that names no file (a usage error, exit 2)."""


class DataError(RuntimeError):
    """Unreadable or invalid input data (exit 1); the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class InputFile:
    path: str
    size: int
    sha256: str


@dataclasses.dataclass
class ReadStats:
    """What reading skipped or changed; reported in the manifest and the summary."""

    documents: int = 0
    empty_documents: int = 0
    empty_files: int = 0
    skipped_lines: int = 0
    split_long_lines: int = 0

    def add(self, other: ReadStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def _is_remote(path: str) -> bool:
    return "://" in path


def _gfile() -> Any:
    import tensorflow as tf

    return tf.io.gfile


def expand_inputs(patterns: list[str]) -> list[str]:
    """Sorted, de-duplicated files named by paths, globs and directories (local or gs://)."""
    found: set[str] = set()
    for pattern in patterns:
        if _is_remote(pattern):
            gfile = _gfile()
            if gfile.isdir(pattern):
                matches = [
                    os.path.join(root, name)
                    for root, _, names in gfile.walk(pattern)
                    for name in names
                ]
            else:
                matches = gfile.glob(pattern)
        elif os.path.isdir(pattern):
            matches = [
                os.path.join(root, name)
                for root, dirs, names in os.walk(pattern)
                for name in names
                if not name.startswith(".")
            ]
        else:
            matches = [m for m in glob.glob(pattern, recursive=True) if os.path.isfile(m)]
        if not matches:
            raise SourceError(f"no file matches {pattern}")
        found.update(matches)
    return sorted(found)


def open_binary(path: str) -> IO[bytes]:
    """Opens a local or gs:// file for reading bytes."""
    if _is_remote(path):
        return _gfile().GFile(path, "rb")
    return open(path, "rb")


def fingerprint(path: str) -> InputFile:
    """Size and sha256 of the file's stored bytes."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open_binary(path) as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from error
    return InputFile(path=path, size=size, sha256=digest.hexdigest())


def _decompressed(path: str, raw: IO[bytes]) -> IO[bytes]:
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)
    if path.endswith(".bz2"):
        return bz2.BZ2File(raw)
    return raw


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


def read_lines(path: str, stats: ReadStats, bad_lines: str = "error") -> Iterator[str]:
    """Decoded lines without line ends: BOM and CRLF handled, long lines cut, bad lines policed.

    Reads blocks of MAX_LINE_BYTES and decodes each block's complete lines at once; a block
    holding a NUL byte or invalid UTF-8 is gone through line by line, for the line's number.
    A line longer than MAX_LINE_BYTES is cut at UTF-8 boundaries into pieces of about that size
    (pieces of one line share its number).
    """
    try:
        raw = open_binary(path)
    except OSError as error:
        raise DataError(f"{path}: cannot open ({error.strerror or error})") from error
    number = 0  # of the last line started
    continued = False  # the next bytes continue line `number` (a cut long line)
    try:
        with raw, _decompressed(path, raw) as stream:
            data = b""
            while True:
                block = stream.read(MAX_LINE_BYTES)
                data += block
                # A first line too long is cut into pieces (later lines fit in a block).
                while (len(data) if (n := data.find(b"\n")) < 0 else n) > MAX_LINE_BYTES:
                    cut = _utf8_cut(data[:MAX_LINE_BYTES]) or MAX_LINE_BYTES
                    number += not continued
                    continued = True
                    stats.split_long_lines += 1
                    yield from _decoded(path, [data[:cut]], number, bad_lines, stats)
                    data = data[cut:]
                end = len(data) if not block else data.rfind(b"\n") + 1
                if end:
                    lines = data[:end].split(b"\n")
                    if block or data.endswith(b"\n"):
                        lines.pop()  # after the last line end
                    first = number + (not continued)
                    yield from _decoded(path, lines, first, bad_lines, stats)
                    number, continued = first + len(lines) - 1, False
                    data = data[end:]
                if not block:
                    return
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: corrupt or unreadable ({error})") from None


def _decoded(
    path: str, lines: list[bytes], first: int, bad_lines: str, stats: ReadStats
) -> Iterator[str]:
    """Decoded `lines` (numbered from `first`), CR and a leading BOM dropped: all at once when
    they are clean, else line by line."""
    blob = b"\n".join(lines)
    if b"\x00" not in blob:
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if first == 1 and text.startswith("\ufeff"):
                text = text[1:]
            decoded = text.split("\n")
            if "\r" in text:
                decoded = [line[:-1] if line.endswith("\r") else line for line in decoded]
            yield from decoded
            return
    for line_no, body in enumerate(lines, first):
        if b"\x00" in body:
            if bad_lines == "skip":
                stats.skipped_lines += 1
                continue
            raise DataError(f"{path}:{line_no}: NUL byte in the text")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            if bad_lines == "skip":
                stats.skipped_lines += 1
                continue
            raise DataError(
                f"{path}:{line_no}: invalid UTF-8 at byte {error.start} of the line"
            ) from None
        if line_no == 1 and text.startswith("\ufeff"):
            text = text[1:]
        yield text.removesuffix("\r")


Splitter = Callable[[str], list[str]]


def make_splitter(language: str) -> Splitter:
    """Sentence splitter from sentencex (multilingual, rule-based, pure Python)."""
    from sentencex import segment

    def split(paragraph: str) -> list[str]:
        return [s.strip() for s in segment(language, paragraph) if s.strip()]

    return split


def _paragraph_sentences(text: str, split: Splitter) -> list[str]:
    """Sentences of a text whose paragraphs are separated by blank lines (lines wrapped)."""
    sentences: list[str] = []
    for paragraph in text.split("\n\n"):
        joined = " ".join(line.strip() for line in paragraph.split("\n") if line.strip())
        if joined:
            sentences.extend(split(joined))
    return sentences


def read_documents(
    path: str,
    input_format: str,
    split: Splitter,
    stats: ReadStats,
    jsonl_field: str = "text",
    bad_lines: str = "error",
) -> Iterator[list[str]]:
    """Documents of one file, each a list of sentences; empty documents skipped and counted."""
    lines = read_lines(path, stats, bad_lines)
    produced = 0

    def emit(sentences: list[str]) -> Iterator[list[str]]:
        nonlocal produced
        if sentences:
            produced += 1
            stats.documents += 1
            yield sentences
        else:
            stats.empty_documents += 1

    if input_format == "lines":
        document: list[str] = []
        seen_text = False
        for line in lines:
            line = line.strip()
            if line:
                document.append(line)
                seen_text = True
            elif document:
                yield from emit(document)
                document = []
        if document:
            yield from emit(document)
        if not seen_text:
            stats.empty_files += 1
    elif input_format == "jsonl":
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: invalid JSON ({error.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get(jsonl_field), str):
                raise DataError(f"{path}:{number}: no string field {jsonl_field!r}")
            text = record[jsonl_field].replace("\r\n", "\n")
            yield from emit(_paragraph_sentences(text.replace("\n", "\n\n"), split))
        if produced == 0 and stats.empty_documents == 0:
            stats.empty_files += 1
    elif input_format == "text":
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            buffer.write("\n")
        sentences = _paragraph_sentences(buffer.getvalue(), split)
        if not sentences:
            stats.empty_files += 1
        else:
            yield from emit(sentences)
    else:
        raise ValueError(f"unknown input_format {input_format!r}")
