"""A GCS object read as a seekable stream of one generation, in large ranged reads."""

from __future__ import annotations

import errno
import io
from typing import Any

from pretrain_records.pipeline.storage import gcs


class Reader(io.RawIOBase):
    """An object as a seekable stream: one metadata request when opened (FileNotFoundError
    for a missing object), then ranged GETs of `block` bytes (more when a read asks for more),
    all of the generation found at the opening. A sequential read of N bytes costs 1 metadata
    request and ceil(N / block) reads."""

    def __init__(self, path: str, block: int = gcs.BLOCK) -> None:
        super().__init__()
        self.path = path
        self.block = block
        found = gcs.stat(path)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, "No such object", path)
        self.size, self.generation = found
        self._position = 0
        self._buffer = b""
        self._buffer_at = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        remaining = max(self.size - self._position, 0)
        wanted = remaining if size is None or size < 0 else min(size, remaining)
        parts = []
        while wanted > 0:
            inside = self._position - self._buffer_at
            if not 0 <= inside < len(self._buffer):
                self._fetch(wanted)
                continue
            part = self._buffer[inside : inside + wanted]
            parts.append(part)
            self._position += len(part)
            wanted -= len(part)
        return b"".join(parts)

    def _fetch(self, wanted: int) -> None:
        count = min(max(self.block, wanted), self.size - self._position)
        data = gcs.read_range(self.path, self._position, count, self.generation)
        if len(data) != count:
            raise OSError(errno.EIO, f"short read ({len(data)} of {count} bytes)", self.path)
        self._buffer, self._buffer_at = data, self._position

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise OSError(errno.EINVAL, "negative seek position", self.path)
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._buffer = b""
        super().close()
