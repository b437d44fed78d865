"""What a build shows while it runs: a bar on a terminal, plain lines otherwise (cron logs).

On a terminal: a bar over the input bytes still to go through (every dupe pass), with its
percentage, ETA and records/s, then one over the merge's shards. Otherwise: a line every
~10 seconds with the same facts. Log lines name units by their first file ("books/emma.txt +11
files"). Everything goes to stderr; stdout stays free for `--json`.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from pretrain_records.pipeline.running.planning import human_bytes

PLAIN_EVERY = 10.0  # seconds between plain progress lines


class Reporter:
    """The build's events (pipeline.events.Events) for a person or a log."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet, self.verbose = quiet, verbose
        self.interactive = sys.stderr.isatty() and not quiet
        self._started = time.monotonic()
        self._bar: Any = None
        self._total = self._done = self._records = 0
        self._phase_started = self._last_line = time.monotonic()
        self._what = ""

    def log(self, message: str) -> None:
        if self.quiet:
            return
        line = f"[{time.monotonic() - self._started:7.1f}s] {message}"
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def _begin(self, what: str, total: int, unit: str, scale: bool) -> None:
        self._close_bar()
        self._what, self._total, self._done, self._records = what, total, 0, 0
        self._phase_started = self._last_line = time.monotonic()
        if self.interactive:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=what,
                unit=unit,
                unit_scale=scale,
                file=sys.stderr,
                dynamic_ncols=True,
                smoothing=0.05,
            )

    def start_units(self, total_bytes: int, units: int) -> None:
        self._begin(f"building {units} units", total_bytes, "B", True)

    def advance(self, input_bytes: int, records: int) -> None:
        self._done += input_bytes
        self._records += records
        if self._bar is not None:
            self._bar.update(input_bytes)
            elapsed = max(time.monotonic() - self._phase_started, 1e-9)
            self._bar.set_postfix_str(f"{self._records / elapsed:,.0f} records/s", refresh=False)
        elif not self.quiet and time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._plain_line()

    def _plain_line(self) -> None:
        self._last_line = now = time.monotonic()
        elapsed = now - self._phase_started
        share = self._done / self._total if self._total else 1.0
        eta = elapsed / share - elapsed if share > 0 else 0.0
        done, total = human_bytes(self._done), human_bytes(self._total)
        rate = self._records / max(elapsed, 1e-9)
        self.log(
            f"{self._what}: {done} of {total} ({100 * share:.0f}%), {self._records:,} records, "
            f"{rate:,.0f} records/s, ETA {eta:.0f}s"
        )

    def finish_units(self) -> None:
        self._close_bar()

    def start_merge(self, shards: int) -> None:
        self._begin(f"merging into {shards} shards", shards, " shards", False)

    def shard_done(self, records: int) -> None:
        self.advance(1, records)

    def close(self) -> None:
        self._close_bar()

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
