"""The OTA job journal: the job in progress and the recent finished ones, on disk.

The seed kept its processed-job list in memory, so a restart forgot it, and an IN_PROGRESS job left
by a crash was never resumed (seed-behaviours.md section 2). The journal is rewritten atomically
after every step, so a restart knows exactly which step a job reached (`ota_machine.after_restart`)
and which jobs are already done (a job delivered again is handled once).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from system.edge.atomic import write_json_atomically
from system.edge.ota_machine import JobState, Step

SCHEMA = "edgesim.ota-journal/1"
_log = logging.getLogger(__name__)


class Journal:
    """The current job and up to `keep` finished ones. Thread-safe; every change is written at once."""

    def __init__(self, path: Path, keep: int = 100) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        self._current: JobState | None = None
        self._finished: list[JobState] = []
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text())
            if not isinstance(raw, dict):
                raise ValueError(f"the journal holds a JSON {type(raw).__name__}, not an object")
            if raw.get("schema") != SCHEMA:
                raise ValueError(f"schema {raw.get('schema')!r} is not {SCHEMA!r}")
            current = raw.get("current")
            self._current = JobState.from_dict(current) if current else None
            self._finished = [JobState.from_dict(item) for item in raw.get("finished", [])][-self.keep :]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Writes are atomic, so this is a foreign or hand-edited file: keep it for a human, start clean.
            broken = self.path.with_suffix(self.path.suffix + ".unreadable")
            self.path.replace(broken)
            _log.error(
                "the OTA journal was unreadable and was set aside",
                extra={"fields": {"error": str(exc), "kept_as": str(broken)}},
            )

    @property
    def current(self) -> JobState | None:
        with self._lock:
            return self._current

    def finished(self) -> list[JobState]:
        """Finished jobs, oldest first."""
        with self._lock:
            return list(self._finished)

    def find_finished(self, job_id: str, execution_number: int) -> JobState | None:
        with self._lock:
            return next(
                (s for s in reversed(self._finished) if s.job_id == job_id and s.execution_number == execution_number),
                None,
            )

    def save(self, state: JobState) -> None:
        """Record the new state of the current job (moved to the finished list when DONE)."""
        with self._lock:
            if state.step is Step.DONE:
                self._finished = [
                    s
                    for s in self._finished
                    if (s.job_id, s.execution_number) != (state.job_id, state.execution_number)
                ]
                self._finished.append(state)
                self._finished = self._finished[-self.keep :]
                self._current = None
            else:
                self._current = state
            self._write()

    def _write(self) -> None:
        document: dict[str, Any] = {
            "schema": SCHEMA,
            "current": None if self._current is None else self._current.to_dict(),
            "finished": [state.to_dict() for state in self._finished],
        }
        write_json_atomically(self.path, document)
