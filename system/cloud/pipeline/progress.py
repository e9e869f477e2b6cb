"""Progress of a pipeline run on a terminal: one line per step, a bar within long steps.

On a terminal the current line is redrawn in place; elsewhere (CI logs, pipes) a line is written
only when the step's progress moves by 10 % or more, so logs stay short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._label = ""
        self._last_tenth = -1
        self._started = 0.0

    def step(self, index: int, total: int, name: str, note: str = "") -> None:
        """A step starts (or is skipped: `note` says "cached")."""
        self._end_line()
        self._label = f"[{index}/{total}] {name}"
        self._last_tenth = -1
        self._started = time.monotonic()
        if note:
            self._write(f"{self._label}: {note}\n")
            self._label = ""

    def update(self, done: int, total: int, message: str = "") -> None:
        """Within the current step: `done` of `total` units (epochs, images...)."""
        if not self.enabled or not self._label or total <= 0:
            return
        fraction = min(max(done / total, 0.0), 1.0)
        tenth = int(fraction * 10)
        if not self._tty and tenth == self._last_tenth:
            return
        self._last_tenth = tenth
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self._label} [{bar}] {done}/{total} {message}".rstrip()
        self._write("\r" + line if self._tty else line + "\n")

    def done(self, summary: str = "") -> None:
        if self._label:
            elapsed = time.monotonic() - self._started
            self._end_line()
            self._write(f"{self._label}: done in {elapsed:.1f} s{'; ' + summary if summary else ''}\n")
            self._label = ""

    def _end_line(self) -> None:
        if self._tty and self._last_tenth >= 0:
            self._write("\n")
        self._last_tenth = -1

    def _write(self, text: str) -> None:
        if self.enabled:
            self.stream.write(text)
            self.stream.flush()
