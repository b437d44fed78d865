"""Planning: scanned pieces (`scanning`) grouped into work units of bounded size.

Pieces of big files are units of their own. Smaller files are grouped into units by
a content-defined rule (a unit ends after a piece whose content hash is 0 mod 4, once it holds a
quarter of unit_bytes), so a file coming or going changes one unit. With `sentence_task: nsp` a
unit holding fewer than two documents is merged into its neighbour, so that random next
sentences always have another document to come from.

A unit's key (the seed of its draws) comes from its pieces' content; the relative path and
offset join in only for a piece whose content appeared earlier in the input (two copies of one
file are two units with their own draws).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.reading.compression import decompressed
from pretrain_records.pipeline.reading.inputs import InputFile
from pretrain_records.pipeline.reading.pieces import BLOCK_BYTES, Piece
from pretrain_records.pipeline.reading.scanning import PLAN_VERSION, PieceInfo, ScannedFile, opened

__all__ = ["PLAN_VERSION", "Unit", "group", "human_bytes", "spill_compressed"]

SPILL_THREADS = 4  # compressed files inflated at once before the units are built


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
        size += info.content_bytes
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
    if len(first.pieces) > 1 and first.format == "parquet":
        label += f" [row groups {info.start}-{info.end - 1}]"
    elif len(first.pieces) > 1:
        label += f" [{human_bytes(info.start)}-{human_bytes(info.end)}]"
    if len(group) > 1:
        label += f" +{len(group) - 1} {'pieces' if len(first.pieces) > 1 else 'files'}"
    return Unit(
        key=hashlib.sha256("\n".join(piece_ids).encode()).hexdigest()[:32],
        pieces=tuple(f.piece(i) for f, i in group),
        piece_bytes=tuple(i.content_bytes for _, i in group),
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
            spillable = piece.format is None and piece.compression != "none"
            if spillable and piece.end is not None and piece.source is None:
                wanted.setdefault(piece.path, []).append((j, k, piece))
    if not wanted:
        return jobs
    storage.makedirs(out.work("pieces"))
    by_path = {f.path: f for f in files}

    def spill(path: str, items: list[tuple[int, int, Piece]]) -> dict[tuple[int, int], Piece]:
        scanned, done = by_path[path], {}
        with opened(InputFile(path, scanned.relpath)) as raw:
            stream = decompressed(raw, scanned.compression)
            position = 0
            for j, k, piece in sorted(items, key=lambda item: item[2].start):
                target = out.work("pieces", f"{jobs[j].fingerprint}-{k}.txt")
                position = _copy_range(stream, position, piece.start, piece.end or 0, target)
                done[(j, k)] = dataclasses.replace(piece, source=target)
        return done

    replaced: dict[tuple[int, int], Piece] = {}
    with ThreadPoolExecutor(max_workers=SPILL_THREADS) as pool:  # inflating releases the GIL
        for done in pool.map(lambda item: spill(*item), wanted.items()):
            replaced.update(done)
    return [
        dataclasses.replace(
            job, pieces=tuple(replaced.get((j, k), p) for k, p in enumerate(job.pieces))
        )
        for j, job in enumerate(jobs)
    ]


def _copy_range(stream: IO[bytes], position: int, start: int, end: int, target: str) -> int:
    """Copies [start, end) of a stream now at `position` into `target`; returns the new position."""
    while position < start:
        skipped = len(stream.read(min(start - position, BLOCK_BYTES)))
        if not skipped:
            raise EOFError("the file ended before a piece of it")
        position += skipped
    writer = storage.Writer(target, durable=False)  # scratch: a rerun spills again
    try:
        while position < end:
            block = stream.read(min(end - position, BLOCK_BYTES))
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
