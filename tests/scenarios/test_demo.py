"""`edgesim demo` (what `make demo` runs) works end to end, on a small configuration."""

from __future__ import annotations

import json
from pathlib import Path

from scenarios.demo import run


def test_demo_trains_packages_serves_predicts_and_captures(tmp_path: Path, capsys) -> None:
    report = run(tmp_path / "demo", epochs=1, train_images=40, seed=3)
    printed = capsys.readouterr().out
    for step in range(1, 8):
        assert f"[{step}/7]" in printed
    assert report["inference"]["max_abs_diff_savedmodel"] <= 1e-5
    assert report["inference"]["max_abs_diff_tflite"] <= 1e-4
    assert set(report["inference"]["latency"]) == {"direct", "agent_byte_data", "agent_shared_memory", "agent_tflite"}
    assert report["capture"]["statuses"] == ["SUCCESS"] * 5
    assert report["capture"]["batches"]
    assert json.loads((tmp_path / "demo" / "demo-report.json").read_text()) == report
