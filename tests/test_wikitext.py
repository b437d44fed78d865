"""Wikitext to plain text: links, templates, references, tables, layout; linear on hostile input."""

from __future__ import annotations

import time

import pytest
from pretrain_records.pipeline.reading.wikitext import to_paragraphs, to_plain_text


@pytest.mark.parametrize(
    "wikitext, plain",
    [
        ("a [[Tokyo]] b", "a Tokyo b"),
        ("a [[Tokyo|the capital]] b", "a the capital b"),
        ("[[dog]]s bark", "dogs bark"),
        ("[[Narrator (Botchan)|]] and [[Help:Pipe trick|]]", "Narrator and Pipe trick"),
        ("see [[:Category:Japanese novels|other novels]]", "see other novels"),
        ("a [[wikt:mollycoddle|mollycoddle]] b", "a mollycoddle b"),
        ("x [[File:a.jpg|thumb|The [[school]] building.]] y", "x y"),
        ("x [[Image:a.png]][[Media:b.ogg|sound]] y", "x y"),
        ("x [[Category:1906 novels|Botchan]] y", "x y"),
        ("x [[Kategorie:Roman]] [[Fichier:a.jpg|vignette|légende]] y", "x y"),
        ("x [[ja:坊っちゃん]] [[zh-yue:Botchan]] y", "x y"),
        (
            "[https://www.gutenberg.org/ebooks/8868 Botchan at Gutenberg] [http://x.org]",
            "Botchan at Gutenberg",
        ),  # noqa: E501
    ],
)
def test_links_become_their_labels_and_hidden_links_go(wikitext, plain):
    assert to_plain_text(wikitext) == plain


@pytest.mark.parametrize(
    "wikitext, plain",
    [
        ("a{{citation needed|date=May 2024}} b", "a b"),
        ("a {{Infobox|x={{nowrap|{{lang|ja|坊}}}}|y=[[z]]}} b", "a b"),
        ("a {{#invoke:X|y|{{{1|}}}}} {{{param}}} b", "a b"),
        ("a {{{{nested}} name}} b", "a b"),
        ("a {{unclosed b", "a unclosed b"),
        ("a }} b {{x}}}", "a b"),
        ("born ({{lang-ja|坊}}; 1867) in Edo", "born (1867) in Edo"),
        ("a ({{IPA|x}}) b", "a b"),
    ],
)
def test_templates_are_dropped_however_nested(wikitext, plain):
    assert to_plain_text(wikitext) == plain


@pytest.mark.parametrize(
    "wikitext, plain",
    [
        ('life.<ref name="a">{{cite book|title=X}}</ref> Next', "life. Next"),
        ('a<ref name="a" /> b<ref name=b/> c<REF>x</REF>', "a b c"),
        ("a <ref>unclosed b", "a unclosed b"),
        ("a\n<references>\n<ref name=a>x</ref>\n</references>\nb", "a\n\nb"),
        ("a <!-- hidden [[x]] --> b <!-- never closed\nc", "a b"),
        ("a <math>E=mc^2</math> b <gallery>\nFile:x.jpg|cap\n</gallery> c", "a b\n\nc"),
        ("a <nowiki>[[not a link]] {{nor this}}</nowiki> b", "a [[not a link]] {{nor this}} b"),
        ("a&nbsp;b &amp; c &lt;d&gt; &#8212; e<br/>f<br />g", "a b & c <d> — e f g"),
        ("x<sup>2</sup> <span style='x'>y</span> <Heaven> 3 < 4", "x2 y <Heaven> 3 < 4"),
        (
            "__NOTOC__\n''italic'' '''bold''' '''''both''''' l''''amour''''",
            "italic bold both l'amour'",
        ),
    ],
)
def test_references_comments_tags_entities_and_quotes(wikitext, plain):
    assert to_plain_text(wikitext) == plain


def test_tables_of_either_syntax_are_dropped_nested_indented_or_unclosed():
    wikitext = (
        'Before.\n{| class="wikitable"\n|+ Caption\n! A !! B\n|-\n| 1 || {{x}}\n'
        "{|\n| nested\n|}\n|-\n| 2 || two\n|}\nAfter.\n"
        ":{| class=x\n| indented\n|}\n<table><tr><td>a<table><td>b</td></table></td></tr></table>"
        "Tail.\n{|\n| never closed\n"
    )
    assert to_paragraphs(wikitext) == ["Before.", "After.", "Tail."]


def test_headings_stay_when_text_follows_them_and_go_with_headings_false():
    wikitext = (
        "Lead.\n== Plot ==\n=== Empty ===\n{{Main|X}}\n=== Characters ===\nText.\n"
        "== Notes ==\n{{notelist}}\n== References ==\n<references/>\n[[Category:X]]\n"
    )
    assert to_paragraphs(wikitext) == ["Lead.", "Plot", "Characters", "Text."]
    assert to_paragraphs(wikitext, headings=False) == ["Lead.", "Text."]


def test_lists_and_definitions_are_lines_without_markers_and_paragraphs_join_lines():
    wikitext = (
        "First line\nof a paragraph.\n\nSecond.\n* item one\n** [[sub]] item\n# numbered\n"
        "; Term : its definition\n; Word-form\n: Indented definition.\n----\nLast."
    )
    assert to_paragraphs(wikitext) == [
        "First line of a paragraph.",
        "Second.",
        "item one",
        "sub item",
        "numbered",
        "Term",
        "its definition",
        "Word-form",
        "Indented definition.",
        "Last.",
    ]


def test_a_dumps_own_namespace_names_hide_their_links():
    wikitext = "a [[Fitxategi:x.jpg|b]] [[Kategoria:Eleberriak]] c"
    assert to_plain_text(wikitext) == "a b c"  # Kategoria is built in, Fitxategi is not
    assert to_plain_text(wikitext, hidden_namespaces={"Fitxategi"}) == "a c"


HOSTILE = {
    "unclosed braces": "{{" * 400_000,
    "nested templates and links": "{{a|[[b|{{c|" * 100_000,
    "deep links": "[[a|" * 200_000 + "]]" * 200_000,
    "unclosed refs": "<ref>" * 200_000,
    "table starts": "{|\n" * 300_000,
    "quotes": "'''x" * 200_000,
    "external link starts": "[http://a " * 200_000,
    "a tag name without end": "<" + "a" * 2_000_000,
    "pipe trick spaces": "[[a" + " " * 1_000_000 + "b|]]",
    "unclosed comments": "<!--" + "a<!--" * 200_000,
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_nesting_takes_linear_time(name):
    # About 1 to 2 MB each: linear passes take well under a second; a quadratic one, hours.
    start = time.process_time()
    plain = to_plain_text(HOSTILE[name])
    assert time.process_time() - start < 10, name
    for markup in ("{{", "}}", "[[", "]]", "<ref", "{|"):
        assert markup not in plain, (name, markup)
