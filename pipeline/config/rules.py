"""The rule of each config key: what values it takes, with a one-line help the CLI shows too.
A rule returns None or what is wrong; `check_value` turns that into a ConfigError naming the
key. Each numeric key is bounded by what every component downstream accepts."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable
from typing import Any

from pretrain_records.pipeline.config import languages
from pretrain_records.pipeline.config.rendering import got, show, suggest
from pretrain_records.pipeline.ground.errors import UsageError

MAX_TEXT = 4096  # characters of a string value (PATH_MAX for spm_model)

# Limits downstream; each is explained where it is used in RULES.
SPM_FIXED_PIECES = 261  # pad, unk, [CLS], [SEP], [MASK] and 256 byte-fallback pieces
MAX_VOCAB = 1_000_000
MAX_SEQ_LENGTH = 8192
MAX_SHARDS = 99_999


class ConfigError(UsageError, ValueError):
    """A configuration mistake (exit code 2); the message names the key or file."""


Check = Callable[[Any], "str | None"]


def _choice(*options: str) -> Check:
    """One of `options`."""

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in options:
            return None
        hint = suggest(value, options) if isinstance(value, str) else ""
        return f"must be one of {', '.join(options)}, got {show(value)}{hint}"

    return check


def _int(low: int, high: int, why: str = "") -> Check:
    """An integer in [low, high] (booleans and quoted numbers are refused)."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, {got(value, int)}"
        if not low <= value <= high:
            return f"must be >= {low} and <= {high}{why}, got {show(value)}"
        return None

    return check


def _float(low: float, high: float, low_open: bool = False) -> Check:
    """A finite number in [low, high] (or (low, high]); integers are accepted."""
    interval = f"{'(' if low_open else '['}{low}, {high}]"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number in {interval}, {got(value, float)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number in {interval}, got {show(value)}"
        if value < low or value > high or (low_open and value == low):
            return f"must be in {interval}, got {show(value)}"
        return None

    return check


def _mask_ratio(value: Any) -> str | None:
    """(0, 1], and not 0 once rounded to the float32 the masking op takes."""
    problem = _float(0.0, 1.0, low_open=True)(value)
    if problem is None and struct.unpack("f", struct.pack("f", value))[0] == 0.0:
        return f"must be in (0.0, 1.0], got {show(value)} (0 as the masking op's float32)"
    return problem


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, {got(value)}"


def _text(value: Any) -> str | None:
    """A non-empty string of at most MAX_TEXT characters, without NUL."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, {got(value)}"
    if len(value) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters, got {show(value)}"
    if "\x00" in value:
        return f"must not contain NUL characters, got {show(value)}"
    return None


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _language(value: Any) -> str | None:
    """A code sentencex splits with rules of its own or through a fallback (languages.py)."""
    if not isinstance(value, str) or not value:
        return f"must be a language code such as en, ko or ja, {got(value)}"
    if value in languages.SUPPORTED:
        return None
    matches = languages.close_matches(value) if len(value) <= 32 else []
    if matches:
        hint = f"did you mean {' or '.join(matches)}?"
    else:
        hint = "sentencex has no rules or fallback for it; en applies its default rules"
    return f"unknown language {show(value)} ({hint})"


_DIGITS = re.compile(r"[0-9]{1,6}")


def _shards(value: Any) -> str | None:
    """`auto`, or a shard count (a string of digits too: the CLI passes text)."""
    if isinstance(value, str) and value == "auto":
        return None
    number = int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else value
    if isinstance(number, bool) or not isinstance(number, int):
        return f"must be auto or an integer in [1, {MAX_SHARDS}], {got(value)}"
    if not 1 <= number <= MAX_SHARDS:
        return f"must be auto or an integer in [1, {MAX_SHARDS}], got {show(value)}"
    return None


def filter_items(value: Any) -> list[str]:
    """The conditions of a `filters` value: a YAML list of strings, or one string of
    conditions separated by `;` (the command line's form)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(";") if item.strip()]
    return list(value)


def _filters(value: Any) -> str | None:
    """A list of `FIELD OP VALUE` conditions (see row_filters), or a `;`-separated string."""
    from pretrain_records.pipeline.config import row_filters

    if value is None:
        return None
    if not isinstance(value, (str, list, tuple)):
        return f"must be a list of conditions such as 'language == en', {got(value)}"
    items = filter_items(value)
    if len(items) > 64:
        return f"must hold at most 64 conditions, got {len(items)}"
    for item in items:
        try:
            row_filters.parse(item)
        except row_filters.FilterError as error:
            return str(error)
    return None


# Each key's rule, and a one-line help that the CLI shows too.
RULES: dict[str, tuple[Check, str]] = {
    "input_format": (
        _choice("lines", "jsonl", "text", "parquet", "wikipedia"),
        "lines | jsonl | text | parquet | wikipedia",
    ),
    "text_field": (_text, "JSONL field or parquet column holding a document's text"),
    "jsonl_field": (_text, "old name of text_field"),
    "filters": (
        _filters,
        "conditions JSONL/parquet rows must meet, e.g. [language == en, int_score >= 3] "
        "(on the command line: 'language == en; int_score >= 3')",
    ),
    "language": (_language, "language code for sentence splitting (sentencex), e.g. en, ko, ja"),
    "spm_model": (_optional_text, "SentencePiece model; none: train one on the input"),
    # SentencePiece parses it as an int32 and its work grows with it (2**31 - 1 runs for
    # minutes on a small corpus); the largest vocabularies in use are about 256k.
    "vocab_size": (
        _int(
            SPM_FIXED_PIECES + 1,
            MAX_VOCAB,
            f" (a vocabulary holds {SPM_FIXED_PIECES} fixed pieces: pad, unk, [CLS], [SEP], "
            "[MASK], 256 bytes)",
        ),
        "vocabulary size of a tokenizer trained here",
    ),
    # At least [CLS] A [SEP] with one token (none); nsp/sop need 5 (checked in `resolve`).
    # At most 8192: a unit's shuffle buffer holds 10,000 instances of 12 bytes per token.
    "max_seq_length": (_int(4, MAX_SEQ_LENGTH), "L: tokens per record"),
    "max_predictions_per_seq": (_int(1, MAX_SEQ_LENGTH), "P: masked positions per record"),
    "mask_ratio": (_mask_ratio, "share of real tokens to predict"),
    "max_n": (_int(1, 16), "longest n-gram to mask"),
    "favor_shorter_ngram": (_bool, "p(n) ~ 1/n (false: reversed)"),
    "whole_word": (_bool, "n-grams of whole words"),
    "short_seq_prob": (_float(0.0, 1.0), "probability of a shorter target length"),
    "sentence_task": (_choice("nsp", "sop", "none"), "nsp | sop | none"),
    "masking": (_choice("static", "dynamic"), "static (in the records) | dynamic (at load)"),
    "dupe_factor": (_int(1, 1000), "static masking: copies of the data, masked afresh"),
    # 63 bits: the unit and row keys derived from it are int64 seeds of the masking op;
    # SentencePiece's uint32 seed is derived from it (tokenize.sentencepiece_seed).
    "seed": (_int(0, 2**63 - 1), "the only source of randomness"),
    # Shard names are train-00000-of-00064: five digits.
    "num_shards": (_shards, "auto (~128 MiB per shard) or a number"),
    "compression": (_choice("none", "gzip", "zlib"), "none | gzip | zlib"),
    "feature_names": (_choice("v1", "v2"), "v1 (input_ids, segment_ids) | v2 (input_word_ids...)"),
    "retained_builds": (
        _int(0, 1000),
        "earlier builds kept beside the current one (their readers keep reading them)",
    ),
    "bad_lines": (_choice("error", "skip"), "invalid UTF-8 / NUL lines: error | skip (counted)"),
    "unit_bytes": (
        _int(4096, 1 << 30),
        "work unit size: big files are cut about every this many bytes",
    ),
}


def check_value(key: str, value: Any) -> None:
    """Raises ConfigError naming `key` when the key is unknown or `value` breaks its rule."""
    if not isinstance(key, str):
        raise ConfigError(f"config keys are names such as max_n, {got(key)}")
    if key not in RULES:
        hint = suggest(key, list(RULES)) or f" (known keys: {', '.join(RULES)})"
        raise ConfigError(f"unknown config key {show(key)}{hint}")
    problem = RULES[key][0](value)
    if problem:
        raise ConfigError(f"config key {key}: {problem}")
