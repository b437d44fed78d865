"""Filters on the rows of JSONL and parquet inputs: `filters: [language == en, int_score >= 3]`.

A condition is `FIELD OP VALUE`: FIELD a name, dotted to reach into nested JSON objects
(`metadata.lang`); OP one of `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`; VALUE a YAML scalar (`en`,
`3`, `0.9`, `true`, `null`) or, for `in`, a YAML list (`[en, de]`). A row is kept when it meets
every condition. Parsed here once, evaluated with plain comparisons: no `eval`.

Rows without a field a condition names are an error naming the file and line (or row): a
misspelt field must not silently filter out a whole corpus. A null value meets `==`/`!=` as
null does, and no ordering (`<`, `in`, ...). Comparing a number with a string is an error too.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "in")
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|<=|>=|<|>|\bin\b)\s*(.+?)\s*$", re.S)
_MISSING = object()


class FilterError(ValueError):
    """A condition that is not `FIELD OP VALUE` (the config reports it naming the key)."""


class RowError(ValueError):
    """A row a condition cannot be evaluated on (a missing field, values of other types)."""


@dataclasses.dataclass(frozen=True)
class Condition:
    """One parsed condition."""

    field: tuple[str, ...]
    op: str
    value: Any

    @property
    def text(self) -> str:
        return f"{'.'.join(self.field)} {self.op} {_render(self.value)}"

    def met_by(self, row: Mapping[str, Any]) -> bool:
        found = lookup(row, self.field)
        if found is _MISSING:
            raise RowError(f"no field {'.'.join(self.field)!r} (filter: {self.text})")
        if self.op == "==":
            return bool(found == self.value)
        if self.op == "!=":
            return bool(found != self.value)
        if found is None:
            return False
        if self.op == "in":
            return found in self.value
        if isinstance(found, bool) != isinstance(self.value, bool) or not (
            isinstance(found, (int, float)) == isinstance(self.value, (int, float))
        ):
            raise RowError(
                f"field {'.'.join(self.field)!r} is {_render(found)}, not comparable with "
                f"{_render(self.value)} (filter: {self.text})"
            )
        try:
            return bool(_ORDER[self.op](found, self.value))
        except TypeError:  # a list, mapping or date against a number or string
            raise RowError(
                f"field {'.'.join(self.field)!r} is {_render(found)}, not comparable with "
                f"{_render(self.value)} (filter: {self.text})"
            ) from None


_ORDER = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _render(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def lookup(row: Mapping[str, Any], field: Sequence[str]) -> Any:
    """The value at a dotted field of a row, or _MISSING."""
    value: Any = row
    for part in field:
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def parse(text: str) -> Condition:
    """A condition from its text; FilterError saying what is wrong."""
    if not isinstance(text, str):
        raise FilterError(f"a condition is a string such as 'language == en', got {text!r}")
    match = _CONDITION.match(text)
    if match is None:
        raise FilterError(
            f"{text[:80]!r} is not FIELD OP VALUE (OP one of {', '.join(OPERATORS)}), "
            "e.g. 'int_score >= 3'"
        )
    field, op, raw = match.groups()
    try:
        value = yaml.load(raw, Loader=_ValueLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        raise FilterError(f"{text[:80]!r}: {raw[:40]!r} is not a YAML value") from None
    if op == "in":
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise FilterError(f"{text[:80]!r}: `in` takes a list of values, e.g. [en, de]")
        value = tuple(value)
    elif not _scalar(value):
        raise FilterError(f"{text[:80]!r}: {op} takes a single value (a string or a number)")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(f"{text[:80]!r}: the value must be finite")
    return Condition(tuple(field.split(".")), op, value)


class _ValueLoader(yaml.SafeLoader):
    """YAML's safe loader, but only `true` and `false` are booleans: YAML 1.1 also reads `no`,
    `yes`, `on`, `off` as booleans, and `language == no` (Norwegian) must stay a string."""


_ValueLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def parse_all(items: Sequence[str]) -> tuple[Condition, ...]:
    return tuple(parse(item) for item in items)


def fields(conditions: Sequence[Condition]) -> list[str]:
    """The top-level fields (parquet columns) the conditions read."""
    return sorted({c.field[0] for c in conditions})


def keeps(row: Mapping[str, Any], conditions: Sequence[Condition]) -> bool:
    """Whether a row meets every condition; RowError when one cannot be evaluated."""
    return all(condition.met_by(row) for condition in conditions)
