"""Edge-app fixtures (tests/edge, tests/browser): `simulators/harness/world.py`'s World per test."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.cloud import SimulatedCloud
from simulators.harness.world import TERMINAL, PackageCache, World, tar_folder
from simulators.mosquitto import find_mosquitto
from tests.mqtt_fixtures import NO_MOSQUITTO

EdgeWorld = World  # the name the edge tests know it by
__all__ = ["TERMINAL", "EdgeWorld", "PackageCache", "packages", "tar_folder", "world"]


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> PackageCache:
    return PackageCache(tmp_path_factory.mktemp("edge-packages"))


@pytest.fixture(params=["fake"])
def world(request: pytest.FixtureRequest, packages: PackageCache, unique_name: Callable[[str], str]) -> Iterator[World]:
    """The fake profile by default; tests parametrize `world` indirectly with "local" for the moto server and the
    cloud's own TLS Mosquitto (device configs take `world.cloud.device_mqtt_config(thing)`)."""
    profile = request.param
    options: dict[str, Any] = {"project": unique_name("edge")}
    if profile == "local" and find_mosquitto() is None:
        pytest.skip(NO_MOSQUITTO)  # the local cloud starts a TLS Mosquitto of its own
    with tempfile.TemporaryDirectory(prefix="es-") as short, SimulatedCloud(profile, **options) as cloud:
        made = World(cloud, packages, Path(short), profile)
        try:
            yield made
        finally:
            made.close()
