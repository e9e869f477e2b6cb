"""A scenario's OTA timeline as a PNG: one row per device, one bar per job, coloured by its status.

A job's bar runs from its first transition to its `done` transition, or to the end of the report
when it never got there. Its colour is the job execution's final status as AWS IoT Jobs names it:
SUCCEEDED, FAILED or REJECTED once done; a job not done by the end is still IN_PROGRESS, drawn grey.
Inside a bar, thin white ticks mark each step change (while rows are tall enough to show them)
and rollback steps are hatched.

Drawn on a bare `matplotlib.figure.Figure` (the Agg canvas, no pyplot), as in
`system.cloud.evaluation`; bars go into one collection per status, so 1,000 devices draw as fast as 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulators.harness.report import ScenarioReport, Transition

IN_PROGRESS = "IN_PROGRESS"
STATUS_COLOURS: dict[str, str] = {
    "SUCCEEDED": "#2ca02c",
    "FAILED": "#d62728",
    "REJECTED": "#ff7f0e",
    IN_PROGRESS: "#9e9e9e",
}
ROLLBACK = "rollback"  # ota_machine.Step.ROLLBACK, spelled out: the harness does not import the device
DONE = "done"  # ota_machine.Step.DONE
MAX_LABELLED_ROWS = 40  # beyond this, label an evenly spaced subset of rows
MAX_TICKED_ROWS = 100  # beyond this, rows are a few pixels tall: step ticks would be noise
WIDTH_IN, ROW_IN, MIN_HEIGHT_IN, MAX_HEIGHT_IN, DPI = 10.0, 0.3, 2.5, 12.0, 100


@dataclass(frozen=True)
class JobBar:
    """One job of one device on the timeline; `steps` are (step, start, end) in seconds."""

    device: str
    job_id: str
    start: float
    end: float
    status: str
    steps: tuple[tuple[str, float, float], ...]


def job_bars(transitions: Sequence[Transition], end: float) -> list[JobBar]:
    """A bar per (device, job) in order of first appearance; jobs never done run to `end`."""
    by_job: dict[tuple[str, str], list[Transition]] = {}
    for transition in transitions:
        by_job.setdefault((transition.device, transition.job_id), []).append(transition)
    return [_bar(device, job_id, changes, end) for (device, job_id), changes in by_job.items()]


def _bar(device: str, job_id: str, changes: list[Transition], end: float) -> JobBar:
    done = next((c for c in changes if c.step == DONE), None)
    outcome = next((c.outcome for c in reversed(changes) if c.outcome is not None), None)
    status = outcome if done is not None and outcome in STATUS_COLOURS else IN_PROGRESS
    stop = done.at if done is not None else max(end, changes[-1].at)
    drawn = [c for c in changes if c.step != DONE]
    bounds = [c.at for c in drawn[1:]] + [stop]
    steps = tuple((c.step, c.at, bound) for c, bound in zip(drawn, bounds, strict=True))
    return JobBar(device, job_id, changes[0].at, stop, status, steps)


def plot_timeline(report: ScenarioReport, path: Path) -> Path | None:
    """Draw the report's job timeline into a PNG at `path`; None, and nothing written, without transitions."""
    if not report.transitions:
        return None
    end = max(t.at for t in report.transitions)
    if report.finished is not None:
        end = max(end, report.finished - report.started)
    bars = job_bars(report.transitions, end)
    devices = sorted({bar.device for bar in bars})
    rows = {device: row for row, device in enumerate(devices)}
    figure = _figure(len(devices))
    axes = figure.add_subplot()
    min_width = max(end, 1e-3) * 0.002  # a job done within a millisecond still shows
    _draw_bars(axes, bars, rows, min_width)
    if len(devices) <= MAX_TICKED_ROWS:
        _draw_step_ticks(axes, bars, rows)
    _label_rows(axes, devices)
    axes.set(xlim=(0, end * 1.01 or 1.0), ylim=(len(devices) - 0.5, -0.5))
    clock = "virtual clock" if report.on_virtual_clock else "wall clock"
    axes.set(xlabel=f"time since the run started (s, {clock})", ylabel=f"device ({len(devices)})")
    axes.set_title(f"{report.scenario} ({report.profile}, seed {report.seed})")
    figure.legend(handles=_legend_handles(), loc="outside upper center", ncols=5, frameon=False)
    return _save(figure, path)


def _figure(n_rows: int) -> Any:
    from matplotlib.figure import Figure

    height = min(max(1.4 + ROW_IN * n_rows, MIN_HEIGHT_IN), MAX_HEIGHT_IN)
    return Figure(figsize=(WIDTH_IN, height), layout="constrained")


def _rectangle(left: float, right: float, row: int, height: float) -> list[tuple[float, float]]:
    top, bottom = row - height / 2, row + height / 2
    return [(left, top), (right, top), (right, bottom), (left, bottom)]


def _draw_bars(axes: Any, bars: Sequence[JobBar], rows: dict[str, int], min_width: float) -> None:
    from matplotlib.collections import PolyCollection

    tall = len(rows) <= MAX_TICKED_ROWS
    height = 0.8 if tall else 1.0  # thin rows: no gaps, and no antialiasing to blend neighbours' colours
    by_status: dict[str, list[list[tuple[float, float]]]] = {status: [] for status in STATUS_COLOURS}
    rollbacks: list[list[tuple[float, float]]] = []
    for bar in bars:
        row = rows[bar.device]
        by_status[bar.status].append(_rectangle(bar.start, max(bar.end, bar.start + min_width), row, height))
        rollbacks += [_rectangle(s, e, row, height) for step, s, e in bar.steps if step == ROLLBACK and e > s]
    for status, shapes in by_status.items():
        if shapes:
            axes.add_collection(
                PolyCollection(shapes, facecolors=STATUS_COLOURS[status], edgecolors="none", antialiaseds=tall)
            )
    if rollbacks:
        axes.add_collection(
            PolyCollection(rollbacks, facecolors="none", edgecolors="black", linewidths=0, hatch="////")
        )


def _draw_step_ticks(axes: Any, bars: Sequence[JobBar], rows: dict[str, int]) -> None:
    from matplotlib.collections import LineCollection

    ticks = [
        [(start, rows[bar.device] - 0.4), (start, rows[bar.device] + 0.4)]
        for bar in bars
        for _, start, _ in bar.steps[1:]
    ]
    if ticks:
        axes.add_collection(LineCollection(ticks, colors="white", linewidths=0.8))


def _label_rows(axes: Any, devices: Sequence[str]) -> None:
    every = max(1, -(-len(devices) // MAX_LABELLED_ROWS))  # ceil: at most MAX_LABELLED_ROWS labels
    shown = range(0, len(devices), every)
    axes.set_yticks(list(shown), [devices[row] for row in shown], fontsize=8 if every == 1 else 6)


def _legend_handles() -> list[Any]:
    from matplotlib.patches import Patch

    labels = {IN_PROGRESS: "IN_PROGRESS (not done by the end)"}
    handles = [Patch(facecolor=colour, label=labels.get(status, status)) for status, colour in STATUS_COLOURS.items()]
    return [*handles, Patch(facecolor="white", edgecolor="black", hatch="////", label="rollback step")]


def _save(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path
