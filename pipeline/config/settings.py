"""The build configuration: one frozen dataclass, and how layers of settings (defaults < YAML <
command line) resolve into it, each key checked by its rule (rules.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import yaml
from pretrain_records.pipeline.config.rules import ConfigError, check_value, filter_items


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


# Specials of a record: [CLS] A [SEP] B [SEP] (nsp, sop) or [CLS] A [SEP] (none); each segment
# needs at least one token.
SPECIALS_PER_TASK = {"nsp": 3, "sop": 3, "none": 2}
SEGMENTS_PER_TASK = {"nsp": 2, "sop": 2, "none": 1}
DEFAULTS = BuildConfig().to_dict()


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
    from pretrain_records.pipeline.config import row_filters

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
