"""A piece's lines, decoded, with their real line numbers in the file (every error names the
file and line): BOM and CRLF handled, invalid UTF-8 and NUL bytes failing or, with `bad_lines:
skip`, skipped and counted, lines of many megabytes cut in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading.compression import STREAM_ERRORS
from pretrain_records.pipeline.reading.pieces import Piece, ReadStats, open_piece

# `lines` and `text`: a longer line is cut into pieces of at most this many bytes (at a UTF-8
# boundary), so a line of many megabytes never sits in memory whole; each cut is counted.
MAX_LINE_BYTES = 1 << 20


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
    except STREAM_ERRORS as error:
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
