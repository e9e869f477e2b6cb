"""The concurrency sweep runs end to end with tiny numbers and writes its JSON, plot and markdown section.

No timing is asserted: the targets are measured by `make bench`, never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import concurrency_sweep
from benchmarks.markdown import HEADER

PATHS = {"direct", "agent_byte_data", "agent_shared_memory"}
STATS = {
    "throughput_per_s",
    "p50_ms",
    "p99_ms",
    "calls",
    "cpu_ms_per_call_agent_process",
    "cpu_ms_per_call_benchmark_process",
}


@pytest.mark.slow
def test_tiny_sweep_writes_every_level_the_targets_and_the_markdown_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    argv = ["--clients", "1,8", "--seconds", "0.4", "--out", str(out), "--write-markdown", str(markdown)]

    assert concurrency_sweep.main(argv) == 0

    results = json.loads((out / "concurrency_sweep.json").read_text())
    assert "benchmarks.concurrency_sweep --clients 1,8" in results["command"]
    assert results["machine"]["cores"] >= 1 and results["runtime_seconds"] > 0
    assert [level["clients"] for level in results["levels"]] == [1, 8]
    for level in results["levels"]:
        assert set(level["paths"]) == PATHS
        for stats in level["paths"].values():
            assert stats.keys() >= STATS and stats["calls"] > 0
        assert set(level["agent_over_direct"]) == PATHS - {"direct"}
    assert results["levels"][1]["paths"]["agent_byte_data"]["cpu_ms_per_call_agent_process"] > 0
    assert len(results["targets"]) == 2  # one per transport, at the 8-client level
    assert all(isinstance(t["met"], bool) and "8 clients" in t["target"] for t in results["targets"])
    assert results["agent_exit_code"] == 0  # SIGTERM stopped the agent gracefully
    assert results["plot"]["path"] or results["plot"]["reason"]
    if results["plot"]["path"]:
        assert Path(results["plot"]["path"]).stat().st_size > 0

    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert "<!-- section:concurrency-sweep -->" in text and "<!-- /section:concurrency-sweep -->" in text
    assert "## Concurrency sweep (issue 8)" in text and results["command"] in text


def test_targets_are_not_measured_without_an_eight_client_level() -> None:
    level = {"clients": 4, "paths": {}, "agent_over_direct": {"agent_byte_data": 1.0}}

    (target,) = concurrency_sweep.evaluate_targets([level], ["byte_data"])

    assert target["met"] is None and target["measured"] == "not measured"
