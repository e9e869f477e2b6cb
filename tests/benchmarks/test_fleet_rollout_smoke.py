"""The fleet-rollout benchmark runs end to end with tiny fleets and writes its JSON and markdown section.

No timing is asserted: the targets are measured by `make bench`, never by tests.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import fleet_rollout
from benchmarks.markdown import write_section

SIZE_FIELDS = {
    "provision_s",
    "rollout_s",
    "rollout_gc_s",
    "fleet_seconds",
    "callbacks",
    "peak_rss_mb",
    "rss_per_device_kb",
}


def test_tiny_run_reports_every_execution_succeeded_and_writes_only_its_own_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_section(markdown, "broker", "## Broker\n\nkept as it was")

    assert fleet_rollout.main(["--sizes", "3,10", "--out", str(out), "--write-markdown", str(markdown)]) == 0

    results = json.loads((out / "fleet_rollout.json").read_text())
    assert "benchmarks.fleet_rollout --sizes 3,10" in results["command"]
    assert [size["devices"] for size in results["sizes"]] == [3, 10]
    for size in results["sizes"]:
        assert size["ok"], size.get("failure")
        assert size.keys() >= SIZE_FIELDS
        assert size["executions"] == {"SUCCEEDED": size["devices"]}
        assert size["serving_version"] == size["devices"] and size["driver_errors"] == 0
        assert size["job_status"] == "COMPLETED" and size["callbacks"] > 0
    assert [(pair["from"], pair["to"]) for pair in results["growth"]] == [(3, 10)]
    assert results["targets"][0]["met"] is None  # no 1,000-device size in this run
    assert results["plot"]["path"] or results["plot"]["reason"]

    text = markdown.read_text()
    assert "## Broker\n\nkept as it was" in text
    assert text.count("<!-- section:fleet-rollout -->") == 1 and results["command"] in text


def test_a_failed_or_killed_size_is_reported_as_failed_not_as_a_number() -> None:
    def size(devices: int, rollout_s: float, rss: float) -> dict[str, object]:
        return {"devices": devices, "ok": True, "rollout_s": rollout_s, "peak_rss_mb": rss}

    sizes = [size(10, 1.0, 100.0), size(100, 8.0, 110.0), size(1000, 50.0, 200.0)]
    pairs = fleet_rollout.growth(sizes)
    assert [round(p["rollout_s_per_10x"], 2) for p in pairs] == [8.0, 6.25]
    assert [t["met"] for t in fleet_rollout.evaluate_targets(sizes, pairs)] == [True, True, True]

    killed = {"devices": 10000, "ok": False, "timed_out": True, "failure": "killed"}
    targets = fleet_rollout.evaluate_targets([*sizes, killed], pairs)
    assert [t["met"] for t in targets] == [True, False, False]
    wrong = {"devices": 1000, "ok": False, "timed_out": False, "failure": "executions {'FAILED': 3}"}
    targets = fleet_rollout.evaluate_targets([*sizes[:2], wrong], fleet_rollout.growth([*sizes[:2], wrong]))
    assert [t["met"] for t in targets] == [False, None, None]
    assert fleet_rollout.verify(3, {"failure": "ValueError: boom"}) == "ValueError: boom"
