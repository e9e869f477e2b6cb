"""benchmarks/reliability_report.py: RELIABILITY.md from the kill-point results, or "not measured"."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.reliability_report import main
from system.killpoints import POINTS


def test_without_results_every_figure_says_not_measured(tmp_path: Path) -> None:
    out = tmp_path / "RELIABILITY.md"
    assert main(["--results", str(tmp_path), "--write", str(out)]) == 0
    text = out.read_text()
    assert text.count("not measured: run `make reliability`") == 4  # kill points, both fuzzers, authorization
    assert "not measured: run `make soak`" in text
    assert text.count("| no |") == len(POINTS)


def test_the_kill_point_figure_comes_from_the_results(tmp_path: Path) -> None:
    covered = sorted(POINTS)[:3]
    (tmp_path / "kill_points.json").write_text(json.dumps({"covered": covered, "total": sorted(POINTS), "seconds": 42}))
    out = tmp_path / "RELIABILITY.md"
    main(["--results", str(tmp_path), "--write", str(out)])
    text = out.read_text()
    assert f"| 3 of {len(POINTS)} |" in text and "| 42 s |" in text
    assert text.count("| yes |") == 3


def test_the_fuzz_figures_come_from_the_results(tmp_path: Path) -> None:
    counts = {"job documents": 5, "archives": 7, "archives refused": 6}
    (tmp_path / "fuzz.json").write_text(json.dumps({"examples": 12, "per_input": counts}))
    out = tmp_path / "RELIABILITY.md"
    main(["--results", str(tmp_path), "--write", str(out)])
    text = out.read_text()
    assert "| 12: job documents 5, archives 7 |" in text and "| 6 of 7, none wrote outside |" in text


def test_the_atheris_figure_comes_from_the_results_and_names_a_crash(tmp_path: Path) -> None:
    targets = [
        {"target": "archive", "runs": 20000, "seconds": 40.0, "crashed": False, "crash_files": [], "tail": ""},
        {"target": "image", "runs": 5000, "seconds": 60.0, "crashed": True, "crash_files": ["c"], "tail": "x"},
    ]
    (tmp_path / "atheris.json").write_text(json.dumps({"runs": 25000, "targets": targets}))
    out = tmp_path / "RELIABILITY.md"
    main(["--results", str(tmp_path), "--write", str(out)])
    assert "| 25000: archive 20000, image 5000; CRASHED: image |" in out.read_text()
