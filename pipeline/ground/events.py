"""What a build tells the person (or cron log) watching it: log lines and progress.

The pipeline calls these; the CLI's reporter draws them (a bar on a terminal, plain lines
otherwise); `Quiet` drops them (library use, tests).
"""

from __future__ import annotations

from typing import Protocol


class Events(Protocol):
    def log(self, message: str) -> None:
        """A line for the log."""

    def start_units(self, total_bytes: int, units: int) -> None:
        """Units are about to be built: `total_bytes` of input to go through (every pass)."""

    def advance(self, input_bytes: int, records: int) -> None:
        """Input bytes gone through and records made since the last call."""

    def finish_units(self) -> None:
        """Every missing unit is built."""

    def start_merge(self, shards: int) -> None:
        """The merge of every unit into `shards` shards begins."""

    def shard_done(self, records: int) -> None:
        """A shard of the merge is written."""


class Quiet:
    """Events nobody watches."""

    def log(self, message: str) -> None:
        pass

    def start_units(self, total_bytes: int, units: int) -> None:
        pass

    def advance(self, input_bytes: int, records: int) -> None:
        pass

    def finish_units(self) -> None:
        pass

    def start_merge(self, shards: int) -> None:
        pass

    def shard_done(self, records: int) -> None:
        pass
