"""Every scenario passes on the fake profile, the main ones on local, and a seed reproduces its report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scenarios.runner import discover, run_scenario
from simulators.harness.world import PackageCache
from simulators.mosquitto import find_mosquitto
from system.cli import main
from tests.mqtt_fixtures import NO_MOSQUITTO

pytestmark = pytest.mark.slow
LOCAL = {"first-deployment": None, "version-upgrade-under-load": None, "canary-abort": 20}  # name -> --devices
# Fleet scenarios run with small fleets here (their defaults, except the 1,000-device rollout: the
# benchmark times that one); 400 still climbs to the rollout's maximum rate.
DEVICES = {"exponential-rollout-1000": 400}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> PackageCache:
    return PackageCache(tmp_path_factory.mktemp("scenario-packages"))


@pytest.mark.parametrize("name", sorted(discover()))
def test_scenario_passes_on_fake(name: str, packages: PackageCache, tmp_path: Path) -> None:
    output = io.StringIO()
    report = run_scenario(
        name, profile="fake", out=tmp_path, packages=packages, stream=output, devices=DEVICES.get(name)
    )
    assert report.passed, output.getvalue()
    written = json.loads((tmp_path / f"{name}.json").read_text())
    assert written["passed"] and written["checks"] and all(c["passed"] for c in written["checks"])
    assert (tmp_path / f"{name}.md").read_text().startswith(f"# Scenario {name}: PASSED")
    assert (tmp_path / f"{name}.png").is_file() == bool(written["transitions"])


@pytest.mark.parametrize("name", LOCAL)
def test_scenario_passes_on_local(name: str, packages: PackageCache) -> None:
    """On the local profile's default broker: a Mosquitto of the cloud's own, mutual TLS, per-thing ACL."""
    if find_mosquitto() is None:
        pytest.skip(NO_MOSQUITTO)
    output = io.StringIO()
    report = run_scenario(name, profile="local", packages=packages, stream=output, devices=LOCAL[name])
    assert report.passed, output.getvalue()


def test_the_same_seed_gives_the_same_report(packages: PackageCache) -> None:
    first = run_scenario("downgrade-rejected", seed=7, packages=packages, stream=io.StringIO())
    second = run_scenario("downgrade-rejected", seed=7, packages=packages, stream=io.StringIO())
    assert first.passed and first.canonical() == second.canonical()
    assert first.transitions  # the per-device OTA steps are part of what is compared


def test_a_fleet_scenario_is_reproducible(packages: PackageCache) -> None:
    """Light devices on the virtual clock: the same seed, the same transitions device by device."""
    first = run_scenario("canary-abort", seed=3, packages=packages, stream=io.StringIO(), devices=30)
    second = run_scenario("canary-abort", seed=3, packages=packages, stream=io.StringIO(), devices=30)
    assert first.passed and first.canonical() == second.canonical()
    assert len({t.device for t in first.transitions}) == 30


def test_fleet_size_comes_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scenario", "run", "canary-abort", "--devices", "12", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "canary-abort.json").read_text())
    assert len({t["device"] for t in report["transitions"]}) == 12
    assert report["time"] == "virtual clock"
    with pytest.raises(SystemExit) as refused:
        main(["scenario", "run", "canary-abort", "--devices", "0"])
    assert refused.value.code == 2
    assert "--devices: must be at least 1" in capsys.readouterr().err
    assert main(["scenario", "run", "first-deployment", "--devices", "5"]) == 2
    assert "has no fleet to size" in capsys.readouterr().err


def test_cli_lists_scenarios_and_refuses_an_unknown_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in discover())
    assert main(["scenario", "run", "no-such-scenario"]) == 2
    assert "no scenario 'no-such-scenario'" in capsys.readouterr().err
