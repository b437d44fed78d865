"""MediaWiki wikitext to plain prose, in time linear in the text (hostile nesting included).

What stays is the running text a reader of the page sees, as WikiExtractor-style extractors
give it: links become their label (`[[Target|label]]`, `[[Target]]`, the pipe trick, a link
trail `[[dog]]s`), external links `[http://x label]` their label; templates `{{...}}` (nested),
`<ref>`s, tables (`{| |}`, `<table>`), category, file and interlanguage links, galleries, math,
code, comments, magic words (`__TOC__`) and bold/italic quotes go; `<nowiki>` content stays as
literal text, other HTML tags are removed around their text; entities (`&nbsp;`) are decoded.

Layout: a paragraph (its lines joined with spaces), a list item (`*#:;` lines without their
markers; `; term : definition` gives two) and a section title are each one line, separated by
blank lines. Section titles stay, as WikiExtractor's default keeps them, when text follows
before the next title of the same or a higher level (a "References" section left empty leaves
none); `headings=False` drops them all, as BERT's Wikipedia text did.

Every pass is a left-to-right scan: braces and brackets are matched with stacks, link nesting
deeper than MAX_LINK_DEPTH is read as text, and no regular expression can backtrack over more
than the run it scanned once. Same input, same output."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

MAX_LINK_DEPTH = 4  # [[File:x|a [[link]] in a caption]] is 2; deeper is not MediaWiki's

# Namespaces whose links are not text: files and media, categories (canonical English names,
# aliases and the local names of large wikis; a dump's siteinfo adds its own).
HIDDEN_NAMESPACES = frozenset(
    "file image media datei bild fichier archivo imagen immagine ficheiro arquivo imagem plik "
    "grafika bestand afbeelding fil файл изображение ファイル 画像 文件 檔案 图像 圖像 파일 그림 "
    "tiedosto kuva dosya resim soubor obrázek fitxer imatge fájl kép berkas gambar αρχείο "
    "εικόνα ملف صورة קובץ תמונה category kategorie catégorie categoría categoria kategoria "
    "categorie kategori категория категорія カテゴリ 分类 分類 분류 luokka kategória kategorija "
    "تصنيف קטגוריה κατηγορία".split()
) | {"tập tin", "hình", "thể loại"}

# Interlanguage links ([[fr:Paris]]): a language code prefix, unless it is a visible interwiki.
_LANGUAGE_PREFIX = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]+)*|simple")
_VISIBLE_INTERWIKI = frozenset({"mw", "voy", "wmf", "doi"})

# Elements dropped with their content (MediaWiki extension tags and HTML tables; nowiki's
# content stays as literal text).
_DROPPED = frozenset(
    "ref references gallery math chem ce score timeline imagemap graph mapframe maplink "
    "syntaxhighlight source pre templatedata templatestyles indicator includeonly "
    "categorytree inputbox hiero charinsert section table nowiki".split()
)
# HTML and extension tags removed around text that stays (MediaWiki shows other `<x>` as text).
_UNWRAPPED = frozenset(
    "span div small big sup sub b i u s em strong code tt kbd var samp q cite abbr dfn bdi "
    "del ins strike font center blockquote poem noinclude onlyinclude p li ul ol dl dt dd "
    "tr td th caption wbr mark ruby rt rp data time br hr".split()
)
# Tags that end a line or a block: their text stays apart from what is around it.
_BLOCKS = "hr p div center blockquote poem li dt dd table gallery pre references imagemap timeline"
_BREAKS = {"br": "\n"} | dict.fromkeys(_BLOCKS.split(), "\n\n")

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)  # unclosed: to the end, as MediaWiki
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9])([^<>]*)>")
_BRACES = re.compile(r"\{\{+|\}\}+")
_BRACKETS = re.compile(r"\[\[|\]\]")
_SIMPLE_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(
    r"\[(?:https?:|ftp:|mailto:|news:|irc:|ircs:|//)[^\s\[\]<>\"]+(?:[ \t]+([^\[\]\n]*))?\]",
    re.IGNORECASE,
)
_TRAILING_PARENS = re.compile(r"\([^()]*\)$")
_QUOTES = re.compile(r"'{2,}")
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_LITERAL = str.maketrans({c: f"&#{ord(c)};" for c in "{}[]|'<>=*#:;_&!~-"})
_SPACE_BEFORE = re.compile(r" ([,.;)])")
_EMPTY_PARENS = re.compile(r"\( ?[,;]? ?\)")
_PAREN_START = re.compile(r"\( ?[,;]? ")


def to_plain_text(
    wikitext: str, *, headings: bool = True, hidden_namespaces: Iterable[str] = ()
) -> str:
    """The prose of a page's wikitext: paragraphs, list items and (with `headings`) section
    titles, one per line, separated by blank lines; "" when nothing is left.

    Args:
      wikitext: the page source, as a dump's `<text>` holds it.
      headings: keep section titles that have text under them (WikiExtractor's default).
      hidden_namespaces: more local names of the file and category namespaces (a dump's
        siteinfo), beside HIDDEN_NAMESPACES.

    Example:
      >>> to_plain_text("'''Botchan''' is a [[novel]] by [[Natsume Sōseki|Sōseki]].{{Cite}}")
      'Botchan is a novel by Sōseki.'
    """
    paragraphs = to_paragraphs(wikitext, headings=headings, hidden_namespaces=hidden_namespaces)
    return "\n\n".join(paragraphs)


def to_paragraphs(
    wikitext: str, *, headings: bool = True, hidden_namespaces: Iterable[str] = ()
) -> list[str]:
    """to_plain_text's blocks as a list (no block holds a line end)."""
    hidden = HIDDEN_NAMESPACES | {_namespace_key(name) for name in hidden_namespaces}
    text = _COMMENT.sub("", wikitext.replace("\r\n", "\n").replace("\r", "\n"))
    text = _replace_tags(text)
    text = _drop_templates(text)
    text = _drop_tables(text)
    text = _replace_links(text, hidden)
    text = _EXTERNAL_LINK.sub(lambda m: m.group(1) or "", text)
    text = _QUOTES.sub(_quote_run, _MAGIC_WORD.sub("", text))
    return _blocks(text, headings)


def _replace_tags(text: str) -> str:
    """Dropped elements removed with their content, unwrapped tags removed, `<nowiki>` content
    made literal (its markup characters as character references, decoded last)."""
    tags = list(_TAG.finditer(text))
    closes: dict[str, list[int]] = {}  # name -> indexes of its closing tags, in order
    open_tables, table_end = [], {}  # tables nest: {opening tag's index: closing tag's}
    for index, tag in enumerate(tags):
        name = tag.group(2).lower()
        if tag.group(1):
            closes.setdefault(name, []).append(index)
            if name == "table" and open_tables:
                table_end[open_tables.pop()] = index
        elif name == "table" and not tag.group(3).endswith("/"):
            open_tables.append(index)
    cursor = dict.fromkeys(closes, 0)  # name -> its first closing tag not yet passed
    kept, position, index = [], 0, 0
    while index < len(tags):
        tag, index = tags[index], index + 1
        name = tag.group(2).lower()
        if name not in _DROPPED and name not in _UNWRAPPED:
            continue  # MediaWiki shows it as text
        kept.append(text[position : tag.start()])
        kept.append(_BREAKS.get(name, ""))
        position = tag.end()
        if tag.group(1) or tag.group(3).endswith("/") or name in _UNWRAPPED:
            continue
        if name == "table":
            end = table_end.get(index - 1)
        else:  # the first closing tag after it (these do not nest)
            found = closes.get(name, [])
            while cursor.get(name, 0) < len(found) and found[cursor[name]] < index:
                cursor[name] += 1
            end = found[cursor[name]] if cursor.get(name, 0) < len(found) else None
        if end is not None:  # else unclosed: the tag alone went
            if name == "nowiki":
                kept.append(text[position : tags[end].start()].translate(_LITERAL))
            position, index = tags[end].end(), end + 1
    kept.append(text[position:])
    return "".join(kept)


def _drop_templates(text: str) -> str:
    """Without `{{...}}` and `{{{...}}}` (nested); unmatched braces dropped alone."""
    spans: list[tuple[int, int]] = []
    opened: list[tuple[int, int]] = []  # (start, end) of each open pair of braces
    for run in _BRACES.finditer(text):
        start, units = run.start(), len(run.group()) // 2
        if run.group()[0] == "{":
            end = start + 2 + len(run.group()) % 2  # an odd brace goes with the first pair
            for _ in range(units):
                opened.append((start, end))
                start, end = end, end + 2
            continue
        for _ in range(min(units, len(opened))):
            spans.append((opened.pop()[0], run.end()))
        spans.append((start, run.end()))  # the closers themselves, matched or not
    spans.extend(opened)  # never closed: the braces alone go
    return _cut(text, spans)


def _drop_tables(text: str) -> str:
    """Without `{| ... |}` tables (nested, at line starts, also indented `:{|`); an unclosed
    one runs to the end, as MediaWiki closes it there."""
    spans, opened, position = [], [], 0
    for line in text.split("\n"):
        start, position = position, position + len(line) + 1
        head = line.lstrip(" \t:")
        if head.startswith("{|"):
            opened.append(start)
        elif head.startswith("|}"):
            spans.append((opened.pop() if opened else start, position))
    if opened:
        spans.append((opened[0], len(text)))
    return _cut(text, spans, "\n\n")  # a table is a block: text around it is apart


def _cut(text: str, spans: list[tuple[int, int]], instead: str = "") -> str:
    """`text` with each run of `spans` ([start, end) pairs, in any order) as `instead`."""
    kept, position = [], 0
    for start, end in sorted(spans):
        if start > position or not kept:
            kept.append(text[position:start])
            kept.append(instead)
        position = max(position, end)
    kept.append(text[position:])
    return "".join(kept)


def _replace_links(text: str, hidden: frozenset[str]) -> str:
    """Internal links as their label; hidden and interlanguage ones dropped, captions too."""
    # Links holding no brackets first, in one regex pass (most links: the fast path); then
    # what nests (captions of file links) by pairing the brackets left.
    text = _SIMPLE_LINK.sub(lambda link: _link_text(link.group(1), hidden), text)
    out: list[str] = []
    opened: list[int] = []  # index in `out` where each open link's content starts
    ignored, position = 0, 0  # `[[`s beyond MAX_LINK_DEPTH, read as nothing
    for mark in _BRACKETS.finditer(text):
        out.append(text[position : mark.start()])
        position = mark.end()
        if mark.group() == "[[":
            if len(opened) < MAX_LINK_DEPTH:
                opened.append(len(out))
            else:
                ignored += 1
        elif ignored:
            ignored -= 1
        elif opened:
            start = opened.pop()
            content = "".join(out[start:])
            del out[start:]
            out.append(_link_text(content, hidden))
    out.append(text[position:])
    return "".join(out)


def _namespace_key(prefix: str) -> str:
    return " ".join(prefix.replace("_", " ").split()).casefold()


def _link_text(content: str, hidden: frozenset[str]) -> str:
    target, pipe, label = content.partition("|")
    target = target.strip()
    visible = target.startswith(":")  # [[:Category:X]] links to a category page
    target = target.removeprefix(":").strip()
    prefix, colon, rest = target.partition(":")
    if colon and not visible:
        if _namespace_key(prefix) in hidden:
            return ""
        if _LANGUAGE_PREFIX.fullmatch(prefix) and prefix not in _VISIBLE_INTERWIKI:
            return ""
    if not pipe:
        return target
    if label.strip():
        return label
    shown = rest.strip() if colon else target  # the pipe trick: [[Help:A (b)|]] shows "A"
    return _TRAILING_PARENS.sub("", shown).split(",")[0].strip()


def _quote_run(run: re.Match[str]) -> str:
    """What stays of a run of apostrophes: `''` `'''` `'''''` are markup; in `''''` the first
    is text; in longer runs all but the last five are."""
    length = len(run.group())
    return "'" if length == 4 else "'" * (length - 5) if length > 5 else ""


def _blocks(text: str, headings: bool) -> list[str]:
    """Paragraphs, list items and section titles, entities decoded, spaces tidied."""
    blocks: list[str] = []
    paragraph: list[str] = []
    titles: dict[int, str] = {}  # level -> title waiting for text under it

    def add(*items: str) -> None:
        nonlocal titles
        found = [tidy for item in items if (tidy := _tidy(item))]
        if found:
            blocks.extend(titles[level] for level in sorted(titles))
            titles = {}
            blocks.extend(found)

    for line in text.split("\n"):
        line = line.strip()
        level = _heading_level(line)
        if level or not line or line.startswith(("*", "#", ":", ";", "----")):
            add(" ".join(paragraph))
            paragraph = []
        if level:
            title = _tidy(line[level:-level])
            titles = {k: v for k, v in titles.items() if k < level}
            if headings and title:
                titles[level] = title
        elif line.startswith(("*", "#", ":", ";")):
            item = line.lstrip("*#:;")
            term, colon, definition = item.partition(":")
            add(*((term, definition) if line.lstrip("*#:").startswith(";") and colon else (item,)))
        elif line and not line.startswith("----"):
            paragraph.append(line)
    add(" ".join(paragraph))
    return blocks


def _heading_level(line: str) -> int:
    """n for a line `={n} title ={n}` (n at most 6), else 0."""
    if not line.startswith("=") or not line.endswith("="):
        return 0
    lead = len(line) - len(line.lstrip("="))
    trail = len(line) - len(line.rstrip("="))
    level = min(lead, trail, 6)
    return level if len(line) > 2 * level else 0


def _tidy(text: str) -> str:
    """Entities decoded, spaces collapsed, the gaps dropped markup left before punctuation and
    in parentheses closed; "" for what holds no letter or digit (leftover punctuation)."""
    text = " ".join(html.unescape(text).split())
    text = _PAREN_START.sub("(", _EMPTY_PARENS.sub("", text))
    text = _SPACE_BEFORE.sub(r"\1", " ".join(text.split()))
    return text if any(c.isalnum() for c in text) else ""
