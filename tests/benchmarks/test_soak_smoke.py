"""benchmarks/soak.py at a tiny size: the whole rig runs (agent and app processes, a Mosquitto it
restarts, upgrades by IoT job), and the device keeps its promise even in 20 seconds: no failed Predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.soak import main
from simulators.mosquitto import find_mosquitto


def test_a_short_soak_runs_every_part_and_fails_no_predict(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("the mosquitto binary is not installed")
    out = tmp_path / "soak.json"
    code = main(["--minutes", "0.35", "--rate", "5", "--upgrade-every", "8", "--disconnect-every", "6",
                 "--out", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    assert result["upgrades"] and result["disconnects"] and result["predicts"] > 50
    assert result["failed"] == [], result["failed"][:3]
    assert {"agent", "device"} <= set(result["samples"][-1])
    assert code == (0 if result["passed"] else 1)
