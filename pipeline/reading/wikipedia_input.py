"""`input_format: wikipedia`: MediaWiki XML dumps as documents, one per article.

A dump is read whole (`.xml`, `.xml.bz2`, `.xml.gz`), or, for a multistream dump with its index
beside it, as pieces of whole bz2 streams (a piece's `start`/`end` are then byte offsets in the
compressed file, see `wikipedia_multistream`), so a 20 GB dump builds on every core. Each
article's wikitext becomes plain prose (`wikitext`), paragraphs separated by blank lines.
"""

from __future__ import annotations

from collections.abc import Iterator

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.reading import wikipedia, wikipedia_multistream, wikitext
from pretrain_records.pipeline.reading.pieces import Piece

# Multistream pieces are cut every this share of unit_bytes of compressed dump: wikitext XML
# compresses about 4-5x with bz2, so a piece holds about unit_bytes of XML.
COMPRESSED_SHARE = 4


def article_texts(piece: Piece) -> Iterator[str]:
    """The plain text of every article of a piece (a whole dump or a range of its streams)."""
    if piece.start == 0 and piece.end is None:
        articles = wikipedia.read_dump(piece.path)
        for article in articles:
            yield _plain(article)
        return
    with storage.open_read(piece.path) as raw:
        site = wikipedia_multistream.read_site(raw, piece.path) if piece.start else None
        ranged = wikipedia_multistream.read_stream_range(
            raw, piece.path, piece.start, piece.end, site
        )
        for article in ranged:
            yield _plain(article)


def _plain(article: wikipedia.Article) -> str:
    return wikitext.to_plain_text(
        article.wikitext, hidden_namespaces=article.site.hidden_namespaces()
    )


def multistream_ranges(path: str, size: int, unit_bytes: int) -> list[tuple[int, int]] | None:
    """The stream ranges of a multistream dump whose index lies beside it, else None (the dump
    is read whole)."""
    index = wikipedia_multistream.index_path_for(path)
    if index is None or not storage.exists(index):
        return None
    offsets = wikipedia_multistream.stream_offsets(index)
    return wikipedia_multistream.stream_ranges(
        offsets, size, max(1, unit_bytes // COMPRESSED_SHARE)
    )


def is_index(path: str) -> bool:
    """Whether a file is a multistream dump's index (read with its dump, never on its own)."""
    name = path.rsplit("/", 1)[-1]
    return "-multistream-index" in name and ".txt" in name
