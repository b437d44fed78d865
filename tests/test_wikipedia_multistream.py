"""Multistream dumps: the index's offsets, ranges cut at them, each range read on its own gives
the same articles as the whole dump; ranges that do not fit the dump are named errors."""

from __future__ import annotations

import bz2
import html
import re
from pathlib import Path

import pytest
from pretrain_records.pipeline.ground.errors import DataError
from pretrain_records.pipeline.reading import wikipedia, wikipedia_multistream

from tests.conftest import corpus
from tests.test_wikipedia import ARTICLES, HOSTILE, SAMPLE


def split_dump(xml: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(header, pages, footer) of a dump's bytes, each page with its indentation and newline."""
    first, last = xml.index(b"  <page>"), xml.rindex(b"</mediawiki>")
    pages = [b"  <page>" + page for page in xml[first:last].split(b"  <page>")[1:]]
    return xml[:first], pages, xml[last:]


def write_multistream(folder: Path, per_stream: int):
    """The sample as a multistream dump (header, `per_stream` pages a stream, footer) and its
    index, as Wikimedia publishes them; returns (dump, index, page stream offsets)."""
    header, pages, footer = split_dump(corpus(SAMPLE).read_bytes())
    data, offsets, lines = bytearray(bz2.compress(header)), [], []
    for i in range(0, len(pages), per_stream):
        offsets.append(len(data))
        for page in pages[i : i + per_stream]:
            page_id = re.search(rb"<id>(\d+)</id>", page).group(1).decode()
            title = html.unescape(re.search(rb"<title>(.*?)</title>", page).group(1).decode())
            lines.append(f"{len(data)}:{page_id}:{title}\n")
        data += bz2.compress(b"".join(pages[i : i + per_stream]))
    data += bz2.compress(footer)
    dump = folder / "enwiki-20240501-pages-articles-multistream.xml.bz2"
    index = folder / "enwiki-20240501-pages-articles-multistream-index.txt.bz2"
    dump.write_bytes(bytes(data))
    index.write_bytes(bz2.compress("".join(lines).encode()))
    return dump, index, offsets


def read_range(dump: Path, start: int, end: int | None, site=None) -> list[wikipedia.Article]:
    with open(dump, "rb") as raw:
        return list(wikipedia_multistream.read_stream_range(raw, str(dump), start, end, site))


@pytest.mark.parametrize("per_stream", [1, 2, 5])
def test_multistream_ranges_give_the_same_articles_as_the_whole_dump(tmp_path, per_stream):
    dump, index, offsets = write_multistream(tmp_path, per_stream)
    assert wikipedia_multistream.index_path_for(str(dump)) == str(index)
    assert wikipedia_multistream.stream_offsets(str(index)) == offsets
    whole = list(wikipedia.read_dump(str(dump)))
    with open(dump, "rb") as raw:
        site = wikipedia_multistream.read_site(raw, str(dump))
    assert site == whole[0].site
    size = dump.stat().st_size
    cuts = [0, *offsets, size]  # the header stream, the page streams, the footer stream
    for unit_bytes in [1, 200, 10**9]:
        ranges = wikipedia_multistream.stream_ranges(offsets, size, unit_bytes)
        assert ranges[0][0] == 0 and ranges[-1][1] == size
        assert all(start in cuts and end in cuts for start, end in ranges)
        for start, end in ranges[:-1]:  # each the fewest whole streams that reach unit_bytes
            assert end - start >= unit_bytes > cuts[cuts.index(end) - 1] - start
        read = [a for start, end in ranges for a in read_range(dump, start, end, site)]
        assert read == whole, unit_bytes
        if unit_bytes == 1:
            assert ranges == list(zip(cuts, cuts[1:], strict=False))  # every stream alone
        if unit_bytes > size:
            assert ranges == [(0, size)]
    # Without the header nor a site given: the canonical names (the same for enwiki).
    articles = read_range(dump, offsets[0], None)
    assert [(a.title, a.wikitext) for a in articles] == [(a.title, a.wikitext) for a in whole]


def test_part_file_index_names_and_other_names():
    stem = "enwiki-20240501-pages-articles-multistream"
    assert wikipedia_multistream.index_path_for(f"d/{stem}3.xml-p151574p311329.bz2") == (
        f"d/{stem}-index3.txt-p151574p311329.bz2"
    )
    assert wikipedia_multistream.index_path_for("d/enwiki-20240501-pages-articles.xml.bz2") is None


def test_a_whole_multistream_dump_reads_as_one_stream(tmp_path):
    dump, _, _ = write_multistream(tmp_path, per_stream=3)
    assert [(a.title, a.page_id) for a in wikipedia.read_dump(str(dump))] == ARTICLES


def test_a_bomb_inside_a_multistream_range_is_refused_too(tmp_path):
    xml, reason = HOSTILE["billion-laughs.xml"]
    dump = tmp_path / "bomb-multistream.xml.bz2"
    dump.write_bytes(bz2.compress(xml.encode()))
    with pytest.raises(DataError, match=re.escape(reason)) as caught:
        read_range(dump, 0, None)
    assert str(dump) in str(caught.value) and caught.value.exit_code == 1


def test_multistream_ranges_that_do_not_fit_the_dump_are_named_errors(tmp_path):
    dump, _, offsets = write_multistream(tmp_path, per_stream=2)
    data = dump.read_bytes()
    where = re.escape(f"{dump} (bz2 streams at bytes")
    with pytest.raises(DataError, match=f"{where} 5-.*no bz2 stream starts there"):
        read_range(dump, 5, offsets[1])
    with pytest.raises(DataError, match=f"{where} .*the last bz2 stream is cut short"):
        read_range(dump, offsets[0], offsets[1] - 10)
    dump.write_bytes(data[: offsets[-1] + 30])  # cut inside the last page stream
    with pytest.raises(DataError, match=f"{where} .*the last bz2 stream is cut short"):
        read_range(dump, offsets[-1], None)
    dump.write_bytes(data[: -len(bz2.compress(b"</mediawiki>\n"))])  # the footer stream lost
    with pytest.raises(DataError, match=f"{where} .*:\\d+: the XML ends inside <mediawiki>"):
        read_range(dump, offsets[-1], None)
    # A page split over two streams: a range ending between them ends inside the page.
    header, pages, footer = split_dump(corpus(SAMPLE).read_bytes())
    halves = bz2.compress(header) + bz2.compress(pages[0][:200])
    dump.write_bytes(halves + bz2.compress(pages[0][200:] + footer))
    with pytest.raises(DataError, match=f"{where} 0-.*ends inside a page"):
        read_range(dump, 0, len(halves))


def test_a_bad_index_line_is_named(tmp_path):
    index = tmp_path / "x-multistream-index.txt.bz2"
    index.write_bytes(bz2.compress(b"600:10:Botchan\n600:12:A\n\nnot an index line\n"))
    with pytest.raises(DataError, match=rf"{re.escape(str(index))}:4: not a multistream index"):
        wikipedia_multistream.stream_offsets(str(index))
