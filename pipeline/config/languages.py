"""The language codes sentence splitting accepts, and the rules sentencex applies to each.

sentencex (1.0.32, https://github.com/wikimedia/sentencex) segments any code it is given: a code
without rules of its own follows a fallback chain (MediaWiki's, in its `fallbacks.rs`), and a code
that reaches no rules silently gets its default rules (English's). A typo (`kr` for `ko`) then
splits with the wrong rules and nothing says so. The module exposes no list, so the lists below
come from its source (`src/lib.rs`: `language_factory`; `src/languages/fallbacks.rs`), and
tests/test_config.py checks them against the installed module by segmenting probe texts.
"""

from __future__ import annotations

import difflib

SENTENCEX_VERSION = "1.0.32"

# Languages with rules of their own (abbreviations, terminators). Marathi uses Hindi's.
RULE_LANGUAGES = (
    "am", "ar", "bg", "bn", "ca", "da", "de", "el", "en", "es", "fi", "fr", "gu", "hi", "hy",
    "it", "ja", "kk", "kn", "ml", "mr", "my", "nl", "pa", "pl", "pt", "ru", "sk", "ta", "te", "uk",
)  # fmt: skip

# No rules and no fallback: sentencex splits them with its default (English) rules, whose
# terminators cover their scripts (。？！, ۔ ؟, . ? !). sentencex's own tests check zh and ur
# this way; tests/test_config.py checks all four on real sentences. Add a language here only
# with such a test.
DEFAULT_RULE_LANGUAGES = ("he", "ko", "ur", "zh")

# Code -> the first language above that sentencex's fallback chain reaches (so `de-at` splits
# with German rules, `zh-tw` with zh's default rules). Codes whose chain reaches none of them
# (`kr` -> `knc` -> English by default) are left out: they are refused, not silently English.
FALLBACKS = {
    "aae": "it", "ab": "ru", "acm": "ar", "aeb": "ar", "aeb-arab": "ar", "als": "de", "alt": "ru",
    "ami": "zh", "an": "es", "anp": "hi", "apc": "ar", "arn": "es", "arq": "ar", "ary": "ar",
    "arz": "ar", "ast": "es", "atj": "fr", "av": "ru", "avk": "fr", "awa": "hi", "ay": "es",
    "ba": "ru", "bar": "de", "bci": "fr", "blk": "my", "bm": "fr", "bpy": "bn", "bxr": "ru",
    "cbk-zam": "es", "ce": "ru", "co": "it", "cs": "sk", "csb": "pl", "cv": "ru", "de-at": "de",
    "de-ch": "de", "de-formal": "de", "dsb": "de", "dua": "fr", "egl": "it", "eml": "it",
    "es-formal": "es", "ext": "es", "fit": "fi", "fon": "fr", "frc": "fr", "frp": "fr",
    "frr": "de", "fur": "it", "gan": "zh", "gan-hans": "zh", "gan-hant": "zh", "gcf": "fr",
    "gcr": "fr", "gl": "pt", "gld": "ru", "gn": "es", "gsw": "de", "guc": "es", "hak": "zh",
    "hke": "fr", "hrx": "de", "hsb": "de", "hsn": "zh", "ht": "fr", "hyw": "hy", "ii": "zh",
    "inh": "ru", "jut": "da", "kaa": "kk", "kab": "fr", "kbp": "fr", "kea": "pt", "khw": "ur",
    "kjh": "ru", "kjp": "my", "kk-arab": "kk", "kk-cn": "kk", "kk-cyrl": "kk", "kk-kz": "kk",
    "kk-latn": "kk", "kk-tr": "kk", "kl": "da", "ko-kp": "ko", "koi": "ru", "krc": "ru",
    "krl": "fi", "ksh": "de", "ksw": "my", "kum": "ru", "kv": "ru", "lad": "es", "lb": "de",
    "lbe": "ru", "lez": "ru", "li": "nl", "lij": "it", "lld": "it", "lmo": "it", "ln": "fr",
    "lua": "fr", "lzh": "zh", "mag": "hi", "mai": "hi", "mdf": "ru", "mg": "fr", "mhr": "ru",
    "mnw": "my", "mrj": "ru", "mwl": "pt", "myv": "ru", "nah": "es", "nap": "it", "nds": "de",
    "nds-nl": "nl", "nl-informal": "nl", "oc": "ca", "olo": "fi", "os": "ru", "pcd": "fr",
    "pdc": "de", "pdt": "de", "pfl": "de", "pms": "it", "pnt": "el", "pt-br": "pt", "pwn": "zh",
    "qu": "es", "qug": "es", "rgn": "it", "rm": "de", "roa-tara": "it", "rue": "uk", "rut": "ru",
    "sa": "hi", "sah": "ru", "scn": "it", "sdc": "it", "ses": "fr", "sg": "fr", "shy": "fr",
    "shy-latn": "fr", "sjd": "ru", "sli": "de", "smn": "fi", "srn": "nl", "sro": "it",
    "stq": "de", "sty": "ru", "szl": "pl", "szy": "zh", "tay": "zh", "tcy": "kn", "tet": "pt",
    "trv": "zh", "tt": "ru", "tt-cyrl": "ru", "ty": "fr", "tyv": "ru", "udm": "ru", "vec": "it",
    "vls": "nl", "vmf": "de", "vmw": "pt", "vot": "fi", "wa": "fr", "wls": "fr", "wo": "fr",
    "wuu": "zh", "wuu-hans": "zh", "wuu-hant": "zh", "xal": "ru", "yi": "he", "za": "zh",
    "zh-classical": "zh", "zh-cn": "zh", "zh-hans": "zh", "zh-hant": "zh", "zh-hk": "zh",
    "zh-mo": "zh", "zh-my": "zh", "zh-sg": "zh", "zh-tw": "zh",
}  # fmt: skip

SUPPORTED = frozenset(RULE_LANGUAGES + DEFAULT_RULE_LANGUAGES) | frozenset(FALLBACKS)


def rules_of(code: str) -> str:
    """The language whose rules sentencex applies to a supported `code` (`en` for defaults)."""
    code = FALLBACKS.get(code, code)
    return "en" if code in DEFAULT_RULE_LANGUAGES else code


# Country codes often written for a language code (`kr` for Korean); none is a code above.
COUNTRY_CODES = {
    "at": "de-at", "br": "pt-br", "ch": "de-ch", "cn": "zh", "cz": "cs", "dk": "da", "gb": "en",
    "gr": "el", "hk": "zh-hk", "il": "he", "jp": "ja", "kr": "ko", "kz": "kk", "mm": "my",
    "pk": "ur", "tw": "zh-tw", "ua": "uk", "us": "en",
}  # fmt: skip


def close_matches(code: str, limit: int = 3) -> list[str]:
    """Supported codes `code` may have meant, best first: the same code in another case or
    with `_`, the language of a country code, else near spellings (languages with rules of
    their own first, then fallback codes)."""
    normal = code.strip().lower().replace("_", "-")
    for guess in (normal, COUNTRY_CODES.get(normal), normal.split("-")[0]):
        if guess in SUPPORTED:
            return [guess]
    main = sorted(RULE_LANGUAGES + DEFAULT_RULE_LANGUAGES)
    return difflib.get_close_matches(normal, main, n=limit, cutoff=0.5) or (
        difflib.get_close_matches(normal, sorted(SUPPORTED), n=limit, cutoff=0.75)
    )
