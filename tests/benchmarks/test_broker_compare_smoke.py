"""The broker benchmark runs end to end with tiny numbers and writes its JSON and markdown section.

No timing is asserted: the target is measured by `make bench`, never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import broker_compare
from benchmarks.markdown import write_section
from simulators.mosquitto import find_mosquitto

RATE_FIELDS = {"sent", "received", "seconds", "rate_per_s", "stopped_by"}
RTT_FIELDS = {"round_trips", "p50_ms", "p95_ms", "p99_ms", "mean_ms", "lost", "stopped_by"}


def test_tiny_run_writes_json_and_only_its_own_markdown_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    write_section(markdown, "agent-overhead", "## Agent overhead\n\nkept as it was")
    argv = ["--messages", "300", "--seconds", "10", "--round-trips", "20", "--rtt-seconds", "10", "--window", "50"]
    argv += ["--out", str(out), "--write-markdown", str(markdown)]

    assert broker_compare.main(argv) == 0

    results = json.loads((out / "broker.json").read_text())
    assert "benchmarks.broker_compare --messages 300" in results["command"]
    assert results["machine"]["cores"] >= 1 and results["libraries"]["paho-mqtt"]
    expected = {"simulated", "simulated_no_record"}
    if find_mosquitto() is not None:
        expected |= {"paho_mosquitto", "paho_bus_mosquitto"}
        assert results["mosquitto_skipped"] is None and results["libraries"]["mosquitto"]
    assert set(results["results"]) == expected == set(results["paths"])
    for by_qos in results["results"].values():
        assert set(by_qos) == {"qos0", "qos1"}
        for outcome in by_qos.values():
            assert outcome["rate"].keys() >= RATE_FIELDS and outcome["rtt"].keys() >= RTT_FIELDS
            assert outcome["rate"]["received"] == outcome["rate"]["sent"] == 300
            assert outcome["rtt"]["round_trips"] == 20 and outcome["rtt"]["lost"] == 0
    assert [t["met"] is None for t in results["targets"]] == [find_mosquitto() is None] * 2
    assert set(results["ratios"]["qos1"]) == expected

    text = markdown.read_text()
    assert "## Agent overhead\n\nkept as it was" in text
    assert text.count("<!-- section:broker -->") == 1 and "## Simulated broker vs. Mosquitto (issue 4)" in text
    assert results["command"] in text and "### Target" in text


def test_the_ratio_and_the_verdict_compare_the_default_simulated_broker_with_bare_paho() -> None:
    def rate(value: float) -> dict[str, dict[str, float]]:
        return {"rate": {"rate_per_s": value}}

    results = {
        "simulated": {"qos0": rate(50_000.0), "qos1": rate(40_000.0)},
        "simulated_no_record": {"qos0": rate(90_000.0), "qos1": rate(90_000.0)},
        "paho_mosquitto": {"qos0": rate(20_000.0), "qos1": rate(5_000.0)},
    }
    assert broker_compare.ratios(results, 0) == {"simulated": 2.5, "simulated_no_record": 4.5, "paho_mosquitto": 1.0}
    assert [t["met"] for t in broker_compare.evaluate_targets(results)] == [False, True]
    assert [t["met"] for t in broker_compare.evaluate_targets({"simulated": results["simulated"]})] == [None, None]
