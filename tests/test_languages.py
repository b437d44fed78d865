"""The language codes a config accepts: each splits with sentencex rules of its own, a fallback
chain to such rules, or its default rules checked on real sentences; the rest is refused."""

from __future__ import annotations

import pytest
from pretrain_records.pipeline.config import languages
from sentencex import segment

# Probes that tell sentencex's rule sets apart: "Xa <abbreviation>. Qb cd." stays one sentence
# only for a language that knows the abbreviation; Armenian does not end sentences with "."; and
# Burmese alone ends them with "၏".
PROBES = (
    "Xa ዓ. Qb cd.",
    "Xa ا. د. Qb cd.",
    "Xa p.s. Qb cd.",
    "Xa акад. Qb cd.",
    "Xa ал. Qb cd.",
    "Xa б.р. Qb cd.",
    "Xa б.ред. Qb cd.",
    "Xa এ. Qb cd.",
    "Xa adm. Qb cd.",
    "Xa adr. Qb cd.",
    "Xa afd. Qb cd.",
    "Xa al. Qb cd.",
    "Xa ann. Qb cd.",
    "Xa ass. Qb cd.",
    "Xa fl. Qb cd.",
    "Xa dipl.-ing. Qb cd.",
    "Xa Δρ. Qb cd.",
    "Xa એ. Qb cd.",
    "Xa ए. Qb cd.",
    "Xa ಎ. Qb cd.",
    "Xa ഡോ. Qb cd.",
    "Xa ਏ. Qb cd.",
    "Xa ఎ. Qb cd.",
    "Ab cd၏ Ef gh.",
)


def signature(code: str) -> tuple[int, ...]:
    """How many sentences sentencex makes of each probe with `code`."""
    return tuple(len(segment(code, probe)) for probe in PROBES)


def test_probes_tell_every_rule_set_apart_but_marathi_which_uses_hindis():
    groups: dict[tuple[int, ...], list[str]] = {}
    for code in languages.RULE_LANGUAGES:
        groups.setdefault(signature(code), []).append(code)
    assert [group for group in groups.values() if len(group) > 1] == [["hi", "mr"]]


def test_every_supported_code_splits_with_the_rules_the_table_names():
    wrong = {
        code: languages.rules_of(code)
        for code in sorted(languages.SUPPORTED)
        if signature(code) != signature(languages.rules_of(code))
    }
    assert wrong == {}
    assert len(languages.SUPPORTED) == 218


def test_fallbacks_end_at_a_language_with_rules_or_checked_default_rules():
    ends = set(languages.RULE_LANGUAGES) | set(languages.DEFAULT_RULE_LANGUAGES)
    assert set(languages.FALLBACKS.values()) <= ends
    assert not set(languages.FALLBACKS) & ends
    assert languages.rules_of("de-at") == "de" and languages.rules_of("zh-tw") == "en"


@pytest.mark.parametrize(
    "code, sentences, space",
    [
        ("zh", ["我们明天一起去看电影好吗？", "好！", "我很高兴。"], ""),
        ("ko", ["안녕하세요.", "저는 학생입니다!", "어디 가세요?"], " "),
        ("he", ["שלום.", "מה שלומך?", "טוב!"], " "),
        ("ur", ["یہ ایک جملہ ہے۔", "یہ دوسرا ہے؟", "ہاں!"], " "),
    ],
)
def test_default_rule_languages_split_their_own_sentences(code, sentences, space):
    assert code in languages.DEFAULT_RULE_LANGUAGES
    assert [s.strip() for s in segment(code, space.join(sentences))] == sentences


def test_common_codes_are_supported():
    for code in ("en", "ko", "ja", "zh", "de", "fr"):
        assert code in languages.SUPPORTED


def test_refused_codes_are_those_sentencex_would_silently_split_as_english():
    for code in ("kr", "knc", "sv", "xx", "EN"):
        assert code not in languages.SUPPORTED
        assert signature(code) == signature("en")


@pytest.mark.parametrize(
    "code, matches",
    [
        ("kr", ["ko"]),
        ("jp", ["ja"]),
        ("EN", ["en"]),
        ("en_GB", ["en"]),
        ("zh_TW", ["zh-tw"]),
        ("deu", ["de"]),
        ("xx", []),
    ],
)
def test_close_matches_suggest_what_was_meant(code, matches):
    assert languages.close_matches(code) == matches


def test_country_codes_are_hints_not_language_codes():
    assert not set(languages.COUNTRY_CODES) & languages.SUPPORTED
    assert set(languages.COUNTRY_CODES.values()) <= languages.SUPPORTED
