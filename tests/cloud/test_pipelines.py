"""Both pipelines end to end on the fake profile's cloud, then a deployment a real device installs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.cloud_profile import fake_cloud_backends
from simulators.surfaces import write_dataset
from system.cloud.edge_package import PackageReport
from system.cloud.pipeline.backends import CloudBackends
from system.cloud.pipeline.pipelines import PipelineOptions, run_pipeline
from system.cloud.pipeline.progress import Progress
from system.cloud.pipeline.runner import GateFailed, PipelineError

pytestmark = pytest.mark.slow


@pytest.fixture
def backends() -> Iterator[CloudBackends]:
    made = fake_cloud_backends()
    yield made
    made.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ksdd2")
    write_dataset(root, 160, 40, defect_rate=0.25, seed=3, size=(64, 160))
    return root


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ksdd2-small")
    write_dataset(root, 70, 20, defect_rate=0.3, seed=2, size=(64, 160))
    return root


def options(task: str, data: Path, **changes: object) -> PipelineOptions:
    base = {"task": task, "data": data, "epochs": 40, "image_size": 64, "batch_size": 16, "seed": 1}
    return PipelineOptions(**{**base, **changes})  # type: ignore[arg-type]


def test_classification_pipeline_registers_packages_and_a_rerun_is_cached(
    backends: CloudBackends, data: Path, tmp_path: Path
) -> None:
    first = run_pipeline(options("classification", data), backends, tmp_path, Progress(enabled=False))
    assert first.version == "1"
    assert not any(o.cached for o in first.outcomes.values())
    group = backends.groups["classification"]
    [registered] = backends.registry.versions(group)
    assert registered.approval == "Approved" and registered.metrics["f1"] > 0
    report = PackageReport.from_dict(
        json.loads(backends.store.get_bytes("models/img-classification/1/package-report.json"))
    )
    assert {v.framework for v in report.variants} == {"tensorflow", "tflite"}
    assert registered.model_url == f"s3://{backends.bucket}/{report.variant('tensorflow').key}"

    second = run_pipeline(options("classification", data), backends, tmp_path, Progress(enabled=False))
    cached = {name for name, outcome in second.outcomes.items() if outcome.cached}
    assert cached == {"ingest", "preprocess", "train", "evaluate"}
    assert second.version == "2" and len(backends.registry.versions(group)) == 2


def test_segmentation_pipeline_registers_a_unet(backends: CloudBackends, small_data: Path, tmp_path: Path) -> None:
    unet = options("segmentation", small_data, epochs=25, augment_copies=1)
    result = run_pipeline(unet, backends, tmp_path, Progress(enabled=False))
    evaluation = json.loads(backends.store.get_bytes(result.outcomes["evaluate"].outputs["evaluation"]))
    assert evaluation["dice"] >= 0.3 > evaluation["baseline"]["empty_mask_dice"]
    assert result.version == "1"
    assert backends.store.list_keys("models/unet/1/")


def test_a_gate_the_model_cannot_pass_registers_nothing(backends: CloudBackends, data: Path, tmp_path: Path) -> None:
    impossible = options("classification", data, epochs=2, gate={"min_anomalous_f1": 1.0})
    with pytest.raises(GateFailed) as failed:
        run_pipeline(impossible, backends, tmp_path, Progress(enabled=False))
    assert any("F1" in reason for reason in failed.value.reasons)
    assert backends.registry.versions(backends.groups["classification"]) == []
    assert backends.store.list_keys("models/") == []
    assert "evaluate" in failed.value.results  # the evaluation is kept for the operator


def test_a_corrupt_image_names_the_file_and_nothing_is_written(backends: CloudBackends, tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_dataset(root, 20, 8, defect_rate=0.3, seed=4, size=(64, 160))
    broken = sorted((root / "train").glob("*[0-9].png"))[3]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")
    with pytest.raises(PipelineError, match=broken.name):
        run_pipeline(options("classification", root), backends, tmp_path / "work", Progress(enabled=False))
    assert backends.registry.versions(backends.groups["classification"]) == []
    assert not [k for k in backends.store.list_keys("") if "img-classification/" in k or k.startswith("models/")]
