"""Compressed inputs: the compression recognised by a file's first bytes, and its content as a
stream.

gzip, bz2, xz, zlib and zstd (one frame or many, as The Pile and RedPajama publish `.jsonl.zst`)
are read through; zip, 7z and lz4 are an error naming the file and the format. A suffix alone
decides nothing. A stream that ends inside a frame or member is an error, never a silent cut.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import IO

from pretrain_records.pipeline.ground.errors import DataError

BLOCK_BYTES = 1 << 20
FEED_BYTES = 16 << 10  # compressed bytes fed to a decompressor at once

# Magic bytes of compressed formats: the supported ones are read through; the others are an
# error naming the format. zstd's is a frame's (skippable frames are not a file's first bytes).
SUPPORTED = {
    "gzip": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
}
UNSUPPORTED = {"zip": b"PK\x03\x04", "7z": b"7z\xbc\xaf\x27\x1c", "lz4": b"\x04\x22\x4d\x18"}

# What reading a corrupt compressed stream can raise (zstd's error joins when it is imported).
STREAM_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError)


def compression_of(head: bytes, name: str) -> str:
    """`none`, `gzip`, `bz2`, `xz`, `zstd` or `zlib` from a file's first bytes; DataError naming
    the file for a compressed format the tool does not read."""
    for kind, magic in SUPPORTED.items():
        if head.startswith(magic):
            return kind
    for kind, magic in UNSUPPORTED.items():
        if head.startswith(magic):
            raise DataError(
                f"{name}: {kind}-compressed input is not supported (use gzip, bz2, xz, zstd)",
                path=name,
            )
    if _zlib_header(head) and (head[1] in (0x01, 0x9C, 0xDA) or name.endswith((".zz", ".zlib"))):
        return "zlib"
    return "none"


def _zlib_header(head: bytes) -> bool:
    return len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0


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
    if compression == "zstd":
        return ZstdReader(raw)
    return raw


class _Inflating(io.RawIOBase):
    """A compressed stream read as a file, through a decompressor object per frame. Input is
    fed FEED_BYTES at a time and output taken as it is asked for, so memory stays bounded by a
    read's size plus what FEED_BYTES inflate to (a small file that inflates to gigabytes is read
    like any other), and reading costs time linear in what is read."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._input = memoryview(b"")
        self._out = bytearray()  # inflated bytes not read yet, from self._at
        self._at = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._out) - self._at < size):
            if not self._input:
                block = self._raw.read(BLOCK_BYTES)
                if not block:
                    self._out += self._finish()
                    self._ended = True
                    break
                self._input = memoryview(block)
            feed, self._input = self._input[:FEED_BYTES], self._input[FEED_BYTES:]
            self._out += self._feed(bytes(feed))
        end = len(self._out) if size < 0 else min(len(self._out), self._at + size)
        data = bytes(self._out[self._at : end])
        self._at = end
        if self._at > len(self._out) // 2:  # drop what was read, now and then
            del self._out[: self._at]
            self._at = 0
        return data

    def _feed(self, block: bytes) -> bytes:
        raise NotImplementedError

    def _finish(self) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _ZlibReader(_Inflating):
    """A zlib stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(raw)
        self._inflate = zlib.decompressobj()

    def _feed(self, block: bytes) -> bytes:
        return self._inflate.decompress(block)

    def _finish(self) -> bytes:
        data = self._inflate.flush()
        if not self._inflate.eof:
            raise EOFError("zlib stream ended before its end marker")
        return data


class ZstdReader(_Inflating):
    """zstd frames, one after another (a `.zst` file may hold many: they read as one stream).
    A file that ends inside a frame is an EOFError, as a cut gzip file is."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__(raw)
        import zstandard

        self._zstd = zstandard
        self._frame = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False  # bytes of the current frame were fed

    def _feed(self, block: bytes) -> bytes:
        out = []
        while block:
            try:
                out.append(self._frame.decompress(block))
            except self._zstd.ZstdError as error:
                raise EOFError(f"corrupt zstd data ({error})") from None
            self._in_frame = True
            if not self._frame.eof:
                break
            block = self._frame.unused_data  # the next frame starts here
            self._frame = self._zstd.ZstdDecompressor().decompressobj()
            self._in_frame = False
        return b"".join(out)

    def _finish(self) -> bytes:
        if self._in_frame and not self._frame.eof:
            raise EOFError("zstd stream ended inside a frame (a truncated file?)")
        return b""


class Limited(io.RawIOBase):
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

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _zstd_errors() -> tuple[type[BaseException], ...]:
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        return ()
    return (zstandard.ZstdError,)


STREAM_ERRORS = STREAM_ERRORS + _zstd_errors()
