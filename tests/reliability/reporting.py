"""The figures the reliability tests count, reported once at the end of the pytest session.

Each test module registers a `Report` when it is imported: a summary line for the terminal and,
when its environment variable names a file, a JSON file for RELIABILITY.md
(benchmarks/reliability_report.py reads it; `make reliability` sets the variables). The
`pytest_terminal_summary` hook in this folder's conftest.py prints and writes them; a module none
of whose counted tests ran reports nothing, so a partial run never overwrites a full run's figures.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Report:
    env: str  # the variable naming the JSON file, e.g. EDGESIM_KILL_RESULTS
    ran: Callable[[], bool]
    line: Callable[[], str]
    results: Callable[[], dict[str, Any]]

    def write(self) -> Path | None:
        target = os.environ.get(self.env)
        if not target:
            return None
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.results(), indent=2) + "\n")
        return path


REPORTS: dict[str, Report] = {}


def register(name: str, report: Report) -> None:
    REPORTS[name] = report
