"""The locustfile imports, and a tiny headless run against the real target reports both request types.

Everything locust-related runs in subprocesses: importing locust monkey-patches the process with
gevent, which must never happen inside pytest. No timing is asserted.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import locust_summary

ROOT = Path(__file__).resolve().parents[2]
TARGET_START_TIMEOUT_S = 120.0
LOCUST_TIMEOUT_S = 60.0

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None, reason="locust is missing (.[bench])")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture
def target(tmp_path: Path) -> Iterator[dict[str, str]]:
    """`python -m benchmarks.locust_target` in a child process; its target.json, once written; stopped after."""
    out = tmp_path / "target"
    log = (tmp_path / "target.log").open("wb")
    command = [sys.executable, "-m", "benchmarks.locust_target", "--out", str(out), "--seconds", "180"]
    process = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TARGET_START_TIMEOUT_S
        while not (out / "target.json").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the target did not start:\n{(tmp_path / 'target.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield {**json.loads((out / "target.json").read_text()), "config": str(out / "locust.conf")}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_locustfile_imports_with_both_tagged_users() -> None:
    code = (
        "import benchmarks.locustfile as f\n"
        "users = (f.GrpcPredictUser, f.WebPredictUser)\n"
        "print(sorted(t for c in users for task in c.tasks for t in task.locust_tag_set))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "['grpc', 'http']"


@pytest.mark.slow
def test_tiny_headless_run_reports_grpc_predict_and_http_predict_without_failures(
    target: dict[str, str], tmp_path: Path
) -> None:
    prefix = tmp_path / "run"
    command = [sys.executable, "-m", "locust", "-f", "benchmarks/locustfile.py", "--config", target["config"]]
    command += ["--headless", "--only-summary", "-u", "2", "-r", "2", "-t", "4s", "--tags", "grpc", "http"]
    command += ["--csv", str(prefix)]

    done = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LOCUST_TIMEOUT_S, check=False
    )

    assert done.returncode == 0, done.stderr[-3000:]
    rows = {(row["Type"], row["Name"]): row for row in locust_summary.read_rows(Path(f"{prefix}_stats.csv"))}
    for key in (("grpc", "Predict"), ("POST", "/api/predict")):
        assert int(rows[key]["Request Count"]) > 0, key
        assert int(rows[key]["Failure Count"]) == 0, key
    assert "Predict" in locust_summary.render(list(rows.values()))


def test_summary_prints_percentiles_and_rate_per_request_type(tmp_path: Path) -> None:
    stats = tmp_path / "x_stats.csv"
    header = ["Type", "Name", "Request Count", "Failure Count", "50%", "95%", "99%", "Requests/s", "66%"]
    with stats.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerow(["grpc", "Predict", "10", "0", "5", "9", "12", "3.14159", "6"])

    lines = locust_summary.render(locust_summary.read_rows(stats)).splitlines()

    assert lines[0].split() == ["type", "name", "requests", "failures", "p50", "ms", "p95", "ms", "p99", "ms", "req/s"]
    assert lines[1].split() == ["grpc", "Predict", "10", "0", "5", "9", "12", "3.1"]


def test_summary_refuses_a_csv_that_is_not_locust_stats(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")

    assert locust_summary.main([str(other)]) == 1
