"""Stage 1, the configuration: what a build is asked to do. Owns the build config (settings),
each key's rule (rules), YAML config files (yaml_file), the row filters of JSONL and parquet
inputs (row_filters), the languages sentences are split for (languages), and the bounded
rendering of bad values in messages (rendering). Imports only `ground`.

The names most callers need are importable from the package itself."""

from pretrain_records.pipeline.config.rules import RULES, ConfigError, check_value, filter_items
from pretrain_records.pipeline.config.settings import (
    ALIASES,
    DEFAULTS,
    BuildConfig,
    from_manifest,
    resolve,
    to_yaml,
)
from pretrain_records.pipeline.config.yaml_file import load_yaml

__all__ = [
    "ALIASES",
    "DEFAULTS",
    "RULES",
    "BuildConfig",
    "ConfigError",
    "check_value",
    "filter_items",
    "from_manifest",
    "load_yaml",
    "resolve",
    "to_yaml",
]
