"""Line ends: LF, CRLF and a lone CR (classic Mac files).

Every CR that is not part of a line end CR...LF reads as LF, a translation of the same length,
wherever content is read (planning's cuts and counts too), so offsets, cut points and line
numbers agree. A run of CRs before an LF (CRCRLF, from a double conversion) stays one line end.
"""

from __future__ import annotations

import io
import re
from typing import IO

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
