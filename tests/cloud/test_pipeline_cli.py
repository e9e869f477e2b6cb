"""`edgesim pipeline run` and `deploy` as a user calls them: exit codes, messages, reports on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.cloud_profile import cloud_backends
from system.cli import main
from tests.cloud.moto_server_cloud import moto_server_cloud

pytestmark = pytest.mark.slow


def test_run_on_the_fake_profile_reports_a_gate_failure_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    args = ["pipeline", "run", "classification", "--synthetic", "40", "--epochs", "1", "--image-size", "32"]
    assert main([*args, "--profile", "fake", "--out", str(out)]) == 1
    assert "gate failed: nothing registered" in capsys.readouterr().err
    assert (out / "evaluate-evaluation.json").exists() and (out / "gate-gate.json").exists()
    assert json.loads((out / "gate-gate.json").read_text())["passed"] is False


def test_run_then_deploy_on_the_local_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with moto_server_cloud(tmp_path) as (cloud, cloud_file):
        backends = cloud_backends(cloud)
        gate = tmp_path / "gate.json"
        gate.write_text(json.dumps({"min_anomalous_f1": 0.0}))
        common = ["--profile", "local", "--cloud", str(cloud_file)]
        run = ["pipeline", "run", "classification", "--synthetic", "40", "--epochs", "2", "--image-size", "32"]
        assert main([*run, "--gate", str(gate), "--out", str(tmp_path / "out"), *common]) == 0
        printed = capsys.readouterr().out
        assert "registered img-classification version 1 (Approved)" in printed
        assert f"s3://{backends.bucket}/models/img-classification/1/img-classification-1.tar.gz" in printed

        rollout = tmp_path / "deploy.json"
        rollout.write_text(json.dumps({"variant": "tflite", "rollout": {"maximumPerMinute": 10}}))
        group = ["--group", cloud.project.thing_group_name]  # a name: resolved to its ARN
        assert main(["pipeline", "deploy", "img-classification", "1", "--config", str(rollout), *group, *common]) == 0
        job_id = capsys.readouterr().out.split("created IoT job ", 1)[1].split()[0]
        document = json.loads(cloud.client("iot").get_job_document(jobId=job_id)["document"])
        assert document["model_version"] == "1" and document["model_package_key"].endswith("-tflite.tar.gz")
        assert len(document["sha256"]) == 64
        targets = cloud.client("iot").describe_job(jobId=job_id)["job"]["targets"]
        assert targets == [cloud.project.thing_group_arn]


def test_run_refuses_both_or_neither_data_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pipeline", "run", "classification"])
    assert "one of the arguments --data --synthetic is required" in capsys.readouterr().err
