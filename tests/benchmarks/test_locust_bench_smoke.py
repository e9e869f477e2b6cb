"""The locust benchmark runs end to end with tiny numbers and writes its JSON, plot and markdown section.

It runs as a subprocess, as `make bench` runs it: it starts locust and the target as processes of
its own, and loads TensorFlow. No timing is asserted: the targets are measured by `make bench`,
never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.locust_summary import read_final_stats
from benchmarks.markdown import HEADER

ROOT = Path(__file__).resolve().parents[2]
RUNS = {"grpc_byte_data", "grpc_shared_memory", "http"}
BENCH_TIMEOUT_S = 170.0  # the script bounds its own stages; this only stops a hung test

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is missing (.[bench])")


@pytest.mark.slow
def test_tiny_run_writes_json_with_every_path_the_baseline_and_the_markdown_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "benchmarks.locust_bench", "--users", "2", "--seconds", "3"]
    command += ["--out", str(out), "--write-markdown", str(markdown)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}

    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S, check=False
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "locust.json").read_text())
    assert {run["name"] for run in results["runs"]} == RUNS
    for run in results["runs"]:
        assert run["ok"] and run["problems"] == [] and run["returncode"] == 0 and not run["overran"], run
        stats = run["stats"]
        assert stats["requests"] > 0 and stats["failures"] == 0, run["name"]
        assert {"p50_ms", "p95_ms", "p99_ms", "req_per_s"} <= stats.keys()
        assert set(run["vs_direct"]) == {"p50_ratio", "p99_ratio", "req_per_s_ratio"}
        assert "-u 2 -r 2 -t 3s" in run["command"] and "--json-file" in run["command"]
        assert (ROOT / run["csv"]).exists() or Path(run["csv"]).exists()
    baseline = results["baseline"]
    assert baseline["calls"] > 0 and baseline["threads"] == 2 and len(baseline["windows"]) == len(RUNS) + 1
    assert all(window["calls"] > 0 for window in baseline["windows"])
    assert results["target"]["exit_code"] == 0  # SIGTERM stopped the target (and its agent) gracefully
    assert results["machine"]["cores"] >= 1 and "locust_bench --users 2" in results["command"]
    assert [t["met"] for t in results["targets"]] == [True] * (len(RUNS) + 2)
    assert (results["plot"]["path"] and Path(results["plot"]["path"]).exists()) or results["plot"]["reason"]

    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert "<!-- section:locust -->" in text and "<!-- /section:locust -->" in text
    assert "## Locust load test (issue 8)" in text and results["command"] in text
    assert all(run["command"] in text for run in results["runs"])


def test_help_names_every_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.locust_bench", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    for option in ("--users", "--spawn-rate", "--seconds", "--runs", "--out", "--write-markdown"):
        assert option in done.stdout


def test_an_unknown_run_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.locust_bench", "--runs", "grpc_byte_data,websocket"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2 and "--runs takes names from" in done.stderr


def test_final_stats_take_locust_percentiles_over_every_request(tmp_path: Path) -> None:
    entry = {
        "name": "Predict",
        "method": "grpc",
        "start_time": 100.0,
        "last_request_timestamp": 104.0,
        "num_requests": 100,
        "num_none_requests": 0,
        "num_failures": 0,
        "total_response_time": 1234.0,
        "max_response_time": 90.4,
        "response_times": {"10": 50, "12": 45, "40": 4, "90": 1},  # JSON keys are strings
        "num_reqs_per_sec": {"100": 10, "101": 30, "102": 30, "103": 20, "104": 10},
    }
    (tmp_path / "run.json").write_text(json.dumps([entry]))

    (row,) = read_final_stats(tmp_path / "run.json")

    assert (row["type"], row["name"], row["requests"], row["failures"]) == ("grpc", "Predict", 100, 0)
    assert (row["p50_ms"], row["p95_ms"], row["p99_ms"]) == (12, 40, 90)  # as locust.stats computes them
    assert row["req_per_s"] == 25.0 and row["mean_ms"] == 12.34
    assert row["steady_req_per_s"] == pytest.approx(80 / 3)  # whole seconds only: the first and last are partial
