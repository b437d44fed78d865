"""Pieces of input files (a whole file, or a range of its content) as byte streams, and what
reading them counts (ReadStats)."""

from __future__ import annotations

import dataclasses
import os
from typing import IO

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading.compression import BLOCK_BYTES, Limited, decompressed
from pretrain_records.pipeline.reading.line_ends import LineEndReader


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
    # The piece's own format when it is not the config's (a parquet file among JSONL ones);
    # for parquet, start and end are row group indices and first_line the rows before them.
    format: str | None = None


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
        return raw if piece.end is None else Limited(raw, piece.end - piece.start)
    stream = decompressed(raw, piece.compression)
    skip = piece.start
    while skip > 0:  # a range of a compressed file that was not spilled: read up to it
        skip -= len(stream.read(min(skip, BLOCK_BYTES))) or skip
    return stream if piece.end is None else Limited(stream, piece.end - piece.start)


@dataclasses.dataclass
class ReadStats:
    """What reading skipped or changed; reported in the manifest and the summary."""

    documents: int = 0
    empty_documents: int = 0
    empty_files: int = 0
    bad_lines: int = 0
    split_long_lines: int = 0
    filtered_rows: int = 0  # JSONL and parquet rows the filters left out

    def add(self, other: ReadStats) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def as_list(self) -> list[int]:
        return [getattr(self, f.name) for f in dataclasses.fields(self)]

    @classmethod
    def from_list(cls, values: list[int]) -> ReadStats:
        return cls(*(int(v) for v in values))


STATS_FIELDS = len(dataclasses.fields(ReadStats))  # the statistics' width in the pipeline
