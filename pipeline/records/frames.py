"""TFRecord framing, read without TensorFlow: each record is a frame `length (uint64), masked
CRC-32C of the length, the record's bytes, masked CRC-32C of the bytes`, in a stream that may be
gzip or zlib deflated. Frames walked block by block in flat memory, each CRC checked or not."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Iterator

import google_crc32c
from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError

_BLOCK = 4 << 20  # bytes read, and at most inflated, at a time: memory stays flat
_FRAME_HEADER = struct.Struct("<QI")  # record length, masked CRC-32C of the length's 8 bytes
_FRAME_FOOTER = struct.Struct("<I")  # masked CRC-32C of the record's bytes
_REPORTED = 5  # bad records named per shard; the rest are counted


def read_records(path: str, compression: str) -> Iterator[bytes]:
    """Each record's bytes of a TFRecord file (`compression`: none, gzip or zlib), read
    through `storage.open_read` in blocks, both CRCs of every frame checked; DataError naming
    the file for a frame that is damaged or cut short, or a compressed stream that is broken.
    Holds a block and one record at most."""
    buffer = bytearray()
    start = 0  # where the next frame begins in `buffer`
    offset = 0  # stream offset of buffer[0]
    record = 0
    where = " of the inflated stream" if compression in _WBITS else ""

    def problem(what: str) -> DataError:
        at = f"record {record} (byte {offset + start}{where})"
        return DataError(f"{path}: unreadable ({at}: {what})", path=path)

    for block in _stream_blocks(path, compression):
        del buffer[:start]
        offset += start
        start = 0
        buffer += block
        while len(buffer) - start >= _FRAME_HEADER.size:
            length, length_crc = _FRAME_HEADER.unpack_from(buffer, start)
            if masked_crc32c(bytes(buffer[start : start + 8])) != length_crc:
                raise problem("length CRC mismatch")
            body = start + _FRAME_HEADER.size
            end = body + length + _FRAME_FOOTER.size
            if end > len(buffer):
                break
            data = bytes(buffer[body : end - _FRAME_FOOTER.size])
            if masked_crc32c(data) != _FRAME_FOOTER.unpack_from(buffer, end - 4)[0]:
                raise problem("data CRC mismatch")
            yield data
            record += 1
            start = end
    if start < len(buffer):
        raise problem("the file ends inside this record")


_WBITS = {"gzip": 31, "zlib": 15}


def _stream_blocks(path: str, compression: str) -> Iterator[bytes]:
    """The record stream of a file in blocks of at most _BLOCK bytes (inflated for gzip and
    zlib); DataError for a compressed stream that is broken or ends early."""
    wbits = _WBITS.get(compression)
    inflate = zlib.decompressobj(wbits=wbits) if wbits else None
    with storage.open_read(path) as stream:
        while block := stream.read(_BLOCK):
            if inflate is None:
                yield block
                continue
            if inflate.eof:
                raise DataError(
                    f"{path}: unreadable (data after the end of its compressed stream)", path=path
                )
            try:
                yield inflate.decompress(block, _BLOCK)
                while inflate.unconsumed_tail:
                    yield inflate.decompress(inflate.unconsumed_tail, _BLOCK)
            except zlib.error as error:
                raise DataError(f"{path}: unreadable ({error})", path=path) from None
            if inflate.eof and inflate.unused_data:
                raise DataError(
                    f"{path}: unreadable (data after the end of its compressed stream)", path=path
                )
    if inflate is not None and not inflate.eof:
        raise DataError(f"{path}: unreadable (the compressed stream ends early)", path=path)


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum of `data`: CRC-32C (Castagnoli), rotated right by 15 bits, plus a
    constant (masked, so that a CRC stored inside checksummed data does not cancel out)."""
    return _masked(google_crc32c.value(data))


def _masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class FrameWalk:
    """Walks the frames of one TFRecord stream fed in blocks of any size (uint64 length,
    uint32 masked CRC of it, the data, uint32 masked CRC of the data), counting records and,
    with `crc`, checking both checksums of each. Holds at most a frame's header or footer,
    never a record, so a record of any size takes no memory.

    `problems` lists one line per finding naming `path`, the record (counted from 0) and the
    offset of its frame in the stream (`where` says which stream: "" or " of the inflated
    stream"). After a wrong length CRC the frames that follow cannot be found: `lost` is set
    and the walk stops."""

    def __init__(self, path: str, crc: bool = True, where: str = "") -> None:
        self.path, self.crc, self.where = path, crc, where
        self.records = 0  # complete frames so far
        self.bad_records = 0  # of which with a data CRC mismatch
        self.problems: list[str] = []
        self.lost = False
        self.cut = False  # the stream ended inside a frame
        self._offset = 0  # stream offset of the next byte fed
        self._start = 0  # stream offset of the current frame
        self._partial = b""  # header or footer bytes of the current frame so far
        self._left = -1  # data bytes of the current record still to come; -1: in the header
        self._crc = 0  # CRC-32C of the current record's data so far

    def feed(self, data: bytes) -> None:
        """The next bytes of the stream."""
        pos, end = 0, len(data)
        while pos < end and not self.lost:
            if self._left < 0 and not self._partial and end - pos >= _FRAME_HEADER.size:
                # Most frames lie whole inside a block: checked in place, without copies.
                length, length_crc = _FRAME_HEADER.unpack_from(data, pos)
                stop = pos + _FRAME_HEADER.size + length + _FRAME_FOOTER.size
                if stop <= end:
                    self._start = self._offset + pos
                    if self.crc:
                        if masked_crc32c(data[pos : pos + 8]) != length_crc:
                            self._lose()
                            break
                        body = data[pos + _FRAME_HEADER.size : stop - _FRAME_FOOTER.size]
                        self._check_data(google_crc32c.value(body), data[stop - 4 : stop])
                    self.records += 1
                    pos = stop
                    continue
            pos = self._step(data, pos, end)
        self._offset += end

    def _step(self, data: bytes, pos: int, end: int) -> int:
        """One piece of a frame that crosses the end of a block; the position after it."""
        if self._left < 0:  # header
            if not self._partial:
                self._start = self._offset + pos
            take = min(_FRAME_HEADER.size - len(self._partial), end - pos)
            self._partial += data[pos : pos + take]
            if len(self._partial) == _FRAME_HEADER.size:
                length, length_crc = _FRAME_HEADER.unpack(self._partial)
                if self.crc and masked_crc32c(self._partial[:8]) != length_crc:
                    self._lose()
                    return end
                self._partial, self._left, self._crc = b"", length, 0
            return pos + take
        if self._left > 0:  # data
            take = min(self._left, end - pos)
            if self.crc:
                self._crc = google_crc32c.extend(self._crc, data[pos : pos + take])
            self._left -= take
            return pos + take
        take = min(_FRAME_FOOTER.size - len(self._partial), end - pos)  # footer
        self._partial += data[pos : pos + take]
        if len(self._partial) == _FRAME_FOOTER.size:
            if self.crc:
                self._check_data(self._crc, self._partial)
            self.records += 1
            self._partial, self._left = b"", -1
        return pos + take

    def _here(self) -> str:
        return f"{self.path}: record {self.records} (byte {self._start}{self.where})"

    def _check_data(self, crc: int, footer: bytes) -> None:
        if _masked(crc) == _FRAME_FOOTER.unpack(footer)[0]:
            return
        self.bad_records += 1
        if self.bad_records <= _REPORTED:
            self.problems.append(f"{self._here()}: data CRC mismatch")

    def _lose(self) -> None:
        self.lost = True
        self.problems.append(
            f"{self._here()}: length CRC mismatch; the records after it cannot be found"
        )

    def finish(self) -> None:
        """The stream ended: a frame cut short is a problem; bad records beyond those named
        are counted."""
        if self.bad_records > _REPORTED:
            self.problems.append(
                f"{self.path}: {self.bad_records - _REPORTED} more records with a data CRC mismatch"
            )
        if not self.lost and (self._partial or self._left >= 0):
            self.cut = True
            self.problems.append(f"{self._here()}: the file ends inside this record")


@dataclasses.dataclass
class ShardCheck:
    """What one reading of a shard found: its size and sha256, its records (complete frames)
    and the problems of its frames (empty: none)."""

    size: int
    sha256: str
    records: int
    problems: list[str]
    complete: bool  # every frame was found: `records` is the shard's count


def check_shard(path: str, compression: str, crc: bool = True) -> ShardCheck:
    """Reads a shard once: its sha256 over the stored bytes, and every frame of the (inflated,
    for `gzip` / `zlib`) record stream, with both CRCs of each record unless `crc` is false.
    No TensorFlow; memory stays flat whatever the sizes of the shard and its records."""
    digest, size = hashlib.sha256(), 0
    wbits = _WBITS.get(compression)
    inflate = zlib.decompressobj(wbits=wbits) if wbits else None
    walk = FrameWalk(path, crc, " of the inflated stream" if inflate else "")
    broken = ""  # why the stream could not be inflated to its end
    with storage.open_read(path) as stream:
        while block := stream.read(_BLOCK):
            digest.update(block)
            size += len(block)
            if inflate is None:
                walk.feed(block)
                continue
            if broken or walk.lost or inflate.eof:
                if inflate.eof:
                    broken = broken or "data after the end of its compressed stream"
                continue  # still hashed: the sha256 is checked all the same
            try:
                walk.feed(inflate.decompress(block, _BLOCK))
                while inflate.unconsumed_tail and not walk.lost:
                    walk.feed(inflate.decompress(inflate.unconsumed_tail, _BLOCK))
            except zlib.error as error:
                broken = f"unreadable ({error})"
            if inflate.eof and inflate.unused_data:
                broken = "data after the end of its compressed stream"
    if inflate is not None and not broken and not walk.lost and not inflate.eof:
        broken = "the compressed stream ends early"
    if broken:
        walk.lost = True  # a frame cut by the compression is the compression's problem
        walk.problems.append(f"{path}: {broken}")
    walk.finish()
    complete = not walk.lost and not walk.cut
    return ShardCheck(size, digest.hexdigest(), walk.records, walk.problems, complete)


def count_records(path: str, compression: str) -> int:
    """Records of a TFRecord file, counted from its frames without checking CRCs and without
    TensorFlow; DataError for a file that ends inside a frame or whose compression is broken."""
    check = check_shard(path, compression, crc=False)
    if check.problems:
        raise DataError(check.problems[0], path=path)
    return check.records
