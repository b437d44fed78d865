"""Parquet inputs (FineWeb, most Hugging Face datasets): one document per row, its text in the
`text_field` column, read row group by row group with pyarrow (memory: a batch of rows).

Row groups are the natural unit boundaries: a file is cut into pieces of whole row groups of
about `unit_bytes` (uncompressed), each piece identified by the sha256 of its row groups' bytes,
so appending row groups rebuilds only the pieces they join. A piece's `start`/`end` are row
group indices and its `first_line` the number of its first row (from 1), which errors name.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from typing import IO, Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.config import row_filters
from pretrain_records.pipeline.ground.errors import DataError, UsageError

MAGIC = b"PAR1"
BATCH_ROWS = 1024


@dataclasses.dataclass(frozen=True)
class RowGroups:
    """A piece of a parquet file: row groups [start, end), their first row and content hash."""

    start: int
    end: int
    first_row: int
    rows: int
    sha256: str
    bytes: int  # uncompressed, as the file's metadata gives it


def _open(path: str, source: IO[bytes]) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(source)
    except Exception as error:  # pyarrow raises ArrowInvalid, OSError, ...
        raise DataError(f"{path}: not a readable parquet file ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def check_columns(path: str, parquet: Any, wanted: list[str]) -> None:
    """UsageError (exit 2) naming the file and the columns it has when one is missing."""
    names = parquet.schema_arrow.names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise UsageError(
            f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(names)}); "
            "set text_field (or the filters) to one of them",
            path=path,
        )


def _byte_range(group: Any) -> tuple[int, int]:
    """Where a row group's column chunks lie in the file."""
    starts, ends = [], []
    for c in range(group.num_columns):
        column = group.column(c)
        start = column.data_page_offset
        if column.has_dictionary_page and column.dictionary_page_offset:
            start = min(start, column.dictionary_page_offset)
        starts.append(start)
        ends.append(start + column.total_compressed_size)
    return min(starts), max(ends)


def scan(path: str, unit_bytes: int, text_field: str, filter_fields: list[str]) -> list[RowGroups]:
    """The pieces of a parquet file (see the module docstring); its columns are checked."""
    with storage.open_read(path) as source:
        parquet = _open(path, source)
        check_columns(path, parquet, [text_field, *filter_fields])
        meta = parquet.metadata
        pieces: list[RowGroups] = []
        start, size, first_row, rows = 0, 0, 0, 0
        digest = hashlib.sha256()
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            low, high = _byte_range(group)
            source.seek(low)
            data = source.read(high - low)
            if len(data) != high - low:
                raise DataError(f"{path}: row group {g} lies past the end of the file", path=path)
            digest.update(data)
            size += group.total_byte_size
            rows += group.num_rows
            if size >= unit_bytes or g == meta.num_row_groups - 1:
                pieces.append(RowGroups(start, g + 1, first_row, rows, digest.hexdigest(), size))
                start, size, first_row, rows = g + 1, 0, first_row + rows, 0
                digest = hashlib.sha256()
    return pieces or [RowGroups(0, 0, 0, 0, hashlib.sha256().hexdigest(), 0)]


def rows(
    path: str,
    groups: tuple[int, int | None],
    first_row: int,
    text_field: str,
    conditions: tuple[row_filters.Condition, ...],
) -> Iterator[tuple[int, str | None, bool]]:
    """(row number from 1, its text or None for a null, whether it meets the filters) of the
    row groups [start, end) (end None: to the last)."""
    with storage.open_read(path) as source:
        parquet = _open(path, source)
        columns = sorted({text_field, *row_filters.fields(conditions)})
        check_columns(path, parquet, columns)
        start, end = groups
        selected = list(range(start, parquet.metadata.num_row_groups if end is None else end))
        number = first_row
        try:
            batches = parquet.iter_batches(
                batch_size=BATCH_ROWS, row_groups=selected, columns=columns, use_threads=False
            )
            for batch in batches:
                table = batch.to_pydict()
                for i, text in enumerate(table[text_field]):
                    number += 1
                    row = {name: values[i] for name, values in table.items()}
                    try:
                        kept = row_filters.keeps(row, conditions)
                    except row_filters.RowError as error:
                        raise DataError(f"{path}: row {number}: {error}", path=path) from None
                    if text is not None and not isinstance(text, str):
                        raise DataError(
                            f"{path}: row {number}: column {text_field!r} is not text "
                            f"({type(text).__name__})",
                            path=path,
                        )
                    yield number, text, kept
        except DataError:
            raise
        except Exception as error:  # a corrupt page: ArrowInvalid, OSError
            raise DataError(
                f"{path}: unreadable parquet data after row {number} ({_first_line(error)})",
                path=path,
            ) from None


def is_parquet(head: bytes) -> bool:
    return head.startswith(MAGIC)
