"""`edgesim pipeline definition`: a SageMaker Pipelines definition built by the SDK, offline against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.cloud_profile import fake_cloud_backends
from system.cli import main
from system.cloud.pipeline.backends import CloudBackends, build_cloud_backends
from system.cloud.pipeline.definition import pipeline_definition
from tests.cloud.moto_server_cloud import moto_server_cloud

ROLE = "arn:aws:iam::123456789012:role/edgesim-sagemaker"


@pytest.fixture(scope="module")
def fake() -> Iterator[CloudBackends]:
    backends = fake_cloud_backends()
    yield backends
    backends.close()


def definition(backends: CloudBackends, task: str) -> dict[str, Any]:
    return pipeline_definition(
        task,
        backends.session,
        bucket=backends.bucket,
        role_arn=ROLE,
        group=backends.groups[task],
        endpoint_url=backends.endpoint_url,
    )


@pytest.mark.parametrize(
    ("task", "metric", "gate"), [("classification", "f1", "MinAnomalousF1"), ("segmentation", "dice", "MinDice")]
)
def test_definition_has_the_pipeline_steps_and_gates_on_the_right_metric(
    fake: CloudBackends, task: str, metric: str, gate: str
) -> None:
    document = definition(fake, task)
    assert document["Version"] == "2020-12-01"
    steps = {step["Name"]: step for step in document["Steps"]}
    assert list(steps) == ["Preprocess", "Train", "Evaluate", "Gate"]
    assert (steps["Preprocess"]["Type"], steps["Train"]["Type"], steps["Gate"]["Type"]) == (
        "Processing",
        "Training",
        "Condition",
    )
    [condition] = steps["Gate"]["Arguments"]["Conditions"]
    assert condition["Type"] == "GreaterThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == metric  # never accuracy (data is ~89 % normal)
    assert condition["RightValue"] == {"Get": f"Parameters.{gate}"}
    registered = [s for s in steps["Gate"]["Arguments"]["IfSteps"] if s["Type"] == "RegisterModel"]
    assert registered and registered[0]["Arguments"]["ModelPackageGroupName"] == fake.groups[task]
    assert [s["Type"] for s in steps["Gate"]["Arguments"]["ElseSteps"]] == ["Fail"]
    assert {p["Name"] for p in document["Parameters"]} >= {"InputData", "Epochs", gate, "ApprovalStatus"}
    assert any(k.endswith("preprocess.py") for k in fake.store.list_keys(f"edgesim-{task}/"))  # scripts in moto S3


def test_definition_through_the_cli_against_a_moto_server(tmp_path: Path) -> None:
    with moto_server_cloud(tmp_path) as (_, cloud_file):
        out = tmp_path / "segmentation.json"
        assert (
            main(
                [
                    "pipeline",
                    "definition",
                    "segmentation",
                    "--profile",
                    "local",
                    "--cloud",
                    str(cloud_file),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        document = json.loads(out.read_text())
        assert [s["Name"] for s in document["Steps"]] == ["Preprocess", "Train", "Evaluate", "Gate"]
        local = build_cloud_backends("local", cloud_file=cloud_file)
        assert any(
            k.endswith("train.py") or k.endswith("sourcedir.tar.gz")
            for k in local.store.list_keys("edgesim-segmentation/")
        )
