"""Multistream MediaWiki dumps cut into work units at bz2 stream boundaries.

A multistream dump (`*-pages-articles-multistream.xml.bz2`) is bz2 streams end to end: the first
holds `<mediawiki><siteinfo>`, each later one about 100 pages, the last `</mediawiki>`. Its
index beside it (`*-multistream-index.txt.bz2`, lines `offset:page id:title`) gives the streams'
byte offsets (`stream_offsets`); `stream_ranges` cuts the dump into ranges of about N bytes at
those offsets, whatever the number of workers; `read_stream_range` reads one range's pages on its
own, parsed by `wikipedia.PageParser` inside a stand-in root, in memory bounded by a page.
"""

from __future__ import annotations

import bz2
import re
from collections.abc import Iterator
from typing import IO

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading import wikipedia

_MULTISTREAM = re.compile(r"(.*-multistream)(\d*)\.xml(-p\d+p\d+)?\.bz2")
_INDEX_LINE_BYTES = 4096  # offset:id:title, a title at most 255 bytes


def index_path_for(dump_path: str) -> str | None:
    """The index of a multistream dump (`...-multistream.xml.bz2` ->
    `...-multistream-index.txt.bz2`, part files `...-multistream3.xml-p1p2.bz2` ->
    `...-multistream-index3.txt-p1p2.bz2`); None for other names. Whether it exists is the
    caller's question."""
    match = _MULTISTREAM.fullmatch(dump_path)
    if match is None:
        return None
    stem, part, pages = match.groups()
    return f"{stem}-index{part}.txt{pages or ''}.bz2"


def stream_offsets(index_path: str) -> list[int]:
    """The distinct byte offsets of the bz2 streams an index names, ascending.

    Raises:
      DataError: naming the index and line, for a line that is not `offset:page id:title`.
    """
    offsets: set[int] = set()
    last = -1
    try:
        with storage.open_read(index_path) as raw, bz2.BZ2File(raw) as lines:
            number = 0
            while line := lines.readline(_INDEX_LINE_BYTES):
                number += 1
                field, colon, _ = line.partition(b":")
                if not colon or not field.isdigit() or len(line) == _INDEX_LINE_BYTES:
                    if not line.strip():
                        continue
                    message = f"{index_path}:{number}: not a multistream index line"
                    raise DataError(f"{message} (offset:page id:title)", path=index_path)
                if (offset := int(field)) != last:
                    offsets.add(offset)
                    last = offset
    except wikipedia.READ_ERRORS as error:
        raise DataError(f"{index_path}: corrupt or unreadable ({error})", path=index_path) from None
    return sorted(offsets)


def stream_ranges(offsets: list[int], size: int, unit_bytes: int) -> list[tuple[int, int]]:
    """[start, end) byte ranges covering a multistream dump of `size` bytes, each about
    `unit_bytes` (at least, but for the last) and cut only at stream `offsets`. The first range
    starts at 0 (the header stream), the last ends at `size`; they depend on nothing else."""
    cuts = [0]
    for offset in offsets:
        if 0 < offset < size and offset - cuts[-1] >= unit_bytes:
            cuts.append(offset)
    return list(zip(cuts, [*cuts[1:], size], strict=True))


def read_stream_range(
    raw: IO[bytes], name: str, start: int, end: int | None, site: wikipedia.Site | None = None
) -> Iterator[wikipedia.Article]:
    """The articles in the whole bz2 streams at bytes [start, end) of a multistream dump
    (`raw` its compressed, seekable bytes; `end` None: to the end of the file).

    Pages are parsed inside a stand-in `<mediawiki>` root unless the range begins with the
    dump's own header (then its siteinfo gives `site`); other ranges take `site` from the
    caller (`read_site`), or the canonical namespace names. A range that reaches the end of
    the file must end with `</mediawiki>`.

    Raises:
      DataError: naming `name` and the range: a start or end that is not a stream boundary,
        a range that ends inside a page, a cut-short file, malformed XML.
    """
    where = _where(name, start, end)
    parser, head = wikipedia.PageParser(where, site, path=name), b""
    for chunk in _decompressed_streams(raw, name, start, end):
        if head is None:
            yield from parser.feed(chunk)
        elif len((head := head + chunk).lstrip()) >= 10:  # enough to tell whether the root is
            yield from _feed_first(parser, head)
            head = None
    if head is not None and head.strip():
        yield from _feed_first(parser, head)
    try:
        at_file_end = end is None or not raw.read(1)
    except OSError as error:
        raise DataError(f"{where}: unreadable ({error})", path=name) from None
    if parser.depth == 0 and not parser.finished and not at_file_end:
        return  # an empty range
    if not parser.finished and not at_file_end:
        if parser.depth > 1:
            message = f"{where}: the range ends inside a page (not at a page boundary)"
            raise DataError(message, path=name)
        yield from parser.feed(b"</mediawiki>")
    yield from parser.close()


def _feed_first(parser: wikipedia.PageParser, head: bytes) -> list[wikipedia.Article]:
    """Feeds a range's first bytes, after a stand-in root unless the dump's own is there."""
    if not head.lstrip().startswith((b"<mediawiki", b"<?xml")):
        parser.feed(b"<mediawiki>")
    return parser.feed(head)


def _where(name: str, start: int, end: int | None) -> str:
    return f"{name} (bz2 streams at bytes {start}-{'end' if end is None else end})"


def read_site(raw: IO[bytes], name: str) -> wikipedia.Site:
    """The siteinfo of a multistream dump, from its first stream alone (a few kilobytes)."""
    parser = wikipedia.PageParser(name)
    for chunk in _decompressed_streams(raw, name, 0, None, streams=1):
        parser.feed(chunk)
        if parser.site_read:
            break
    return parser.site


def _decompressed_streams(
    raw: IO[bytes], name: str, start: int, end: int | None, streams: int = -1
) -> Iterator[bytes]:
    """The decompressed bytes of the whole bz2 streams at [start, end) (at most `streams`
    of them), in pieces of at most wikipedia.BLOCK_BYTES."""
    where = _where(name, start, end)
    try:
        raw.seek(start)
        left = -1 if end is None else end - start
        data, inflate = b"", None
        while streams != 0:
            while len(data) < 4 and left != 0 and (block := raw.read(_want(left))):
                data, left = data + block, left - len(block) if left > 0 else left
            if not data:
                break
            if inflate is None:
                if not data.startswith(b"BZh"):
                    message = f"{where}: no bz2 stream starts there (index and dump differ?)"
                    raise DataError(message, path=name)
                inflate = bz2.BZ2Decompressor()
            piece, data = inflate.decompress(data, wikipedia.BLOCK_BYTES), b""
            while True:
                if piece:
                    yield piece
                if inflate.eof:
                    data, inflate, streams = inflate.unused_data, None, streams - 1
                    break
                if inflate.needs_input:
                    break
                piece = inflate.decompress(b"", wikipedia.BLOCK_BYTES)
    except wikipedia.READ_ERRORS as error:
        raise DataError(f"{where}: corrupt or unreadable ({error})", path=name) from None
    if inflate is not None:
        message = f"{where}: the last bz2 stream is cut short (or the range ends inside it)"
        raise DataError(message, path=name)


def _want(left: int) -> int:
    return wikipedia.BLOCK_BYTES if left < 0 else min(wikipedia.BLOCK_BYTES, left)
