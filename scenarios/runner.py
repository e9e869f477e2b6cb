"""Find and run scenarios: each is a module of this package with `NAME`, a docstring and `run(h)`.

A run builds the profile's world (a simulated cloud and its seeded thing; on `local`, the moto
server and a TLS Mosquitto of the cloud's own, or a plain broker at `mqtt_url`), calls `run(h)` with
a `Harness`, stops everything, and writes the report (JSON and Markdown) to `out`. Every scenario
declares the profiles it supports in `PROFILES`; others are refused by name, before anything starts.
A scenario with `VIRTUAL_CLOCK = True` (the fleet ones) gets a cloud on a `VirtualClock` on the fake
profile; on `local` time is the wall's.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import tempfile
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import scenarios
from simulators.clock import VirtualClock
from simulators.cloud import BrokerAddress, SimulatedCloud
from simulators.harness.harness import Harness
from simulators.harness.report import ScenarioReport
from simulators.harness.world import PackageCache, World
from system.config import PROFILES
from system.errors import ConfigError


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str  # the docstring's first line
    description: str
    profiles: tuple[str, ...]
    module: ModuleType


def discover() -> dict[str, Scenario]:
    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(scenarios.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"scenarios.{info.name}")
        name = getattr(module, "NAME", None)
        if not isinstance(name, str) or not callable(getattr(module, "run", None)):
            continue  # the runner itself, commands such as demo
        doc = (module.__doc__ or "").strip()
        profiles = declared_profiles(module)
        found[name] = Scenario(name, doc.splitlines()[0] if doc else "", doc, profiles, module)
    return found


def declared_profiles(module: ModuleType) -> tuple[str, ...]:
    """The module's `PROFILES`; ConfigError when it declares none or names an unknown profile."""
    profiles = getattr(module, "PROFILES", None)
    if not isinstance(profiles, tuple) or not profiles or not set(profiles) <= set(PROFILES):
        raise ConfigError(f"scenario module {module.__name__} must declare PROFILES, a tuple of {', '.join(PROFILES)}")
    return profiles


def run_scenario(
    name: str,
    *,
    profile: str = "fake",
    seed: int = 0,
    out: Path | None = None,
    mqtt_url: str | None = None,
    packages: PackageCache | None = None,
    stream: TextIO | None = None,
    devices: int | None = None,
) -> ScenarioReport:
    catalog = discover()
    if name not in catalog:
        raise ConfigError(f"no scenario {name!r}; `edgesim scenario list` shows them: {', '.join(catalog)}")
    scenario = catalog[name]
    if profile not in scenario.profiles:
        raise ConfigError(f"scenario {name} runs on {', '.join(scenario.profiles)}, not {profile}")
    if devices is not None and not hasattr(scenario.module, "DEVICES"):
        fleets = ", ".join(n for n, s in catalog.items() if hasattr(s.module, "DEVICES"))
        raise ConfigError(f"scenario {name} has no fleet to size; --devices applies to the fleet scenarios: {fleets}")
    stream = stream or sys.stderr
    report = ScenarioReport(name, profile, seed, scenario.description)
    options: dict[str, Any] = {"project": f"sc-{seed}"}
    if profile == "fake" and getattr(scenario.module, "VIRTUAL_CLOCK", False):
        # Fleet scenarios: the broker, the jobs plane and every light device on one simulated clock,
        # so an hour-long rollout runs in seconds and the same seed gives the same run.
        options["clock"] = VirtualClock()
    if mqtt_url is not None and profile != "local":
        raise ConfigError("mqtt_url (--mqtt-url) is for the local profile")
    if mqtt_url is not None and BrokerAddress.parse(mqtt_url).tls:
        raise ConfigError(
            "--mqtt-url takes a plain broker of yours (debugging); without it the scenario runs its own "
            "Mosquitto with mutual TLS"
        )
    if profile == "local":
        # Without mqtt_url the cloud starts a TLS Mosquitto of its own (per-thing certificates and ACL).
        options["mqtt_url"] = mqtt_url
        # moto server state outlives a run in this process (and a given broker may be shared): a
        # project of its own keeps an earlier run's jobs and objects away. fake starts from empty.
        options["project"] = f"sc-{seed}-{uuid.uuid4().hex[:6]}"
    stream.write(f"scenario {name} ({profile}, seed {seed}): {scenario.summary}\n")
    with tempfile.TemporaryDirectory(prefix="es-") as short:
        cache = packages or PackageCache(Path(short) / "packages")
        try:
            with SimulatedCloud(profile, **options) as cloud:
                world = World(cloud, cache, Path(short), profile, job_prefix=f"{name}-s{seed}")
                try:
                    scenario.module.run(Harness(world, report, stream=stream, devices=devices))
                finally:
                    world.close()
        except Exception as exc:  # noqa: BLE001 - a crashing scenario is a failed run with its traceback
            report.error = f"{type(exc).__name__}: {exc}"
            stream.write(traceback.format_exc())
    report.finished = report.started + report.now()
    if out is not None:
        stream.write(f"report: {report.write(out).json}\n")
    stream.write(f"scenario {name}: {'PASSED' if report.passed else 'FAILED'}\n")
    return report
