"""The summary report reads whatever results exist, reports the missing ones, and writes its section first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks import report
from benchmarks.markdown import HEADER, write_section

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def test_summary_gathers_targets_reports_missing_results_and_writes_json_plot_and_section(tmp_path: Path) -> None:
    out = tmp_path / "results"
    out.mkdir()
    for name in ("broker.json", "fleet_rollout.json"):  # committed results of earlier issues
        shutil.copy(RESULTS / name, out / name)
    (out / "locust.json").write_text(
        json.dumps(
            {
                "command": "python -m benchmarks.locust_bench",
                "runtime_seconds": 9.0,
                "targets": [{"target": "t", "limit": "l", "measured": "m", "met": False}],
            }
        )
    )
    markdown = tmp_path / "BENCHMARKS.md"
    write_section(markdown, "summary", "placeholder")  # the summary sits where it already is: first
    write_section(markdown, "broker", "the broker's own section")

    assert report.main(["--out", str(out), "--write-markdown", str(markdown)]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["benchmarks"]["agent_overhead"] is None and summary["benchmarks"]["swap_under_load"] is None
    assert summary["benchmarks"]["locust"]["targets"][0]["met"] is False
    assert summary["benchmarks"]["broker"]["targets"] and summary["benchmarks"]["fleet_rollout"]["targets"]
    assert summary["plot"]["path"] or summary["plot"]["reason"]
    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert text.index("## Summary") < text.index("the broker's own section")
    assert "not measured: `python -m benchmarks.swap_under_load`" in text
    assert "| [Locust load test](#locust-load-test-issue-8) | t | l | m | **not met** |" in text


def test_summary_without_any_result_still_writes_and_says_so(tmp_path: Path) -> None:
    assert report.main(["--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert all(result is None for result in summary["benchmarks"].values())
    assert summary["plot"]["path"] is None and "neither" in summary["plot"]["reason"]
