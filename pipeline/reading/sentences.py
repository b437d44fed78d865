"""Sentence splitting of `jsonl` and `text` documents: sentencex (native code, rule-based, for
about 300 languages, each with its own rules or a documented fallback)."""

from __future__ import annotations

from pretrain_records.pipeline.reading.documents import Splitter


def make_splitter(language: str) -> Splitter:
    """A function from a paragraph to its sentences (stripped, none empty)."""
    from sentencex import segment

    def split(paragraph: str) -> list[str]:
        return [s.strip() for s in segment(language, paragraph) if s.strip()]

    return split
