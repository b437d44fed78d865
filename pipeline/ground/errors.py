"""The tool's errors: one small hierarchy whose classes carry their exit code.

Raised where a problem is known, mapped once at the CLI boundary (`exit_code`). Every message is
one line naming the file (and line) or the config key.
"""

from __future__ import annotations

import re


class MprError(Exception):
    """Base class: a failure the user can act on (exit 1 unless a subclass says otherwise).

    `path` and `line` say where, when the raiser knows (the CLI's `--json` reports them); they
    survive pickling to and from worker processes (exceptions pickle their `__dict__`).
    """

    exit_code = 1

    def __init__(self, *args: object, path: str | None = None, line: int | None = None) -> None:
        super().__init__(*args)
        self.path = path
        self.line = line


class UsageError(MprError):
    """A usage or config mistake found before any work: a missing input, a bad key (exit 2)."""

    exit_code = 2


class DataError(MprError):
    """Unreadable or invalid input data, or an output write failure (exit 1)."""

    exit_code = 1


class LockedError(MprError):
    """Another live run holds the output directory (exit 75, EX_TEMPFAIL: try again later)."""

    exit_code = 75


# Errors raised inside a tf.data generator reach the consumer re-wrapped by TensorFlow as
# "<ClassName>: <message>\nTraceback ...": the one place where a class comes back by its name.
_WRAPPED = re.compile(r"(?:^|\}\} )(\w+): (.*)", re.DOTALL)
_TRACEBACK = "\nTraceback (most recent call last):"


def from_tf_error(error: BaseException) -> MprError | None:
    """The MprError that a tf.data generator raised, rebuilt from TensorFlow's wrapping of it;
    None when `error` does not carry one."""
    message = str(getattr(error, "message", error)).strip()
    # The message ends where TensorFlow appends the traceback, not at its first newline: a file
    # name may hold one.
    head, cut, _ = message.partition(_TRACEBACK)
    first = head if cut else (message.splitlines()[0] if message else "")
    match = _WRAPPED.search(first)
    if match is None:
        return None
    cls = error_classes().get(match.group(1))
    return cls(match.group(2)) if cls is not None else None


def error_classes() -> dict[str, type[MprError]]:
    """The tool's error classes by name (to rebuild one from a message that crossed a process
    or TensorFlow)."""
    return {cls.__name__: cls for cls in _subclasses(MprError)}


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found.extend(_subclasses(sub))
    return found
