"""Progress and log lines: tqdm on a terminal, plain timestamped lines otherwise."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator


class Reporter:
    """Writes diagnostics to stderr; stdout stays free for `--json`."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose
        self.interactive = sys.stderr.isatty() and not quiet
        self._started = time.monotonic()
        self._bar = None

    def log(self, message: str) -> None:
        if self.quiet:
            return
        line = f"[{time.monotonic() - self._started:7.1f}s] {message}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def progress(self, unit: str) -> Iterator[Callable[[int], None]]:
        """Yields `advance(n)`: a tqdm bar on a terminal, a line every 100k otherwise."""
        if self.interactive:
            from tqdm import tqdm

            with tqdm(unit=f" {unit}", file=sys.stderr, dynamic_ncols=True) as bar:
                self._bar = bar
                try:
                    yield bar.update
                finally:
                    self._bar = None
            return
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if done % 100_000 == 0:
                self.log(f"{done} {unit}")

        yield advance
