"""SimulatedRuntime: loads light packages, fails as told, and answers what the health check reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.fleet.packages import light_package
from simulators.fleet.runtime import RuntimeFaults, SimulatedRuntime
from system.agent.package import read_package
from system.edge.health import HealthCheckError, HealthCheckSettings, check_model
from system.errors import ModelAlreadyLoadedError, ModelNotFoundError, PackageRejectedError, RuntimeFailureError


@pytest.fixture
def packages(tmp_path: Path) -> dict[str, Path]:
    return {version: light_package(tmp_path / f"ic-{version}", "img-classification", version) for version in ("1", "2")}


def test_load_list_and_unload(packages: dict[str, Path]) -> None:
    runtime = SimulatedRuntime()
    model = runtime.load_model("img-classification-1", str(packages["1"]))
    assert (model.name, model.manifest.name, model.manifest.version) == (
        "img-classification-1",
        "img-classification",
        "1",
    )
    runtime.load_model("img-classification-2", str(packages["2"]))
    assert sorted(m.name for m in runtime.list_models()) == ["img-classification-1", "img-classification-2"]
    with pytest.raises(ModelAlreadyLoadedError):
        runtime.load_model("img-classification-1", str(packages["1"]))
    runtime.unload_model("img-classification-1")
    assert [m.name for m in runtime.list_models()] == ["img-classification-2"]
    with pytest.raises(ModelNotFoundError):
        runtime.unload_model("img-classification-1")
    assert runtime.loads == 3  # attempts, the refused one included


def test_a_package_whose_files_changed_is_refused(packages: dict[str, Path]) -> None:
    (packages["1"] / "model.tflite").write_bytes(b"tampered")
    with pytest.raises(PackageRejectedError, match="checksum"):
        SimulatedRuntime().load_model("img-classification-1", str(packages["1"]))


def test_fail_loads_refuses_only_that_version(packages: dict[str, Path]) -> None:
    runtime = SimulatedRuntime(faults=RuntimeFaults(fail_loads={"2"}))
    runtime.load_model("img-classification-1", str(packages["1"]))
    with pytest.raises(RuntimeFailureError):
        runtime.load_model("img-classification-2", str(packages["2"]))
    assert [m.name for m in runtime.list_models()] == ["img-classification-1"]


def test_outputs_have_the_declared_shapes_and_pass_the_health_check(packages: dict[str, Path]) -> None:
    runtime = SimulatedRuntime()
    runtime.load_model("img-classification-1", str(packages["1"]))
    manifest = read_package(str(packages["1"])).manifest
    outputs = runtime.predict("img-classification-1", {})
    assert outputs["probabilities"].shape == (1, 2) and outputs["probabilities"].dtype == np.float32
    assert check_model(runtime, "img-classification-1", manifest, packages["1"], HealthCheckSettings())
    with pytest.raises(ModelNotFoundError):
        runtime.predict("img-classification-2", {})


def test_bad_outputs_answer_nan_so_the_health_check_fails(packages: dict[str, Path]) -> None:
    runtime = SimulatedRuntime(faults=RuntimeFaults(bad_outputs={"2"}))
    for version in ("1", "2"):
        runtime.load_model(f"img-classification-{version}", str(packages[version]))
    assert np.isnan(runtime.predict("img-classification-2", {})["probabilities"]).all()
    manifest = read_package(str(packages["2"])).manifest
    with pytest.raises(HealthCheckError, match="non-finite"):
        check_model(runtime, "img-classification-2", manifest, packages["2"], HealthCheckSettings())
    healthy = read_package(str(packages["1"])).manifest
    check_model(runtime, "img-classification-1", healthy, packages["1"], HealthCheckSettings())


def test_slow_first_loads_apply_once_then_the_default() -> None:
    runtime = SimulatedRuntime(load_seconds=2.0, faults=RuntimeFaults(slow_first_loads={"2": 300.0}))
    assert runtime.load_time("1") == 2.0
    assert runtime.load_time("2") == 300.0
    assert runtime.load_time("2") == 2.0


def test_crash_forgets_every_model(packages: dict[str, Path]) -> None:
    runtime = SimulatedRuntime()
    runtime.load_model("img-classification-1", str(packages["1"]))
    runtime.crash()
    assert runtime.list_models() == []
    assert runtime.crashes == 1
    runtime.load_model("img-classification-1", str(packages["1"]))  # loads again after the restart
    assert len(runtime.list_models()) == 1


def test_capture_is_refused() -> None:
    with pytest.raises(RuntimeFailureError):
        SimulatedRuntime().capture_data("img-classification-1", {}, {})
