"""Wikitext to plain text: MB/s of pipeline.wikitext and of mwparserfromhell, how each scales on
hostile nesting, and MB/s of reading a dump's XML (pipeline.wikipedia), plain and bz2.

The realistic article is built from Botchan (tests/data, public domain) in the markup density of
a long English Wikipedia article: an infobox, a citation template after every other sentence, a
link every few words, bold and italic, sections, lists, a table, a gallery, navboxes, categories.
mwparserfromhell (if installed) does the same job: parse, drop tables, file, category and
interlanguage links, then `strip_code()`. Hostile inputs are grown tenfold: a linear parser takes
about ten times longer (ratio ~10), a quadratic one a hundred.
"""

from __future__ import annotations

import argparse
import bz2
import io
import random
import re
import time
from collections.abc import Callable
from xml.sax.saxutils import escape

import common
from pretrain_records.pipeline.reading import wikipedia, wikitext

CITE = "{{cite web |url=https://example.org/p{n} |title=Page {n} |publisher={{lang|ja|出版}} |access-date=1 May 2020}}"  # noqa: E501


def realistic_article(seed: int = 1, paragraphs: int = 60) -> str:
    """A long article's wikitext (~100 KB) around Botchan's sentences."""
    rng = random.Random(seed)
    book = (common.SAMPLES / "en" / "botchan.txt").read_text(encoding="utf-8-sig")
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(book.split()))[200:]
    infobox = "\n".join(f"| field{i} = [[Value {i}|value]] {{{{small|x}}}}" for i in range(30))
    out = ["{{Short description|Novel}}\n{{Infobox book\n" + infobox + "\n}}"]
    position = 0
    for p in range(paragraphs):
        if p % 6 == 5:
            out.append(f"== Section {p} ==\n{{{{Main|Article {p}}}}}")
        words = []
        for sentence in sentences[position : position + 5]:
            tokens = sentence.split()
            for i, token in enumerate(tokens):
                roll = rng.random()
                if roll < 0.08:
                    token = f"[[{token}]]"
                elif roll < 0.12:
                    token = f"[[Target {i}|{token}]]"
                elif roll < 0.14:
                    token = f"''{token}''"
                words.append(token)
            if rng.random() < 0.5:
                words[-1] += f"<ref name=r{p}{len(words)}>{CITE.format(n=p)}</ref>"
        position += 5
        out.append(" ".join(words))
        if p % 10 == 3:
            out.append("\n".join(f"* [[Item {i}]] – {sentences[i]}" for i in range(8)))
        if p % 15 == 7:
            rows = "\n|-\n".join(f"| {i} || [[Row {i}]] || {{{{flag|X}}}}" for i in range(10))
            out.append('{| class="wikitable"\n! A !! B !! C\n|-\n' + rows + "\n|}")
        if p % 20 == 9:
            out.append("[[File:Botchan.jpg|thumb|upright=1.2|A [[caption]] with a link.]]")
    out.append("== References ==\n{{Reflist}}\n== External links ==")
    out.append("* [https://example.org Official site]\n{{Navbox|list1=[[a]]|list2={{b}}}}")
    out.append("[[Category:1906 novels]]\n[[Category:Japanese novels]]\n[[ja:坊っちゃん]]")
    return "\n\n".join(out)


def with_mwparserfromhell() -> Callable[[str], str] | None:
    try:
        import mwparserfromhell
    except ImportError:
        return None

    def plain(text: str) -> str:
        code = mwparserfromhell.parse(text)
        for tag in code.filter_tags(matches=lambda node: node.tag == "table"):
            _remove(code, tag)
        for link in code.filter_wikilinks():
            prefix = str(link.title).split(":", 1)[0].strip().lower()
            if ":" in str(link.title) and prefix in {"file", "image", "category", "ja"}:
                _remove(code, link)
        return code.strip_code(normalize=True, collapse=True)

    return plain


def _remove(code, node) -> None:
    try:
        code.remove(node)
    except ValueError:  # inside a node removed already
        pass


def megabytes_per_second(plain: Callable[[str], str], text: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        plain(text)
        best = min(best, time.process_time() - start)
    return len(text.encode()) / best / 1e6


HOSTILE = {
    "{{ x N": lambda n: "{{" * n,
    "[[a| x N, ]] x N": lambda n: "[[a|" * n + "]]" * n,
    "[[ x N": lambda n: "[[" * n,
    "<ref> x N": lambda n: "<ref>" * n,
    "{| lines x N": lambda n: "{|\n" * n,
    "''' x N": lambda n: "'''x" * n,
    "[http://a x N": lambda n: "[http://a " * n,
    "<aaa...": lambda n: "<" + "a" * (20 * n),
    "{{a|[[b|{{c|  x N": lambda n: "{{a|[[b|{{c|" * n,
}


def dump_of(article: str, pages: int) -> bytes:
    """A dump's XML: `pages` copies of the article, every other one a talk page."""
    text = escape(article).encode()
    out = [b"<mediawiki><siteinfo><sitename>Wikipedia</sitename></siteinfo>"]
    for i in range(pages):
        head = f"<page><title>A{i}</title><ns>{i % 2}</ns><id>{i + 1}</id><revision>"
        out.append(head.encode() + b'<text xml:space="preserve">' + text + b"</text>")
        out.append(b"</revision></page>")
    return b"".join([*out, b"</mediawiki>"])


def reading_megabytes_per_second(data: bytes, xml_bytes: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        stream = bz2.BZ2File(io.BytesIO(data)) if data[:3] == b"BZh" else io.BytesIO(data)
        for _ in wikipedia.read_articles(stream, "bench"):
            pass
        best = min(best, time.process_time() - start)
    return xml_bytes / best / 1e6


def seconds(plain: Callable[[str], str], text: str) -> float:
    start = time.process_time()
    plain(text)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hostile-size", type=int, default=1000)
    args, _ = parser.parse_known_args()
    article = realistic_article()
    parsers = {"pipeline.wikitext": wikitext.to_plain_text}
    if (mwp := with_mwparserfromhell()) is not None:
        parsers["mwparserfromhell"] = mwp
    print(f"realistic article: {len(article.encode()) / 1e3:.0f} KB, best of {args.repeats}")
    for name, plain in parsers.items():
        print(f"  {name:20s} {megabytes_per_second(plain, article, args.repeats):7.2f} MB/s")
    xml = dump_of(article, 200)
    for name, data in [("plain XML", xml), ("bz2 XML", bz2.compress(xml))]:
        speed = reading_megabytes_per_second(data, len(xml), args.repeats)
        print(f"  reading a dump, {name:9s}  {speed:7.2f} MB/s of XML (pipeline.wikipedia)")
    n = args.hostile_size
    print(f"hostile inputs: CPU seconds at N={n} and kN; time ratio (linear: ~k, quadratic: ~k²)")
    for case, make in HOSTILE.items():
        for name, plain in parsers.items():
            small = seconds(plain, make(n))
            k = 10 if small < 0.5 else 3  # a quadratic parser would take minutes at 10N
            big = seconds(plain, make(k * n))
            ratio = big / small if small > 1e-4 else float("nan")
            print(f"  {case:22s} {name:20s} {small:8.4f} k={k:2d} {big:8.4f}  x{ratio:.1f}")


if __name__ == "__main__":
    main()
