"""A scenario run's report: named checks, each device's OTA transitions, JSON and Markdown.

Checks replace bare asserts: every one is recorded with its outcome and detail, and a run fails
(non-zero exit) when any did. Times are seconds since the run started (on the fleet's virtual clock
once `use_clock` is called, so a simulated hour reads as 3600 s); `canonical()` leaves them
out, so two runs with the same seed on the fake profile compare equal although wall times differ.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from simulators.harness.timeline import plot_timeline


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    at: float  # seconds since the run started


@dataclass(frozen=True)
class Transition:
    device: str
    job_id: str
    step: str
    outcome: str | None
    at: float


class ReportFiles(NamedTuple):
    """What `ScenarioReport.write` wrote; `timeline` is None without transitions or without matplotlib."""

    json: Path
    markdown: Path
    timeline: Path | None


@dataclass
class ScenarioReport:
    scenario: str
    profile: str
    seed: int
    description: str = ""
    checks: list[Check] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # skipped fake-only steps, and why
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: dict[tuple[str, str], tuple[str, str | None]] = field(default_factory=dict, repr=False)
    _clock: tuple[Callable[[], float], float] | None = field(default=None, repr=False)

    def use_clock(self, now: Callable[[], float]) -> None:
        """Time checks and transitions by this clock from now on (a fleet's virtual clock), not the wall."""
        self._clock = (now, now() - self.now())

    @property
    def on_virtual_clock(self) -> bool:
        return self._clock is not None

    def now(self) -> float:
        if self._clock is not None:
            clock, origin = self._clock
            return round(clock() - origin, 3)
        return round(time.monotonic() - self.started, 3)

    def add_check(self, name: str, passed: bool, detail: str) -> None:
        with self._lock:
            self.checks.append(Check(name, passed, detail, self.now()))

    def add_transition(self, device: str, job_id: str, step: str, outcome: str | None) -> None:
        with self._lock:
            if self._last.get((device, job_id)) != (step, outcome):  # a repeated state adds nothing
                self._last[device, job_id] = (step, outcome)
                self.transitions.append(Transition(device, job_id, step, outcome, self.now()))

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "profile": self.profile,
            "seed": self.seed,
            "passed": self.passed,
            "error": self.error,
            "duration_s": None if self.finished is None else round(self.finished - self.started, 3),
            "time": "virtual clock" if self.on_virtual_clock else "wall clock",
            "checks": [vars(c) for c in self.checks],
            "transitions": [vars(t) for t in self.transitions],
            "notes": list(self.notes),
        }

    def canonical(self) -> dict[str, Any]:
        """The report without times: what must be equal for equal seeds (on the fake profile)."""
        raw = self.to_dict()
        raw.pop("duration_s")
        raw["checks"] = [{k: v for k, v in c.items() if k != "at"} for c in raw["checks"]]
        by_device: dict[str, list[tuple[str, str, str | None]]] = {}
        for t in self.transitions:  # devices run concurrently: compare each device's own sequence
            by_device.setdefault(t.device, []).append((t.job_id, t.step, t.outcome))
        raw["transitions"] = dict(sorted(by_device.items()))
        return raw

    def markdown(self, timeline: str | None = None) -> str:
        """The summary; `timeline` is a line about the PNG timeline (a link to it, or why there is none)."""
        verdict = "PASSED" if self.passed else "FAILED"
        lines = [f"# Scenario {self.scenario}: {verdict}", "", self.description.strip(), ""]
        lines += [f"Profile `{self.profile}`, seed {self.seed}, {self.to_dict()['duration_s']} s.", ""]
        lines += ["| check | result | detail |", "|---|---|---|"]
        lines += [
            f"| {c.name} | {'ok' if c.passed else 'FAILED'} | {c.detail.replace('|', '/')} |" for c in self.checks
        ]
        if timeline:
            lines += ["", timeline]
        if self.notes:
            lines += ["", "Notes:", *[f"- {note}" for note in self.notes]]
        if self.error:
            lines += ["", f"Error: `{self.error}`"]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> ReportFiles:
        """Write <scenario>.json, <scenario>.md and, when there are transitions, <scenario>.png."""
        folder.mkdir(parents=True, exist_ok=True)
        json_path, md_path = folder / f"{self.scenario}.json", folder / f"{self.scenario}.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        timeline, line = self._write_timeline(folder / f"{self.scenario}.png")
        md_path.write_text(self.markdown(line))
        return ReportFiles(json_path, md_path, timeline)

    def _write_timeline(self, path: Path) -> tuple[Path | None, str | None]:
        try:
            written = plot_timeline(self, path)
        except ModuleNotFoundError as exc:  # matplotlib comes with the dev extra, not with `sim`
            if (exc.name or "").partition(".")[0] != "matplotlib":
                raise
            return None, "Timeline not drawn: matplotlib is not installed (it comes with the `dev` extra)."
        return written, None if written is None else f"Timeline: [{path.name}]({path.name})"
