"""MediaWiki dumps read whole: articles only, plain text without markup, hostile XML refused in
bounded memory, cut-short dumps named."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading import wikipedia
from pretrain_records.pipeline.reading.wikitext import to_paragraphs, to_plain_text

from tests.conftest import REPO, corpus

SAMPLE = "wikipedia/enwiki-sample-pages-articles.xml"
ARTICLES = [  # (title, page id) of the sample's namespace-0 pages that are not redirects
    ("Botchan", 12),
    ("A note by the translator", 303),
    ("Constitution of the United States", 305),
    ("Chestnut tree (Botchan)", 309),
    ("Yamashiro-ya", 331),
]
# Text that only the sample's redirect, talk, template, file, category and project pages hold.
NOT_ARTICLE_TEXT = [
    "R from alternative name",
    "It is a light, amusing",
    "PAGENAMEBASE",
    "Documentation",
    "PD-old",
    "which had attained national popularity",
    "Children may read it",
    "~~~~",
]
MARKUP = "{{ }} [[ ]] <ref </ref {| |} Category: File: ''' &nbsp; __TOC__".split()


def plain(article: wikipedia.Article) -> str:
    return to_plain_text(article.wikitext, hidden_namespaces=article.site.hidden_namespaces())


def test_a_pages_articles_dump_gives_its_articles_only_in_every_compression(tmp_path):
    xml = corpus(SAMPLE).read_bytes()
    assert xml.count(b"<page>") == 12
    variants = {
        "plain.xml": xml,
        "one-stream.xml.bz2": bz2.compress(xml),
        "many-streams.xml.bz2": b"".join(
            bz2.compress(xml[i : i + 999]) for i in range(0, len(xml), 999)
        ),
        "dump.xml.gz": gzip.compress(xml),
    }
    for name, data in variants.items():
        path = tmp_path / name
        path.write_bytes(data)
        articles = list(wikipedia.read_dump(str(path)))
        assert [(a.title, a.page_id) for a in articles] == ARTICLES, name
        assert articles[0].site.name == "Wikipedia"
        assert articles[0].site.hidden_namespaces() == {"Media", "File", "Category"}


def test_the_plain_text_of_known_articles_is_exactly_their_prose():
    articles = {a.title: a for a in wikipedia.read_dump(str(corpus(SAMPLE)))}
    assert plain(articles["Chestnut tree (Botchan)"]) == (
        "About twenty steps to the east edge of our garden, there was a moderate-sized vegetable "
        "yard, rising toward the south, and in the centre of which stood a chestnut tree which "
        "was dearer to me than life. In the season when the chestnuts were ripe, I used to slip "
        "out of the house from the back door early in the morning to pick up the chestnuts "
        "which had fallen during the night, and eat them at the school."
    )
    paragraphs = to_paragraphs(articles["Botchan"].wikitext)
    assert [p[:48] for p in paragraphs] == [
        "It was this Botchan that secured him the lasting",  # infobox, lang, refs gone
        "Plot",
        "Because of an hereditary recklessness, I have be",
        "One of my relatives once presented me with a pen",
        "Characters",
        "Botchan – a son born in Tokyo",
        "The janitor of the school had to carry me home o",
        "a chestnut tree which was dearer to me than life",
        "a pawn shop called Yamashiro-ya",
        "Style",  # its table is gone; Notes and References had nothing left
        "It is profusely interladed with spicy, catchy co",
        "External links",
        "Botchan at Project Gutenberg",
    ]
    assert paragraphs[2].endswith(
        "by jumping from the second story of the school building. "
        "Some may ask why I committed such a rash act."
    )
    assert paragraphs[10].endswith("notorious Chuck Conners of the Bowery of New York.")


def test_no_article_holds_markup_or_text_of_other_pages():
    articles = list(wikipedia.read_dump(str(corpus(SAMPLE))))
    assert len(articles) == 5
    for article in articles:
        text = plain(article)
        assert text.strip(), article.title
        for found in MARKUP + NOT_ARTICLE_TEXT:
            assert found not in text, (article.title, found)


ENTITY_REFUSED = "XML entity declarations are not allowed (entity expansion / external entities)"
LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
HOSTILE = {
    "billion-laughs.xml": (
        f'<?xml version="1.0"?><!DOCTYPE mediawiki [<!ENTITY lol0 "lol">{LAUGHS}]>'
        "<mediawiki><page><title>A</title><ns>0</ns><id>1</id><revision><text>&lol9;</text>"
        "</revision></page></mediawiki>",
        ENTITY_REFUSED,
    ),
    "quadratic-blowup.xml": (
        f'<!DOCTYPE mediawiki [<!ENTITY a "{"x" * 100_000}">]><mediawiki><page><title>A'
        f"</title><ns>0</ns><id>1</id><revision><text>{'&a;' * 50_000}</text></revision>"
        "</page></mediawiki>",
        ENTITY_REFUSED,
    ),
    "xxe-file.xml": (
        '<!DOCTYPE mediawiki [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><mediawiki><page>'
        "<title>A</title><ns>0</ns><id>1</id><revision><text>&xxe;</text></revision></page>"
        "</mediawiki>",
        ENTITY_REFUSED,
    ),
    "xxe-parameter.xml": (
        '<!DOCTYPE mediawiki [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>'
        "<mediawiki/>",
        ENTITY_REFUSED,
    ),
    "external-dtd.xml": (
        '<!DOCTYPE mediawiki SYSTEM "http://127.0.0.1:9/evil.dtd"><mediawiki/>',
        "XML external DTDs are not allowed (no DTD is ever fetched)",
    ),
    "undeclared-entity.xml": (
        "<mediawiki><page><title>A</title><ns>0</ns><id>1</id><revision><text>&xxe;</text>"
        "</revision></page></mediawiki>",
        "invalid XML (undefined entity",
    ),
}
# Runs in a fresh interpreter: its peak RSS grows only by what reading takes. Also reads a
# generated 60 MB dump (10,000 pages of 6 KB) as a stream, to show memory bounded by a page.
PROBE = r"""
import io, itertools, json, resource, sys
from pretrain_records.pipeline.reading import wikipedia
from pretrain_records.pipeline.ground.errors import DataError

class Generated(io.RawIOBase):
    def __init__(self, pages):
        self.parts = itertools.chain((self.page(i) for i in range(pages)), [b"</mediawiki>"])
        self.pending = b"<mediawiki>"
    def page(self, i):
        text = (b"It was this Botchan that secured him the lasting fame. " * 110)[:6000]
        page = b"<page><title>P%d</title><ns>0</ns><id>%d</id><revision><text>%s</text>"
        return page % (i, i + 1, text) + b"</revision></page>"
    def readable(self):
        return True
    def readinto(self, buffer):
        if not self.pending:
            self.pending = next(self.parts, b"")
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
found = {}
for path in json.loads(sys.argv[1]):
    try:
        found[path] = f"{sum(1 for _ in wikipedia.read_dump(path))} articles"
    except DataError as error:
        found[path] = str(error)
stream = io.BufferedReader(Generated(10_000), 1 << 16)
found["generated"] = sum(1 for _ in wikipedia.read_articles(stream, "generated"))
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"found": found, "growth_kb": growth}))
"""


def test_entity_bombs_and_external_entities_are_refused_in_bounded_memory(tmp_path):
    paths = []
    for name, (xml, _) in HOSTILE.items():
        paths.append(str(tmp_path / name))
        Path(paths[-1]).write_text(xml)
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for path, (_, reason) in zip(paths, HOSTILE.values(), strict=True):
        assert re.fullmatch(rf"{re.escape(path)}:1: {re.escape(reason)}.*", report["found"][path])
    assert report["found"]["generated"] == 10_000
    assert report["growth_kb"] < 50 * 1024, report


def cut_inside_page(xml: bytes, title: bytes) -> bytes:
    return xml[: xml.index(b"<title>" + title) + 400]


def test_a_dump_cut_short_is_an_error_naming_the_file_after_the_articles_before_it(tmp_path):
    cut = cut_inside_page(corpus(SAMPLE).read_bytes(), b"Constitution")
    for name, data in [("cut.xml", cut), ("cut.xml.bz2", bz2.compress(cut))]:
        path, read = tmp_path / name, []
        path.write_bytes(data)
        with pytest.raises(DataError) as caught:
            for article in wikipedia.read_dump(str(path)):
                read.append(article.title)
        assert read == ["Botchan", "A note by the translator"]  # streamed before the cut
        message = str(caught.value)
        assert re.fullmatch(
            rf"{re.escape(str(path))}:\d+: the XML ends in the middle of a page: "
            "the file is cut short",
            message,
        )
        assert caught.value.path == str(path) and caught.value.exit_code == 1
    whole = tmp_path / "whole.xml.bz2"
    whole.write_bytes(bz2.compress(corpus(SAMPLE).read_bytes())[:-200])
    with pytest.raises(DataError, match=rf"{re.escape(str(whole))}: corrupt or unreadable"):
        list(wikipedia.read_dump(str(whole)))


def test_redirects_by_text_pages_without_ns_and_history_revisions():
    xml = (
        "<mediawiki><siteinfo><namespaces><namespace key='1'>Talk</namespace></namespaces>"
        "</siteinfo>"
        "<page><title>Old redirect</title><ns>0</ns><id>1</id>"
        "<revision><text>#redirect [[Botchan]]</text></revision></page>"
        "<page><title>Talk:No ns</title><id>2</id><revision><text>talk</text></revision></page>"
        "<page><title>No ns</title><id>3</id><revision><text>first</text></revision>"
        "<revision><id>9</id><text>last</text></revision></page>"
        "</mediawiki>"
    )
    articles = list(wikipedia.read_articles(io.BytesIO(xml.encode()), "history.xml"))
    assert [(a.title, a.page_id, a.wikitext) for a in articles] == [("No ns", 3, "last")]
    with pytest.raises(DataError, match=r"^page\.xml:1: not a MediaWiki XML export \(its root"):
        list(wikipedia.read_articles(io.BytesIO(b"<html><body/></html>"), "page.xml"))
