"""A progress line for long fleet runs: the time and what the fleet is doing, now and then.

On a terminal the line is rewritten in place; in a log (CI) a new line is written at most every
`interval` wall seconds, so a ten-minute run shows it is alive without flooding the output.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    def __init__(self, elapsed: Callable[[], float], stream: TextIO | None = None, *, interval: float = 5.0) -> None:
        """`elapsed()`: the time to show (a scenario report's, so progress and checks agree)."""
        self.elapsed = elapsed
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.5 if self.tty else interval
        self._last = float("-inf")  # the first line is always due
        self.shown = 0

    def maybe_show(self, describe: Callable[[], str], *, force: bool = False) -> None:
        """Show `describe()` (called only when a line is due)."""
        wall = time.monotonic()
        if not force and wall - self._last < self.interval:
            return
        self._last = wall
        line = f"  [{self.elapsed():7.2f} s] {describe()}"
        self.stream.write(f"\r{line}\x1b[K" if self.tty else f"{line}\n")
        if self.tty and force:
            self.stream.write("\n")
        self.stream.flush()
        self.shown += 1
