"""Test hooks: pause points and fault injection, behind one documented switch.

Production code calls `point(name)` at the steps a test may want to stop or break (each rename
and unlink of a publication, its commit, a unit's chunks, the merge); `disk_full_after()` and
`fail_worker_once()` are the two faults a writer and a Beam worker check. All of them do
nothing unless the environment variable MPR_TEST_HOOKS is set, to `;`-separated settings:

  pause=NAME[#N]        at the N-th (default 1st) `point(NAME)`, print "MPR-PAUSED NAME#N" on
                        stderr and sleep, so that a test can inspect the state and kill -9
  trace=NAME            print "MPR-POINT NAME#N" on stderr at every `point(NAME)`
  fail=NAME[#N]         raise OSError(ENOSPC) at the N-th `point(NAME)` (a full disk there)
  raise=NAME[#N]        raise RuntimeError (an unexpected bug) at the N-th `point(NAME)`
  disk_full_after=BYTES a shard or run writer raises ENOSPC once it has written BYTES
  fail_worker_once=PATH a Beam worker fails its first unit (PATH marks that it did)
  stop_grace=SECONDS    how long the CLI lets a stopped run end by itself (cli/stop_signals.py)
"""

from __future__ import annotations

import errno
import os
import sys
import time

_SETTINGS: dict[str, str] = {}
for _item in os.environ.get("MPR_TEST_HOOKS", "").split(";"):
    _key, _, _value = _item.partition("=")
    if _key.strip():
        _SETTINGS[_key.strip()] = _value.strip()
_counts: dict[str, int] = {}


def _matches(setting: str, name: str, count: int) -> bool:
    wanted = _SETTINGS.get(setting)
    if not wanted:
        return False
    point, _, nth = wanted.partition("#")
    return point == name and count == int(nth or 1)


def point(name: str) -> None:
    """A step a test may pause at (to kill the process there) or fail at."""
    if not _SETTINGS:
        return
    count = _counts[name] = _counts.get(name, 0) + 1
    if _SETTINGS.get("trace") == name:
        print(f"MPR-POINT {name}#{count}", file=sys.stderr, flush=True)
    if _matches("fail", name, count):
        raise OSError(errno.ENOSPC, "No space left on device (test hook)", name)
    if _matches("raise", name, count):
        raise RuntimeError(f"test hook: an unexpected error at {name}#{count}")
    if _matches("pause", name, count):
        print(f"MPR-PAUSED {name}#{count}", file=sys.stderr, flush=True)
        time.sleep(3600)


def disk_full_after() -> int | None:
    """Bytes a writer may write before a simulated ENOSPC, or None."""
    value = _SETTINGS.get("disk_full_after")
    return int(value) if value else None


def fail_worker_once() -> str | None:
    """The marker path of a Beam worker fault to inject once, or None."""
    return _SETTINGS.get("fail_worker_once") or None


def stop_grace() -> float | None:
    """Seconds a SIGTERM'd or interrupted run may take to end by itself, or None (default)."""
    value = _SETTINGS.get("stop_grace")
    return float(value) if value else None
