"""What the first bytes of a file's content say about its text, before anything is built from
it: UTF-16 or UTF-32 rather than UTF-8 (an error naming the encoding), or JSONL given as `lines`
or `text` (a usage error suggesting `--input-format jsonl`)."""

from __future__ import annotations

import json
import re

_BYTE_ORDER_MARKS = [  # UTF-32 first: its LE mark starts with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32 LE"),
    (b"\x00\x00\xfe\xff", "UTF-32 BE"),
    (b"\xff\xfe", "UTF-16 LE"),
    (b"\xfe\xff", "UTF-16 BE"),
]


def wide_encoding(head: bytes) -> str | None:
    """The UTF-16 or UTF-32 encoding (`UTF-16 LE` ...) that the first bytes of a file's content
    show: a byte order mark or, without one, mostly-ASCII text (NUL bytes where the high bytes
    of its code units are, none at the others); None for anything else."""
    for mark, name in _BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return name
    sample = head[: min(len(head), 4096) // 4 * 4]
    if len(sample) < 8 or sample.count(0) * 4 < len(sample):
        return None  # UTF-8 text holds no NUL (or a few, in bad lines): not a wide encoding
    share = [sample[i::4].count(0) / (len(sample) // 4) for i in range(4)]  # NULs at i mod 4
    for name, nul, text in [
        ("UTF-32 LE", (2, 3), (0,)),
        ("UTF-32 BE", (0, 1), (3,)),
        ("UTF-16 LE", (1, 3), (0, 2)),
        ("UTF-16 BE", (0, 2), (1, 3)),
    ]:
        if all(share[i] > 0.9 for i in nul) and all(share[i] < 0.1 for i in text):
            return name
    return None


# The start of a JSON object with a key: `{"id":`. Prose in braces (`{Note: ...}`) is not it.
_JSON_OBJECT_START = re.compile(r'\s*\{\s*"(?:[^"\\]|\\.)*"\s*:')


def looks_like_jsonl(head: bytes, whole: bool, lines: int = 5) -> bool:
    """Whether the first non-blank `lines` of a file's content (its first bytes `head`; the
    whole content when `whole`) are all JSON objects. A line that `head` cuts short (a long
    document) counts when it starts like one."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    found = [line.decode("utf-8", "replace") for line in text.splitlines() if line.strip()]
    cut = None if whole or not found or head.endswith((b"\n", b"\r")) else found.pop()
    found = found[:lines]
    for line in found:
        try:
            if not isinstance(json.loads(line), dict):
                return False
        except (ValueError, RecursionError):
            return False
    if cut is not None and len(found) < lines:
        if not _JSON_OBJECT_START.match(cut):
            return False
        found.append(cut)
    return bool(found)
