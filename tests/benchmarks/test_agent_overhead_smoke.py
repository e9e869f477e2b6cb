"""The agent-overhead benchmark runs end to end with tiny numbers and writes every section.

No timing is asserted: the targets are measured by `make bench`, never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import agent_overhead
from benchmarks.markdown import HEADER

PATHS = {"direct_tf_function", "direct_signature", "agent_byte_data", "agent_shared_memory", "grpc_health_check"}
STATS = {"p50_ms", "p95_ms", "p99_ms", "mean_ms", "calls", "throughput_per_s"}


@pytest.mark.slow
def test_tiny_run_writes_json_with_every_section_and_the_markdown_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    argv = ["--calls", "5", "--warmup", "1", "--clients", "1,2", "--seconds", "0.5"]
    argv += ["--out", str(out), "--write-markdown", str(markdown)]

    assert agent_overhead.main(argv) == 0

    results = json.loads((out / "agent_overhead.json").read_text())
    for section in ("command", "machine", "options", "model", "latency_run", "latency", "overhead", "concurrency"):
        assert results[section], section
    assert {"targets", "plot", "runtime_seconds", "max_abs_diff_agent_vs_direct"} <= results.keys()
    assert "benchmarks.agent_overhead --calls 5" in results["command"]
    machine = results["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["python"]
    assert "grpcio" in machine["versions"] and any(name.startswith("tensorflow") for name in machine["versions"])
    assert set(results["latency"]) == PATHS
    for stats in results["latency"].values():
        assert stats.keys() >= STATS and stats["calls"] == 5
    assert set(results["overhead"]) == {"agent_byte_data", "agent_shared_memory"}
    assert [level["clients"] for level in results["concurrency"]] == [1, 2]
    for level in results["concurrency"]:
        assert level["agent"]["calls"] > 0 and level["direct"]["calls"] > 0 and "agent_over_direct" in level
        assert "cpu_ms_per_call_agent_process" in level["agent"]
    assert len(results["targets"]) == 3
    assert [t["met"] for t in results["targets"]][2] is None  # no 8-client level in this run
    assert all(isinstance(t["met"], bool) for t in results["targets"][:2])
    assert results["max_abs_diff_agent_vs_direct"] < 1e-5
    assert results["agent_exit_code"] == 0  # SIGTERM stopped the agent gracefully
    assert results["plot"]["path"] or results["plot"]["reason"]

    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert "<!-- section:agent-overhead -->" in text and "<!-- /section:agent-overhead -->" in text
    assert "## Agent overhead (issue 3)" in text and results["command"] in text
