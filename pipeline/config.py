"""The build configuration: one frozen dataclass, its keys' rules, and YAML loading.

Every mistake raises `ConfigError` with one line naming the key (and the file and line, for a
YAML file) before any work starts. Messages quote at most about 80 characters of a bad value
(`_show` never renders a whole string, list or number: a megabyte string or a YAML alias bomb
costs nothing). Each numeric key is bounded by what every component downstream accepts.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import itertools
import math
import re
import struct
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pretrain_records.pipeline import languages
from pretrain_records.pipeline.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A configuration mistake (exit code 2); the message names the key or file."""


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output bytes (plus the reporting-only `bad_lines`)."""

    input_format: str = "lines"
    text_field: str = "text"
    filters: tuple[str, ...] = ()
    language: str = "en"
    spm_model: str | None = None
    vocab_size: int = 32000
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    mask_ratio: float = 0.15
    max_n: int = 3
    favor_shorter_ngram: bool = True
    whole_word: bool = True
    short_seq_prob: float = 0.1
    sentence_task: str = "sop"
    masking: str = "static"
    dupe_factor: int = 10
    seed: int = 12345
    num_shards: str | int = "auto"
    compression: str = "none"
    feature_names: str = "v1"
    retained_builds: int = 1
    bad_lines: str = "error"
    unit_bytes: int = 4 << 20

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON/YAML values (filters as a list)."""
        values = dataclasses.asdict(self)
        values["filters"] = list(self.filters)
        return values


# Old names that still work: `jsonl_field` is `text_field` (JSONL field or parquet column).
ALIASES = {"jsonl_field": "text_field"}


SHOW_LIMIT = 80  # characters of a bad value a message quotes
MAX_CONFIG_BYTES = 1 << 20  # a config is a few lines; a bigger file is a mistake
MAX_TEXT = 4096  # characters of a string value (PATH_MAX for spm_model)

# Limits downstream; each is explained where it is used in RULES.
SPM_FIXED_PIECES = 261  # pad, unk, [CLS], [SEP], [MASK] and 256 byte-fallback pieces
MAX_VOCAB = 1_000_000
MAX_SEQ_LENGTH = 8192
MAX_SHARDS = 99_999
# Specials of a record: [CLS] A [SEP] B [SEP] (nsp, sop) or [CLS] A [SEP] (none); each segment
# needs at least one token.
SPECIALS_PER_TASK = {"nsp": 3, "sop": 3, "none": 2}
SEGMENTS_PER_TASK = {"nsp": 2, "sop": 2, "none": 1}


# ---------------------------------------------------------------------------------------------
# Bounded rendering of values


def _cut(text: str, limit: int = SHOW_LIMIT) -> str:
    """`text` cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any, limit: int = SHOW_LIMIT) -> str:
    """`value` as YAML-like text of at most about `limit` characters, in time bounded by
    `limit`: strings, containers and integers are cut before they are rendered. A cut string
    says how long it was."""
    text = _cut(_render(value, limit + 1, depth=2), limit)
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value)} characters)"
    return text


def _render(value: Any, budget: int, depth: int) -> str:
    """Text of `value` of about `budget` characters at most (callers cut the rest)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 128:  # str() of a huge int is slow (and limited since 3.11)
            return f"{'-' if value < 0 else ''}<an integer of {value.bit_length()} bits>"
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:budget])
    if isinstance(value, bytes):
        return repr(value[:budget])
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return _render_items(value, "[", "]", budget, depth, lambda item: (item,))
    if isinstance(value, dict):
        return _render_items(value.items(), "{", "}", budget, depth, lambda pair: pair)
    return f"<{type(value).__name__}>"


def _render_items(
    items: Any,
    opening: str,
    closing: str,
    budget: int,
    depth: int,
    parts: Callable[[Any], tuple[Any, ...]],
) -> str:
    """`[a, b, ...]` or `{k: v, ...}` of the first items that fit in `budget`."""
    if depth <= 0:
        return f"{opening}...{closing}"
    shown = []
    used = len(opening)
    for item in itertools.islice(items, budget // 2 + 1):
        room = max(budget - used, 1)
        text = ": ".join(_render(part, room, depth - 1) for part in parts(item))
        shown.append(text)
        used += len(text) + 2
        if used >= budget:
            shown.append("...")
            break
    return opening + ", ".join(shown) + closing


def _kind(value: Any) -> str:
    """What a YAML value is, for messages: `a string`, `a list of 3 items`, ..."""
    if value is None:
        return "null"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        name = "a mapping" if isinstance(value, dict) else "a list"
        return f"{name} of {len(value)} {'item' if len(value) == 1 else 'items'}"
    kinds = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        ((datetime.date, datetime.datetime), "a date"),
        (bytes, "binary data"),
    ]
    for types, name in kinds:
        if isinstance(value, types):
            return name
    return f"a {type(value).__name__}"


def _got(value: Any, want: type | None = None) -> str:
    """`got X (what it is)`, with a hint for the usual YAML slips."""
    text = _cut(_render(value, SHOW_LIMIT + 1, depth=2))
    note = _kind(value)
    if isinstance(value, str) and len(value) > SHOW_LIMIT:
        note += f" of {len(value)} characters"
    elif isinstance(value, str) and want is not None and _parses_as(value, want):
        note += f": write {value.strip()} without quotes"
    elif isinstance(value, dict):
        note += ": a config is flat key: value lines"
    return f"got {text}" if note == text else f"got {text} ({note})"


def _parses_as(text: str, want: type) -> bool:
    """Whether `text` (short) reads as a finite number of type `want`."""
    if len(text) > 40:
        return False
    try:
        number = want(text.strip())
    except ValueError:
        return False
    return math.isfinite(number)


def _suggest(value: str, options: list[str] | tuple[str, ...]) -> str:
    """` (did you mean X?)` for a near miss, else empty."""
    if len(value) > 64:  # difflib is quadratic; a long value is no typo of a short name
        return ""
    matches = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]}?)" if matches else ""


# ---------------------------------------------------------------------------------------------
# Rules: each returns None, or what is wrong with the value

Check = Callable[[Any], "str | None"]


def _choice(*options: str) -> Check:
    """One of `options`."""

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in options:
            return None
        hint = _suggest(value, options) if isinstance(value, str) else ""
        return f"must be one of {', '.join(options)}, got {_show(value)}{hint}"

    return check


def _int(low: int, high: int, why: str = "") -> Check:
    """An integer in [low, high] (booleans and quoted numbers are refused)."""

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, {_got(value, int)}"
        if not low <= value <= high:
            return f"must be >= {low} and <= {high}{why}, got {_show(value)}"
        return None

    return check


def _float(low: float, high: float, low_open: bool = False) -> Check:
    """A finite number in [low, high] (or (low, high]); integers are accepted."""
    interval = f"{'(' if low_open else '['}{low}, {high}]"

    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number in {interval}, {_got(value, float)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number in {interval}, got {_show(value)}"
        if value < low or value > high or (low_open and value == low):
            return f"must be in {interval}, got {_show(value)}"
        return None

    return check


def _mask_ratio(value: Any) -> str | None:
    """(0, 1], and not 0 once rounded to the float32 the masking op takes."""
    problem = _float(0.0, 1.0, low_open=True)(value)
    if problem is None and struct.unpack("f", struct.pack("f", value))[0] == 0.0:
        return f"must be in (0.0, 1.0], got {_show(value)} (0 as the masking op's float32)"
    return problem


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, {_got(value)}"


def _text(value: Any) -> str | None:
    """A non-empty string of at most MAX_TEXT characters, without NUL."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, {_got(value)}"
    if len(value) > MAX_TEXT:
        return f"must be at most {MAX_TEXT} characters, got {_show(value)}"
    if "\x00" in value:
        return f"must not contain NUL characters, got {_show(value)}"
    return None


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _language(value: Any) -> str | None:
    """A code sentencex splits with rules of its own or through a fallback (languages.py)."""
    if not isinstance(value, str) or not value:
        return f"must be a language code such as en, ko or ja, {_got(value)}"
    if value in languages.SUPPORTED:
        return None
    matches = languages.close_matches(value) if len(value) <= 32 else []
    if matches:
        hint = f"did you mean {' or '.join(matches)}?"
    else:
        hint = "sentencex has no rules or fallback for it; en applies its default rules"
    return f"unknown language {_show(value)} ({hint})"


_DIGITS = re.compile(r"[0-9]{1,6}")


def _shards(value: Any) -> str | None:
    """`auto`, or a shard count (a string of digits too: the CLI passes text)."""
    if isinstance(value, str) and value == "auto":
        return None
    number = int(value) if isinstance(value, str) and _DIGITS.fullmatch(value) else value
    if isinstance(number, bool) or not isinstance(number, int):
        return f"must be auto or an integer in [1, {MAX_SHARDS}], {_got(value)}"
    if not 1 <= number <= MAX_SHARDS:
        return f"must be auto or an integer in [1, {MAX_SHARDS}], got {_show(value)}"
    return None


def filter_items(value: Any) -> list[str]:
    """The conditions of a `filters` value: a YAML list of strings, or one string of
    conditions separated by `;` (the command line's form)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(";") if item.strip()]
    return list(value)


def _filters(value: Any) -> str | None:
    """A list of `FIELD OP VALUE` conditions (see row_filters), or a `;`-separated string."""
    from pretrain_records.pipeline import row_filters

    if value is None:
        return None
    if not isinstance(value, (str, list, tuple)):
        return f"must be a list of conditions such as 'language == en', {_got(value)}"
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
DEFAULTS = BuildConfig().to_dict()


def check_value(key: str, value: Any) -> None:
    """Raises ConfigError naming `key` when the key is unknown or `value` breaks its rule."""
    if not isinstance(key, str):
        raise ConfigError(f"config keys are names such as max_n, {_got(key)}")
    if key not in RULES:
        hint = _suggest(key, list(RULES)) or f" (known keys: {', '.join(RULES)})"
        raise ConfigError(f"unknown config key {_show(key)}{hint}")
    problem = RULES[key][0](value)
    if problem:
        raise ConfigError(f"config key {key}: {problem}")


# ---------------------------------------------------------------------------------------------
# YAML files

_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _RefusedTag(yaml.constructor.ConstructorError):
    """A tag the safe loader has no constructor for (`!!python/object:...`, `!foo`)."""


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    problem = f"tag {_cut(tag)} is not allowed (configs are read with a safe loader)"
    raise _RefusedTag(None, None, problem, node.start_mark)


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader; an unknown tag is refused with its name and line."""


_ConfigLoader.add_constructor(None, _refuse_tag)

# What reading YAML can raise: PyYAML's errors, and Python's for deep nesting or numbers past
# int()'s digit limit (or a date such as 2020-13-01).
_YAML_ERRORS = (yaml.YAMLError, RecursionError, ValueError, OverflowError)


def _read_text(path: str | Path) -> str:
    """The file's text (UTF-8, at most MAX_CONFIG_BYTES)."""
    import os
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{path}: not a regular file (a FIFO, device or directory?)")
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: too large for a config (over {MAX_CONFIG_BYTES} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _yaml_problem(error: Exception) -> tuple[int | None, str]:
    """(line or None, one-line problem) of an error out of reading YAML."""
    if isinstance(error, _RefusedTag):
        return error.problem_mark.line + 1, str(error.problem)
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        text = error.problem or error.context or "cannot parse"
        if error.context and text.startswith("but "):
            text = f"{error.context}, {text}"
        return (mark.line + 1 if mark else None), f"invalid YAML ({_cut(text)})"
    if isinstance(error, RecursionError):
        return None, "invalid YAML (nested too deeply)"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "digits" in text:
        text = "a number of too many digits"
    return None, f"invalid YAML ({_cut(text)})"


def _compose(text: str, path: str | Path) -> tuple[_ConfigLoader, yaml.Node | None]:
    """A loader and the document's node tree (nothing constructed yet)."""
    loader = None
    try:
        loader = _ConfigLoader(text)
        return loader, loader.get_single_node()
    except _YAML_ERRORS as error:
        if loader is not None:
            loader.dispose()
        line, problem = _yaml_problem(error)
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {problem}") from None


def _construct(loader: _ConfigLoader, node: yaml.Node, where: str) -> Any:
    """One node's value; a refused tag or a bad scalar is reported at `where` (file:line)."""
    try:
        return loader.construct_object(node, deep=True)
    except _YAML_ERRORS as error:
        raise ConfigError(f"{where}: {_yaml_problem(error)[1]}") from None


def _not_a_mapping(loader: _ConfigLoader, node: yaml.Node | None, path: str | Path) -> str:
    """Why a document that is not a non-empty plain mapping cannot be a config."""
    data = None if node is None else _construct(loader, node, f"{path}:{_line(node)}")
    if data is None or data == {} or data == "":
        return f"{path}: the config is empty (expected key: value lines such as max_n: 3)"
    return f"{path}: a config must be a mapping of keys to values, got {_kind(data)}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a flat YAML mapping with a safe loader; ConfigError naming the file, line and key.

    Refused: an empty file, a document that is not a mapping, duplicate or non-string keys,
    merge keys, tags of Python objects (or any tag the safe loader lacks), and any value
    `check_value` refuses.
    """
    loader, root = _compose(_read_text(path), path)
    try:
        if not isinstance(root, yaml.MappingNode) or root.tag != _MAP_TAG or not root.value:
            raise ConfigError(_not_a_mapping(loader, root, path))
        data: dict[str, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in root.value:
            line = _line(key_node)
            key = _key(loader, key_node, path, line)
            if key in first_line:
                raise ConfigError(
                    f"{path}:{line}: duplicate config key {_show(key)} "
                    f"(first at line {first_line[key]})"
                )
            first_line[key] = line
            value = _construct(loader, value_node, f"{path}:{line}: config key {key}")
            try:
                check_value(key, value)
            except ConfigError as error:
                raise ConfigError(f"{path}:{line}: {error}") from None
            data[key] = value
        return data
    finally:
        loader.dispose()


def _key(loader: _ConfigLoader, node: yaml.Node, path: str | Path, line: int) -> str:
    """A top-level key: a plain string (no merge keys, no lists, numbers or null)."""
    if node.tag == _MERGE_TAG:
        raise ConfigError(f"{path}:{line}: merge keys (<<) are not allowed: a config is flat")
    key = _construct(loader, node, f"{path}:{line}")
    if not isinstance(key, str):
        raise ConfigError(f"{path}:{line}: config keys are names such as max_n, {_got(key)}")
    return key


# ---------------------------------------------------------------------------------------------
# Resolution


def _check_lengths(merged: dict[str, Any]) -> None:
    """max_seq_length fits the task's layout; max_predictions_per_seq fits max_seq_length."""
    task, length = merged["sentence_task"], merged["max_seq_length"]
    least = SPECIALS_PER_TASK[task] + SEGMENTS_PER_TASK[task]
    if length < least:
        layout = "[CLS] A [SEP] B [SEP]" if SEGMENTS_PER_TASK[task] == 2 else "[CLS] A [SEP]"
        raise ConfigError(
            f"config key max_seq_length: sentence_task {task} needs >= {least} "
            f"({layout}, a token in each segment), got {length}"
        )
    if merged["max_predictions_per_seq"] > length:
        raise ConfigError(
            "config key max_predictions_per_seq: must be <= max_seq_length "
            f"({merged['max_predictions_per_seq']} > {length})"
        )


def resolve(*layers: Mapping[str, Any]) -> BuildConfig:
    """Merges layers (later wins: defaults < YAML < CLI), checks every key, checks coherence."""
    merged = dict(DEFAULTS)
    for layer in layers:
        for key, value in layer.items():
            check_value(key, value)
            canonical = ALIASES.get(key, key)
            if canonical != key and canonical in layer and layer[canonical] != value:
                raise ConfigError(
                    f"config keys {key} and {canonical} are one key (its old and new name) "
                    "with two values: keep one"
                )
            merged[canonical] = value
    from pretrain_records.pipeline import row_filters

    merged["filters"] = tuple(
        row_filters.parse(item).text for item in filter_items(merged["filters"] or [])
    )
    if isinstance(merged["num_shards"], str) and merged["num_shards"] != "auto":
        merged["num_shards"] = int(merged["num_shards"])
    _check_lengths(merged)
    for key in ("mask_ratio", "short_seq_prob"):
        merged[key] = float(merged[key])
    return BuildConfig(**merged)


def from_manifest(values: Mapping[str, Any]) -> BuildConfig:
    """The config a manifest recorded (older ones: old key names, keys added since missing)."""
    merged = dict(DEFAULTS)
    for key, value in values.items():
        key = ALIASES.get(key, key)
        if key in merged:
            merged[key] = value
    merged["filters"] = tuple(merged["filters"] or ())
    return BuildConfig(**merged)


def to_yaml(config: BuildConfig) -> str:
    """The resolved config as YAML, keys in declaration order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
