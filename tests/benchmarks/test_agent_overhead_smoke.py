"""The agent-overhead benchmark runs end to end with tiny numbers and writes every section.

No timing is asserted: the targets are measured by `make bench`, never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import agent_overhead
from benchmarks.markdown import HEADER

PATHS = {
    "direct_tf_function",
    "direct_signature",
    "agent_byte_data",
    "agent_shared_memory",
    "http_api",
    "grpc_health_check",
}
STATS = {"p50_ms", "p95_ms", "p99_ms", "mean_ms", "calls", "throughput_per_s"}


@pytest.mark.slow
def test_tiny_run_writes_json_with_every_path_and_the_markdown_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    argv = ["--calls", "5", "--warmup", "1", "--out", str(out), "--write-markdown", str(markdown)]

    assert agent_overhead.main(argv) == 0

    results = json.loads((out / "agent_overhead.json").read_text())
    for section in ("command", "machine", "options", "model", "latency_run", "latency", "overhead", "http"):
        assert results[section], section
    assert {"targets", "plot", "runtime_seconds", "max_abs_diff_agent_vs_direct"} <= results.keys()
    assert "concurrency" not in results  # the concurrency sweep's own script measures that
    assert "benchmarks.agent_overhead --calls 5" in results["command"]
    machine = results["machine"]
    assert machine["cpu_model"] and machine["cores"] >= 1 and machine["python"]
    assert "grpcio" in machine["versions"] and any(name.startswith("tensorflow") for name in machine["versions"])
    assert set(results["latency"]) == PATHS
    for stats in results["latency"].values():
        assert stats.keys() >= STATS and stats["calls"] == 5
    assert set(results["overhead"]) == {"agent_byte_data", "agent_shared_memory", "http_api"}
    assert results["overhead"]["http_api"]["ratio_p50"] > 0
    assert set(results["latency_run"]["cpu_seconds"]) == {"agent_process", "device_process", "benchmark_process"}
    assert results["latency_run"]["cpu_seconds"]["agent_process"] > 0  # the counter reads the agent's /proc entry
    assert [t["target"] for t in results["targets"]] == ["added p50, byte_data", "added p50, shared memory"]
    assert all(isinstance(t["met"], bool) for t in results["targets"])
    assert results["max_abs_diff_agent_vs_direct"] < 1e-5
    assert results["max_abs_diff_http_vs_direct"] < 1e-5  # same input: the device's pre-processing of the PNG
    assert results["http"]["png_bytes"] > 0 and results["http"]["answer_bytes"] > 0
    assert results["target_exit_code"] == 0  # SIGTERM stopped the device target gracefully
    assert results["plot"]["path"] or results["plot"]["reason"]

    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert "<!-- section:agent-overhead -->" in text and "<!-- /section:agent-overhead -->" in text
    assert "## Agent overhead (issues 3 and 8)" in text and results["command"] in text
    assert "`http_api`" in text and "Throughput, concurrent callers" not in text
