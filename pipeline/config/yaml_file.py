"""Config files: a flat YAML mapping read with a safe loader. Every mistake (an empty file, a
document that is not a mapping, duplicate or non-string keys, merge keys, tags, bad values) is a
ConfigError naming the file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pretrain_records.pipeline.config.rendering import cut, got, kind, show
from pretrain_records.pipeline.config.rules import ConfigError, check_value

MAX_CONFIG_BYTES = 1 << 20  # a config is a few lines; a bigger file is a mistake

_MAP_TAG = "tag:yaml.org,2002:map"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _RefusedTag(yaml.constructor.ConstructorError):
    """A tag the safe loader has no constructor for (`!!python/object:...`, `!foo`)."""


def _refuse_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    problem = f"tag {cut(tag)} is not allowed (configs are read with a safe loader)"
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
        return (mark.line + 1 if mark else None), f"invalid YAML ({cut(text)})"
    if isinstance(error, RecursionError):
        return None, "invalid YAML (nested too deeply)"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "digits" in text:
        text = "a number of too many digits"
    return None, f"invalid YAML ({cut(text)})"


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
    return f"{path}: a config must be a mapping of keys to values, got {kind(data)}"


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
                    f"{path}:{line}: duplicate config key {show(key)} "
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
        raise ConfigError(f"{path}:{line}: config keys are names such as max_n, {got(key)}")
    return key
