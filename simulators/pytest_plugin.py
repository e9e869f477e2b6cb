"""edgesim as a pytest plugin (entry point `pytest11`), for teams that test their own edge code.

    def test_my_upgrade(edgesim_world, edgesim_device):
        job = edgesim_world.deploy(edgesim_world.document("img-classification", "1"))
        assert edgesim_world.wait_job(job)["status"] == "SUCCEEDED"
        assert edgesim_device.latest_result() is not None

Fixtures (each cleaned up after its test):
- `edgesim_cloud`: a started `SimulatedCloud` (moto, the IoT Jobs data plane, a broker) with a
  project of its own; `--edgesim-profile local` puts it on the moto server and a Mosquitto of its
  own (mutual TLS, per-thing certificates and ACL), or on the broker of `--edgesim-mqtt-url`.
- `edgesim_world`: a `World` on that cloud: small real model packages, job documents, IoT jobs,
  devices to start, kill and restart (`simulators/harness/world.py`).
- `edgesim_device`: one started device (a real Edge Agent and the edge app) of the seeded thing.
- `edgesim_faults`: `kill_at(device, step)` and `crash(device)` (`simulators/harness/faults.py`).
- `edgesim_fleet`: a factory, `edgesim_fleet(count, faults=..., **LightSettings)`, of fleets of light
  devices (`simulators/fleet/`) in a thing group of their own (`fleet.group_arn`); light packages
  come from `edgesim_world.light_document(model, version)`.
- `edgesim_clock`: a `VirtualClock` (fake profile only). A test that asks for it gets a cloud on it:
  the broker, the jobs data plane and the fleets' devices then move only when the test advances
  it (`fleet.run_until(condition, max_seconds)`), so an hour of rollout runs in seconds.

    def test_canary(edgesim_world, edgesim_fleet, edgesim_clock):
        fleet = edgesim_fleet(50)
        job = edgesim_world.deploy(edgesim_world.light_document("img-classification", "1"),
                                   targets=[fleet.group_arn], rollout={"maximumPerMinute": 10})
        assert fleet.run_until(lambda: fleet.finished(job), max_seconds=3600)

Nothing heavy is imported until a fixture is used, so the plugin costs other test suites nothing.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("edgesim")
    group.addoption("--edgesim-profile", choices=("fake", "local"), default="fake", help="edgesim fixtures' profile")
    group.addoption(
        "--edgesim-mqtt-url",
        default=None,
        help="local profile: a plain mqtt:// broker of yours (default: the cloud's own TLS Mosquitto)",
    )


@pytest.fixture(scope="session")
def edgesim_packages(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Model packages exported once per session (`PackageCache`)."""
    from simulators.harness.world import PackageCache

    return PackageCache(tmp_path_factory.mktemp("edgesim-packages"))


@pytest.fixture
def edgesim_clock(request: pytest.FixtureRequest) -> Any:
    """A virtual clock for the test's cloud (requesting it puts `edgesim_cloud` on it)."""
    if request.config.getoption("--edgesim-profile") != "fake":
        pytest.skip("the virtual clock needs the fake profile (a real broker runs in wall time)")
    from simulators.clock import VirtualClock

    return VirtualClock()


@pytest.fixture
def edgesim_cloud(request: pytest.FixtureRequest) -> Iterator[Any]:
    from simulators.cloud import SimulatedCloud

    profile = request.config.getoption("--edgesim-profile")
    options: dict[str, Any] = {"project": f"pt-{uuid.uuid4().hex[:8]}"}
    if profile == "local":
        options["mqtt_url"] = request.config.getoption("--edgesim-mqtt-url")
    if "edgesim_clock" in request.fixturenames:
        options["clock"] = request.getfixturevalue("edgesim_clock")
    with SimulatedCloud(profile, **options) as cloud:
        yield cloud


@pytest.fixture
def edgesim_world(edgesim_cloud: Any, edgesim_packages: Any) -> Iterator[Any]:
    from simulators.harness.world import World

    with tempfile.TemporaryDirectory(prefix="es-") as short:  # short: agents' unix sockets live here
        world = World(edgesim_cloud, edgesim_packages, Path(short), edgesim_cloud.profile)
        try:
            yield world
        finally:
            world.close()


@pytest.fixture
def edgesim_device(edgesim_world: Any) -> Any:
    """A started device of the seeded thing (stopped with the world)."""
    return edgesim_world.start_device()


@pytest.fixture
def edgesim_fleet(edgesim_world: Any) -> Callable[..., Any]:
    """A factory of started fleets of light devices (stopped with the world)."""
    from simulators.fleet.fleet import Fleet
    from simulators.fleet.light_device import LightSettings

    made: list[Any] = []

    def make(count: int, *, faults: Callable[[int], Any] | None = None, **settings: Any) -> Any:
        n = len(made)
        fleet = Fleet(
            edgesim_world.cloud, edgesim_world.scratch(f"fleet{n}"), settings=LightSettings(**settings), prefix=f"f{n}"
        )
        edgesim_world.closers.append(fleet.close)
        fleet.provision(count, faults=faults)
        made.append(fleet)
        return fleet

    return make


@pytest.fixture
def edgesim_faults() -> ModuleType:
    from simulators.harness import faults

    return faults
