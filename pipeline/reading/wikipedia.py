"""MediaWiki XML export dumps read as a stream: the articles, one at a time, in bounded memory.

A dump is `<mediawiki><siteinfo>...</siteinfo><page><title/><ns/><id/><redirect/>
<revision><text>wikitext</text></revision></page>...</mediawiki>`. Articles are the pages of
namespace 0 that are not redirects; talk, user, template, category... pages are skipped. Only
the page being read is held (its last revision's text), so memory is bounded by the largest page.

The XML goes through the stdlib's expat parser (pyexpat) directly: its handlers refuse any
DOCTYPE, so no entity is ever declared, expanded (billion laughs) or fetched (XXE), and no DTD is
read. A MediaWiki dump has no DOCTYPE; a file with one is refused before its first entity. Plain
ElementTree expands internal entities (expat >= 2.4.1 only caps the amplification) and has no
hook to refuse them; defusedxml would give the same refusal through one more dependency.

Whole dumps are read here (bz2 with any number of streams, gzip, plain XML); a multistream dump
cut into byte ranges at its index's stream offsets is read by `wikipedia_multistream`.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import re
import zlib
from collections.abc import Iterator
from typing import IO, NamedTuple
from xml.parsers import expat

from pretrain_records.pipeline import storage
from pretrain_records.pipeline.ground.errors import DataError

BLOCK_BYTES = 1 << 20
_REDIRECT = re.compile(r"\s*#redirect", re.IGNORECASE)
READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclasses.dataclass(frozen=True)
class Site:
    """What a dump's `<siteinfo>` says that reading needs: the namespaces' local names."""

    name: str = ""
    namespaces: tuple[tuple[int, str], ...] = ()  # (key, local name); key 0's name is ""

    def hidden_namespaces(self) -> frozenset[str]:
        """Local names of the media (-2), file (6) and category (14) namespaces, whose links
        `wikitext.to_plain_text(hidden_namespaces=...)` drops."""
        return frozenset(name for key, name in self.namespaces if key in (-2, 6, 14) and name)

    def namespace_of(self, title: str) -> int:
        """A title's namespace by its prefix (for old dumps without `<ns>`)."""
        prefix, colon, _ = title.partition(":")
        names = {name.casefold(): key for key, name in self.namespaces if name}
        return names.get(prefix.strip().casefold(), 0) if colon else 0


class Article(NamedTuple):
    """An article: a namespace-0 page that is not a redirect."""

    title: str
    page_id: int
    wikitext: str
    site: Site


def read_articles(stream: IO[bytes], name: str) -> Iterator[Article]:
    """The articles of a whole dump, `stream` its decompressed XML.

    Raises:
      DataError: naming `name` (and the line): malformed or cut-short XML, a DOCTYPE or an
        entity declaration, a document that is not a MediaWiki export.
    """
    parser = PageParser(name)
    try:
        while block := stream.read(BLOCK_BYTES):
            yield from parser.feed(block)
    except READ_ERRORS as error:
        raise DataError(f"{name}: corrupt or unreadable ({error})", path=name) from None
    yield from parser.close()


def read_dump(path: str) -> Iterator[Article]:
    """The articles of the dump file `path`: bz2 (one stream or many), gzip or plain XML."""
    with storage.open_read(path) as raw:
        head = raw.read(4)
        raw.seek(0)
        if head.startswith(b"BZh"):
            stream: IO[bytes] = bz2.BZ2File(raw)
        elif head.startswith(b"\x1f\x8b"):
            stream = gzip.GzipFile(fileobj=raw)
        else:
            stream = raw
        yield from read_articles(stream, path)


class PageParser:
    """A push parser of a dump: `feed` bytes, get the articles they complete."""

    def __init__(self, name: str, site: Site | None = None, path: str | None = None) -> None:
        """`name` starts error messages; `path` is the file they name (`name` if None)."""
        self.name, self.site, self.path = name, site or Site(), path or name
        self.depth, self.finished, self.site_read = 0, False, False
        self._stack: list[str] = []
        self._ready: list[Article] = []
        self._text: list[str] | None = None  # character data of the element being kept
        self._text_depth = 0  # and that element's depth
        self._page: dict[str, str | None] = {}
        self._namespaces: list[tuple[int, str]] = []
        self._key = 0  # of the <namespace> being read
        parser = self._expat = expat.ParserCreate()
        parser.buffer_text, parser.buffer_size = True, BLOCK_BYTES
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._characters
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        parser.UnparsedEntityDeclHandler = self._entity
        parser.EndDoctypeDeclHandler = self._refuse_doctype
        parser.ExternalEntityRefHandler = self._entity  # never fetched: refused

    def feed(self, data: bytes, final: bool = False) -> list[Article]:
        try:
            self._expat.Parse(data, final)
        except expat.ExpatError as error:
            line = error.lineno
            if final and self.depth and error.code in _CUT_SHORT:
                where = "in the middle of a page" if "page" in self._stack else "inside <mediawiki>"
                reason = f"the XML ends {where}: the file is cut short"
            else:
                reason = f"invalid XML ({expat.ErrorString(error.code)}, column {error.offset})"
            raise DataError(f"{self.name}:{line}: {reason}", path=self.path, line=line) from None
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> list[Article]:
        return self.feed(b"", final=True)

    def _error(self, reason: str) -> DataError:
        line = self._expat.CurrentLineNumber
        return DataError(f"{self.name}:{line}: {reason}", path=self.path, line=line)

    def _doctype(self, name: str, system_id: str | None, public_id: str | None, *_: object):
        if system_id or public_id:
            raise self._error("XML external DTDs are not allowed (no DTD is ever fetched)")

    def _entity(self, *_: object) -> None:
        raise self._error(
            "XML entity declarations are not allowed (entity expansion / external entities)"
        )

    def _refuse_doctype(self) -> None:
        raise self._error("XML document type declarations are not allowed (not a MediaWiki dump)")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else None
        if parent is None and name != "mediawiki":
            raise self._error(f"not a MediaWiki XML export (its root is <{name}>)")
        self._stack.append(name)
        self.depth += 1
        page, keep = self._page, False
        if name == "page" and parent == "mediawiki":
            self._page = {"ns": None, "redirect": None, "text": None}
        elif parent == "page" and name in ("title", "ns", "id"):
            keep = True
        elif parent == "page" and name == "redirect":
            page["redirect"] = attributes.get("title", "")
        elif name == "text" and parent == "revision" and page.get("redirect") is None:
            keep = (page.get("ns") or "0").strip() == "0"  # <ns> comes first: skip others' text
        elif (parent, name) in (("siteinfo", "sitename"), ("namespaces", "namespace")):
            keep, self._key = True, int(attributes.get("key", "0"))
        if keep and self._text is None:
            self._text, self._text_depth = [], self.depth

    def _characters(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _end(self, name: str) -> None:
        self._stack.pop()
        self.depth -= 1
        parent = self._stack[-1] if self._stack else None
        if self._text is not None and self.depth + 1 == self._text_depth:
            value, self._text = "".join(self._text), None
            if parent == "page" or name == "text":  # title, ns, id; the last revision's text
                self._page[name] = value
            elif name == "sitename":
                self.site = dataclasses.replace(self.site, name=value)
            else:
                self._namespaces.append((self._key, value))
        elif name == "siteinfo":
            self.site = dataclasses.replace(self.site, namespaces=tuple(self._namespaces))
            self.site_read = True
        elif name == "page" and parent == "mediawiki":
            self._emit(self._page)
            self._page = {}
        elif parent is None:
            self.finished = True

    def _emit(self, page: dict[str, str | None]) -> None:
        title, text = page.get("title") or "", page.get("text")
        try:
            ns = int(page["ns"]) if page.get("ns") else self.site.namespace_of(title)
            page_id = int(page.get("id") or "")
        except ValueError:
            raise self._error(f"page {title!r}: its <ns> or <id> is not a number") from None
        if ns != 0 or page.get("redirect") is not None or text is None or _REDIRECT.match(text):
            return
        self._ready.append(Article(title, page_id, text, self.site))


# Expat's codes for a document that ends too soon.
_CUT_SHORT = {
    expat.errors.codes[expat.errors.XML_ERROR_NO_ELEMENTS],
    expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_TOKEN],
    expat.errors.codes[expat.errors.XML_ERROR_PARTIAL_CHAR],
    expat.errors.codes[expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION],
}
