"""Stopping a run from outside: SIGTERM (a cron or CI timeout, `kill`) and Ctrl-C (SIGINT).

The first signal raises in the main thread (`Terminated` for SIGTERM, KeyboardInterrupt for
SIGINT), so a run stops the way an error stops it: worker processes killed, the lock released
(on gs:// the lock object removed, instead of going stale for ten minutes), complete units
kept for the rerun, one line on stderr, exit 143 or 130.

Python runs signal handlers only between bytecodes of the main thread, and the main thread may
be waiting inside TensorFlow for a pipeline that does not move. So a watcher thread, woken by
the signal itself (`signal.set_wakeup_fd`), ends the process with the same exit code if it is
still alive GRACE_SECONDS later, and at once on a second signal. Such an end leaves the output
directory as a kill -9 does: the last good build intact, the next run resuming.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable

GRACE_SECONDS = 30.0
_STOPPING = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: an interrupt like Ctrl-C, reported with exit code 143."""


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a process its signal ended."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def install(
    grace_seconds: float | None = None, on_hard_stop: Callable[[str, int], None] | None = None
) -> None:
    """Installs the SIGTERM and SIGINT handlers and the watcher (the command's process only: the
    console script's entry calls it, never an in-process test runner). `on_hard_stop(message,
    exit code)` is called by the watcher just before it ends the process (`--json` reports)."""
    if threading.current_thread() is not threading.main_thread():
        return
    grace = GRACE_SECONDS if grace_seconds is None else grace_seconds
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    watcher = threading.Thread(
        target=_watch,
        args=(read_end, grace, on_hard_stop),
        name="make-pretrain-records stop watcher",
    )
    watcher.daemon = True
    watcher.start()


def _raise_interrupt(signum: int, frame: object) -> None:
    # With a message: Beam re-raises a DoFn's exception as type(e)(e.args[0] + where), and
    # would turn one without arguments into a RuntimeError (which it retries).
    if signum == signal.SIGTERM:
        raise Terminated("SIGTERM")
    raise KeyboardInterrupt("SIGINT")


def _watch(read_end: int, grace: float, on_hard_stop: Callable[[str, int], None] | None) -> None:
    """Waits for a stopping signal; then ends the process at the second one or after `grace`
    seconds, whichever comes first (a run that stops by itself never gets there)."""
    seen: list[int] = []
    deadline: float | None = None
    while len(seen) < 2:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:
            break
        seen.extend(number for number in os.read(read_end, 64) if number in _STOPPING)
        if seen and deadline is None:
            deadline = time.monotonic() + grace
    if len(seen) < 2:
        reason = f"still running {grace:g} s after {signal.Signals(seen[0]).name}"
    else:
        reason = f"a second {signal.Signals(seen[1]).name}"
    message = f"stopped at once ({reason}); a rerun resumes"
    try:
        os.write(2, f"make-pretrain-records: error: {message}\n".encode())
        if on_hard_stop is not None:
            on_hard_stop(message, 128 + seen[0])
    except Exception:  # noqa: BLE001, S110 - a closed stderr must not keep the run alive
        pass
    finally:
        os._exit(128 + seen[0])
