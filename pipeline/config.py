"""The build configuration: one frozen dataclass, its keys' rules, and YAML loading."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pretrain_records.pipeline.errors import UsageError


class ConfigError(UsageError, ValueError):
    """A configuration mistake (exit code 2); the message names the key or file."""


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the output bytes (plus the reporting-only `bad_lines`)."""

    input_format: str = "lines"
    jsonl_field: str = "text"
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
    bad_lines: str = "error"
    unit_bytes: int = 4 << 20

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice(*options: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value not in options:
            return f"must be one of {', '.join(options)}, got {value!r}"
        return None

    return check


def _int(low: int, high: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, got {value!r}"
        if value < low or (high is not None and value > high):
            upper = f" and <= {high}" if high is not None else ""
            return f"must be >= {low}{upper}, got {value}"
        return None

    return check


def _float(low: float, high: float, low_open: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {value!r}"
        if value < low or value > high or (low_open and value == low):
            left = "(" if low_open else "["
            return f"must be in {left}{low}, {high}], got {value}"
        return None

    return check


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _text(value: Any) -> str | None:
    return (
        None if isinstance(value, str) and value else f"must be a non-empty string, got {value!r}"
    )


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _shards(value: Any) -> str | None:
    if value == "auto":
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100000:
        return f"must be auto or an integer in [1, 100000], got {value!r}"
    return None


# Each key's rule, and a one-line help that the CLI shows too.
RULES: dict[str, tuple[Callable[[Any], str | None], str]] = {
    "input_format": (_choice("lines", "jsonl", "text"), "lines | jsonl | text"),
    "jsonl_field": (_text, "JSONL field holding a document's text"),
    "language": (_text, "language code for sentence splitting (sentencex), e.g. en, ko, ja"),
    "spm_model": (_optional_text, "SentencePiece model; none: train one on the input"),
    "vocab_size": (_int(300, 1_000_000), "vocabulary size of a tokenizer trained here"),
    "max_seq_length": (_int(8, 8192), "L: tokens per record"),
    "max_predictions_per_seq": (_int(1, 8192), "P: masked positions per record"),
    "mask_ratio": (_float(0.0, 1.0, low_open=True), "share of real tokens to predict"),
    "max_n": (_int(1, 16), "longest n-gram to mask"),
    "favor_shorter_ngram": (_bool, "p(n) ~ 1/n (false: reversed)"),
    "whole_word": (_bool, "n-grams of whole words"),
    "short_seq_prob": (_float(0.0, 1.0), "probability of a shorter target length"),
    "sentence_task": (_choice("nsp", "sop", "none"), "nsp | sop | none"),
    "masking": (_choice("static", "dynamic"), "static (in the records) | dynamic (at load)"),
    "dupe_factor": (_int(1, 1000), "static masking: copies of the data, masked afresh"),
    "seed": (_int(0, 2**63 - 1), "the only source of randomness"),
    "num_shards": (_shards, "auto (~128 MiB per shard) or a number"),
    "compression": (_choice("none", "gzip", "zlib"), "none | gzip | zlib"),
    "feature_names": (_choice("v1", "v2"), "v1 (input_ids, segment_ids) | v2 (input_word_ids...)"),
    "bad_lines": (_choice("error", "skip"), "invalid UTF-8 / NUL lines: error | skip (counted)"),
    "unit_bytes": (
        _int(4096, 1 << 30),
        "work unit size: big files are cut about every this many bytes",
    ),
}
DEFAULTS = BuildConfig().to_dict()


def check_value(key: str, value: Any) -> None:
    """Raises ConfigError naming `key` when the key is unknown or `value` breaks its rule."""
    if key not in RULES:
        raise ConfigError(f"unknown config key {key!r} (known keys: {', '.join(RULES)})")
    problem = RULES[key][0](value)
    if problem:
        raise ConfigError(f"config key {key}: {problem}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a flat YAML mapping with a safe loader; ConfigError naming the file or key."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f":{where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"{path}{line}: invalid YAML ({getattr(error, 'problem', error)})"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys to values")
    for key, value in data.items():
        try:
            check_value(str(key), value)
        except ConfigError as error:
            raise ConfigError(f"{path}: {error}") from None
    return data


def resolve(*layers: Mapping[str, Any]) -> BuildConfig:
    """Merges layers (later wins: defaults < YAML < CLI), checks every key, checks coherence."""
    merged = dict(DEFAULTS)
    for layer in layers:
        for key, value in layer.items():
            check_value(key, value)
            merged[key] = value
    if isinstance(merged["num_shards"], str) and merged["num_shards"].isdigit():
        merged["num_shards"] = int(merged["num_shards"])
    if merged["max_predictions_per_seq"] > merged["max_seq_length"]:
        raise ConfigError(
            "config key max_predictions_per_seq: must be <= max_seq_length "
            f"({merged['max_predictions_per_seq']} > {merged['max_seq_length']})"
        )
    if isinstance(merged["mask_ratio"], int):
        merged["mask_ratio"] = float(merged["mask_ratio"])
    if isinstance(merged["short_seq_prob"], int):
        merged["short_seq_prob"] = float(merged["short_seq_prob"])
    return BuildConfig(**merged)


def to_yaml(config: BuildConfig) -> str:
    """The resolved config as YAML, keys in declaration order."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, allow_unicode=True)
