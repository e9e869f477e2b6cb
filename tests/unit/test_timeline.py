"""The PNG timeline of a scenario report: a row per device, a bar per job, coloured by its status."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from simulators.harness.report import ScenarioReport, Transition
from simulators.harness.timeline import IN_PROGRESS, STATUS_COLOURS, job_bars, plot_timeline

STEPS = ("download", "verify", "extract", "load", "health_check", "switch", "unload_old", "report")


def _job(device: str, job_id: str, start: float, steps: tuple[str, ...], outcome: str | None) -> list[Transition]:
    """One transition a second; the outcome is set from the `report` step on, as the device does."""
    changes, known = [], None
    for offset, step in enumerate(steps):
        known = outcome if step in ("report", "done") else known
        changes.append(Transition(device, job_id, step, known, start + offset))
    return changes


def _report() -> ScenarioReport:
    report = ScenarioReport("mixed-fleet", "fake", 7, "three devices, four jobs")
    report.transitions = [
        *_job("dev-b", "job-1", 0.0, (*STEPS[:5], "rollback", "report", "done"), "FAILED"),
        *_job("dev-a", "job-1", 1.0, (*STEPS, "done"), "SUCCEEDED"),
        *_job("dev-c", "job-1", 2.0, ("report", "done"), "REJECTED"),
        *_job("dev-a", "job-2", 12.0, STEPS[:3], None),  # never done: runs to the end of the report
    ]
    report.finished = report.started + 20.0
    return report


def _pixels(path: Path) -> dict[tuple[int, int, int], int]:
    with Image.open(path) as image:
        counts = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert counts is not None
    return {colour: count for count, colour in counts}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    red, green, blue = (round(255 * channel) for channel in to_rgb(hex_colour))
    return red, green, blue


def test_each_job_gets_a_bar_coloured_by_its_final_status() -> None:
    report = _report()
    bars = {(bar.device, bar.job_id): bar for bar in job_bars(report.transitions, end=20.0)}
    assert {key: bar.status for key, bar in bars.items()} == {
        ("dev-b", "job-1"): "FAILED",
        ("dev-a", "job-1"): "SUCCEEDED",
        ("dev-c", "job-1"): "REJECTED",  # its report step, before done, counts as REJECTED too
        ("dev-a", "job-2"): IN_PROGRESS,
    }
    assert (bars["dev-a", "job-1"].start, bars["dev-a", "job-1"].end) == (1.0, 9.0)
    assert bars["dev-a", "job-2"].end == 20.0
    assert ("rollback", 5.0, 6.0) in bars["dev-b", "job-1"].steps
    assert [step for step, _, _ in bars["dev-a", "job-1"].steps] == list(STEPS)  # done ends the bar


def test_timeline_png_shows_every_status(tmp_path: Path) -> None:
    path = plot_timeline(_report(), tmp_path / "out" / "mixed-fleet.png")
    assert path == tmp_path / "out" / "mixed-fleet.png"
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert width == 1000 and 250 <= height <= 1200
    pixels = _pixels(path)
    for status, colour in STATUS_COLOURS.items():
        # far more than the legend's swatch (~20x7 px): the bars are drawn in the status colour
        assert pixels.get(_rgb(colour), 0) > 1000, status


def test_no_transitions_draw_nothing(tmp_path: Path) -> None:
    assert plot_timeline(ScenarioReport("empty", "fake", 1), tmp_path / "empty.png") is None
    assert not (tmp_path / "empty.png").exists()


def test_a_thousand_devices_render_quickly(tmp_path: Path) -> None:
    report = ScenarioReport("fleet", "fake", 3)
    for n in range(1000):
        outcome = ("SUCCEEDED", "FAILED", "REJECTED")[n % 3]
        report.transitions += _job(f"dev-{n:04d}", "job-1", n / 100, (*STEPS, "done"), outcome)
    began = time.perf_counter()
    path = plot_timeline(report, tmp_path / "fleet.png")
    elapsed = time.perf_counter() - began
    assert path is not None and elapsed < 3.0
    with Image.open(path) as image:
        assert image.size[1] <= 1200  # the height is capped, rows get thin
    pixels = _pixels(path)
    assert all(pixels.get(_rgb(STATUS_COLOURS[s]), 0) > 1000 for s in ("SUCCEEDED", "FAILED", "REJECTED"))


def test_write_adds_the_png_and_links_it_from_the_summary(tmp_path: Path) -> None:
    files = _report().write(tmp_path)
    assert files.timeline == tmp_path / "mixed-fleet.png" and files.timeline.is_file()
    assert "[mixed-fleet.png](mixed-fleet.png)" in files.markdown.read_text()


def test_write_without_transitions_writes_no_png(tmp_path: Path) -> None:
    files = ScenarioReport("empty", "fake", 1).write(tmp_path)
    assert files.timeline is None and not (tmp_path / "empty.png").exists()
    assert ".png" not in files.markdown.read_text()


def test_write_without_matplotlib_says_why_there_is_no_timeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes its import fail
    files = _report().write(tmp_path)
    assert files.timeline is None and files.json.is_file()
    assert "matplotlib is not installed" in files.markdown.read_text()
