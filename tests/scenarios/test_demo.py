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


def test_flagship_demo_trains_deploys_to_a_fleet_and_upgrades_under_load(tmp_path: Path) -> None:
    import io

    from scenarios import flagship

    printed = io.StringIO()
    anything = {"min_anomalous_f1": 0.0, "min_dice": 0.0}  # three epochs learn too little for the real gate
    report = flagship.run(
        tmp_path / "demo",
        devices=1,
        light_devices=5,
        train_images=48,
        epochs=3,
        serve=False,
        web_port=0,
        stream=printed,
        gate=anything,
    )
    for step in range(1, 7):
        assert f"[{step}/7]" in printed.getvalue()
    everyone = {"full": ["SUCCEEDED"], "light": {"SUCCEEDED": 5}}
    assert report["first_rollout"] == {"img-classification": everyone, "unet": everyone}
    assert report["upgrade"] == everyone and report["upgrade_inference_errors"] == 0
    assert all(served == {"img-classification": "2", "unet": "1"} for served in report["served"].values())
    assert report["light_served"] == {"img-classification 2": 5, "unet 1": 5}  # the pipeline's real packages
    assert json.loads((tmp_path / "demo" / "demo-report.json").read_text())["upgrade"] == report["upgrade"]
