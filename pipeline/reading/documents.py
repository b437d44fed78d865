"""Reading documents from input pieces, by format, each a list of sentences.

Formats: `lines` (a sentence per line, blank lines between documents), `jsonl` (a document per
line, its text in `text_field`, of any length: memory is bounded by the longest document),
`text` (one document per file, paragraphs by blank lines, lines wrapped), `parquet` (a document
per row, its text in the `text_field` column; see `parquet_input`), `wikipedia` (an article per
page of a MediaWiki XML dump; see `wikipedia`). JSONL and parquet rows may be filtered on their
fields (`row_filters`): rows left out are counted. Pieces and their byte streams are in
`pieces`, decoded lines in `lines`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from pretrain_records.pipeline.config import row_filters
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading.lines import read_lines
from pretrain_records.pipeline.reading.pieces import Piece, ReadStats

Splitter = Callable[[str], list[str]]
FORMATS = ("lines", "jsonl", "text", "parquet", "wikipedia")


@dataclasses.dataclass(frozen=True)
class _Options:
    text_field: str
    bad_lines: str
    conditions: tuple[row_filters.Condition, ...]


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
    text_field: str = "text",
    bad_lines: str = "error",
    conditions: tuple[row_filters.Condition, ...] = (),
) -> Iterator[list[str]]:
    """Documents of one piece (in its own format when it has one, a parquet file among JSONL
    say, else `input_format`), each a list of sentences; empty documents skipped and counted."""
    readers = {
        "lines": _lines_documents,
        "jsonl": _jsonl_documents,
        "text": _text_documents,
        "parquet": _parquet_documents,
        "wikipedia": _wikipedia_documents,
    }
    options = _Options(text_field, bad_lines, conditions)
    before = stats.documents + stats.empty_documents + stats.filtered_rows
    for document in readers[piece.format or input_format](piece, split, stats, options):
        if document:
            stats.documents += 1
            yield document
        else:
            stats.empty_documents += 1
    if stats.documents + stats.empty_documents + stats.filtered_rows == before and not piece.start:
        stats.empty_files += 1


def documents_of(
    piece: Piece, config: Any, split: Splitter, stats: ReadStats
) -> Iterator[list[str]]:
    """`read_documents` with a build config's reading settings (input format, text field,
    bad lines, filters)."""
    return read_documents(
        piece,
        config.input_format,
        split,
        stats,
        config.text_field,
        config.bad_lines,
        row_filters.parse_all(config.filters),
    )


def _lines_documents(
    piece: Piece, split: Splitter, stats: ReadStats, options: _Options
) -> Iterator[list[str]]:
    document: list[str] = []
    for _, line in read_lines(piece, stats, options.bad_lines):
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
    piece: Piece, split: Splitter, stats: ReadStats, options: _Options
) -> Iterator[list[str]]:
    field = options.text_field
    for number, line in read_lines(piece, stats, options.bad_lines, cut_long_lines=False):
        if not line.strip():
            continue
        where = dict(path=piece.path, line=number)
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{piece.path}:{number}: invalid JSON ({error.msg})", **where) from None
        if not isinstance(record, dict) or not isinstance(record.get(field), str):
            raise DataError(f"{piece.path}:{number}: no string field {field!r}", **where)
        # JSON may escape half a surrogate pair (`"\ud83d"`): text no UTF-8 encoder takes.
        if "\\u" in line and _SURROGATE.search(record[field]):
            if options.bad_lines == "skip":
                stats.bad_lines += 1
                continue
            raise DataError(
                f"{piece.path}:{number}: invalid Unicode escape: lone surrogate", **where
            )
        try:
            kept = row_filters.keeps(record, options.conditions)
        except row_filters.RowError as error:
            raise DataError(f"{piece.path}:{number}: {error}", **where) from None
        if not kept:
            stats.filtered_rows += 1
            continue
        text = record[field].replace("\r\n", "\n")
        yield paragraph_sentences(text.replace("\n", "\n\n"), split)


def _text_documents(
    piece: Piece, split: Splitter, stats: ReadStats, options: _Options
) -> Iterator[list[str]]:
    buffer = io.StringIO()
    for _, line in read_lines(piece, stats, options.bad_lines):
        buffer.write(line)
        buffer.write("\n")
    sentences = paragraph_sentences(buffer.getvalue(), split)
    if sentences:
        yield sentences


def _parquet_documents(
    piece: Piece, split: Splitter, stats: ReadStats, options: _Options
) -> Iterator[list[str]]:
    from pretrain_records.pipeline.reading import parquet_input

    groups = (piece.start, piece.end)
    rows = parquet_input.rows(
        piece.path, groups, piece.first_line, options.text_field, options.conditions
    )
    for _, text, kept in rows:
        if not kept:
            stats.filtered_rows += 1
        elif text is None:
            yield []
        else:
            text = text.replace("\r\n", "\n")
            yield paragraph_sentences(text.replace("\n", "\n\n"), split)


def _wikipedia_documents(
    piece: Piece, split: Splitter, stats: ReadStats, options: _Options
) -> Iterator[list[str]]:
    from pretrain_records.pipeline.reading import wikipedia_input

    for text in wikipedia_input.article_texts(piece):
        yield paragraph_sentences(text, split)
