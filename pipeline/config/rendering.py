"""Values rendered for messages, in bounded time and length: a message quotes at most about
80 characters of a bad value (a megabyte string or a YAML alias bomb costs nothing), says what
kind of value it is, and suggests the near miss of a typo."""

from __future__ import annotations

import datetime
import difflib
import itertools
import math
from collections.abc import Callable
from typing import Any

SHOW_LIMIT = 80  # characters of a bad value a message quotes


def cut(text: str, limit: int = SHOW_LIMIT) -> str:
    """`text` cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def show(value: Any, limit: int = SHOW_LIMIT) -> str:
    """`value` as YAML-like text of at most about `limit` characters, in time bounded by
    `limit`: strings, containers and integers are cut before they are rendered. A cut string
    says how long it was."""
    text = cut(render(value, limit + 1, depth=2), limit)
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value)} characters)"
    return text


def render(value: Any, budget: int, depth: int) -> str:
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
        text = ": ".join(render(part, room, depth - 1) for part in parts(item))
        shown.append(text)
        used += len(text) + 2
        if used >= budget:
            shown.append("...")
            break
    return opening + ", ".join(shown) + closing


def kind(value: Any) -> str:
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


def got(value: Any, want: type | None = None) -> str:
    """`got X (what it is)`, with a hint for the usual YAML slips."""
    text = cut(render(value, SHOW_LIMIT + 1, depth=2))
    note = kind(value)
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


def suggest(value: str, options: list[str] | tuple[str, ...]) -> str:
    """` (did you mean X?)` for a near miss, else empty."""
    if len(value) > 64:  # difflib is quadratic; a long value is no typo of a short name
        return ""
    matches = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
    return f" (did you mean {matches[0]}?)" if matches else ""
