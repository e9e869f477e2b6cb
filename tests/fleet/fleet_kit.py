"""Fleet test support: one simulated cloud per test module on a VirtualClock, fleets made per test.

moto is process-global, so a module shares one `SimulatedCloud("fake")` (the `cloud` fixture); every
test makes its own fleet (its own thing group and thing names, `FleetKit.fleet`) and its own job
ids, so tests never see each other's devices or jobs. Fleets are closed at the end of the test
that made them. The helpers below read back what a device did: its folder, runtime and traffic.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.clock import VirtualClock
from simulators.cloud import SimulatedCloud
from simulators.fleet.fleet import Fleet
from simulators.fleet.light_device import LightDevice, LightSettings
from simulators.fleet.light_driver import StepTiming
from simulators.fleet.packages import light_archive
from simulators.fleet.runtime import RuntimeFaults
from simulators.iot_jobs.records import TERMINAL
from system.edge.models_config import ModelsConfigFile
from system.edge.ota_machine import JobState, Step
from system.ports import JobSpec

MODEL = "img-classification"


@pytest.fixture(scope="module")
def cloud() -> Iterator[SimulatedCloud]:
    """The module's fake cloud; its clock is virtual, so nothing moves unless a test advances it."""
    with SimulatedCloud("fake", clock=VirtualClock(), project=f"fleet-{uuid.uuid4().hex[:8]}") as started:
        yield started


@pytest.fixture
def kit(cloud: SimulatedCloud, tmp_path: Path) -> Iterator[FleetKit]:
    """Factory of fleets, packages and jobs on the module's cloud; its fleets stop after the test."""
    made = FleetKit(cloud, tmp_path)
    try:
        yield made
    finally:
        made.close()


class FleetKit:
    """Makes fleets, packages and jobs on one cloud; closes the fleets it made."""

    _serial = itertools.count()

    def __init__(self, cloud: SimulatedCloud, root: Path) -> None:
        self.cloud = cloud
        self.root = root
        self.fleets: list[Fleet] = []
        self._documents: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def clock(self) -> VirtualClock:
        clock = self.cloud.clock
        assert isinstance(clock, VirtualClock)
        return clock

    def fleet(
        self,
        count: int,
        *,
        settings: LightSettings | None = None,
        faults: Callable[[int], RuntimeFaults | None] | None = None,
        prefix: str | None = None,
    ) -> Fleet:
        """`count` started devices in a thing group of their own (`prefix`: default a unique one)."""
        prefix = prefix or f"lt{next(self._serial)}{uuid.uuid4().hex[:6]}"
        made = Fleet(self.cloud, self.root / prefix, settings=settings, prefix=prefix)
        self.fleets.append(made)
        made.provision(count, faults=faults)
        return made

    def document(self, version: str, model: str = MODEL) -> dict[str, Any]:
        """A job document for `model` at `version`; its light package is uploaded once."""
        known = self._documents.get((model, version))
        if known is None:
            data = light_archive(self.root / "packages", model, version)
            known = self.publish(data, f"light/{model}-{version}-{uuid.uuid4().hex[:6]}.tar.gz", model, version)
            self._documents[(model, version)] = known
        return dict(known)

    def publish(self, data: bytes, key: str, model: str, version: str) -> dict[str, Any]:
        """Upload a package archive to the project bucket; returns the job document for it."""
        self.cloud.object_store().put_bytes(key, data)
        return {
            "type": "new_model",
            "model_name": model,
            "model_version": version,
            "model_package_bucket": self.cloud.project.bucket,
            "model_package_key": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }

    def deploy(self, fleet: Fleet, document: dict[str, Any], *, job_id: str | None = None, **spec: Any) -> str:
        """Create a job for the whole fleet (SNAPSHOT, through boto3 on moto); returns its id.

        `spec`: the other `JobSpec` fields (rollout, timeout, retry...)."""
        job_id = job_id or f"job-{uuid.uuid4().hex[:10]}"
        self.cloud.jobs_control().create_job(
            JobSpec(job_id=job_id, targets=[fleet.group_arn], document=document, **spec)
        )
        return job_id

    def run_job(self, fleet: Fleet, job_id: str, max_seconds: float = 900.0) -> None:
        """Run until every device of the fleet has finished `job_id` (terminal in the cloud, idle)."""
        done = fleet.run_until(lambda: _all_terminal(fleet, job_id) and fleet.idle(), max_seconds)
        assert done, f"{job_id} not finished within {max_seconds} s: {fleet.counts(job_id)}, {fleet.summary()}"

    def install(self, fleet: Fleet, version: str) -> None:
        """Deploy `version` to the whole fleet and check it succeeded everywhere."""
        job_id = self.deploy(fleet, self.document(version))
        self.run_job(fleet, job_id)
        assert fleet.counts(job_id) == {"SUCCEEDED": len(fleet.devices)}

    def close(self) -> None:
        for fleet in self.fleets:
            fleet.close()


def _all_terminal(fleet: Fleet, job_id: str) -> bool:
    executions = fleet.executions(job_id)
    return len(executions) >= len(fleet.devices) and all(
        str(e["jobExecutionSummary"]["status"]) in TERMINAL for e in executions
    )


# -- what a device holds, read back from its folder ------------------------------------------------


def configured(device: LightDevice) -> dict[str, str]:
    """models_config.json's models (name -> version), parsed the way start-up parses it."""
    return {entry.name: entry.version for entry in ModelsConfigFile(device.layout.models_config).load().models}


def loaded_versions(device: LightDevice, model: str = MODEL) -> list[str]:
    """The versions of `model` the device's runtime holds."""
    return sorted(m.manifest.version for m in device.runtime.list_models() if m.manifest.name == model)


def history_steps(state: JobState) -> list[str]:
    return [record.step for record in state.history]


def finished(device: LightDevice, job_id: str) -> list[JobState]:
    return [state for state in device.journal.finished() if state.job_id == job_id]


def when_step(
    fleet: Fleet, device: LightDevice, job_id: str, step: Step, action: Callable[[JobState], None]
) -> list[JobState]:
    """Run `action` once, the first time `device` journals `step` of `job_id`; returns the state it saw.

    It runs right after the state is on disk and before the step's I/O: where a power cut at that
    step leaves the device.
    """
    seen: list[JobState] = []

    def listener(thing: str, state: JobState) -> None:
        if thing == device.thing and state.job_id == job_id and state.step is step and not seen:
            seen.append(state)
            action(state)

    fleet.listeners.append(listener)
    return seen


def terminal_updates(cloud: SimulatedCloud, device: LightDevice, job_id: str) -> list[dict[str, Any]]:
    """The terminal-status updates the device published for `job_id` (from the broker's record)."""
    assert cloud.broker is not None
    topic = f"$aws/things/{device.thing}/jobs/{job_id}/update"
    sent = [json.loads(event.payload) for event in cloud.broker.record.published() if event.topic == topic]
    return [payload for payload in sent if payload.get("status") != "IN_PROGRESS"]


def slow_download(size: int, seconds: float) -> LightSettings:
    """Settings under which a `size`-byte package takes `seconds` to download."""
    return LightSettings(timing=StepTiming(bandwidth=size / seconds))


def assert_serves_only(device: LightDevice, version: str, model: str = MODEL) -> None:
    assert device.served() == {model: version}
    assert configured(device) == {model: version}  # models_config.json parses and names it
    assert loaded_versions(device, model) == [version]  # exactly one version in the runtime


def kill_and_restart(
    clock: VirtualClock, device: LightDevice, down_for: float, *, then: Callable[[], None] | None = None
) -> list[float]:
    """Kill `device` now and start it again `down_for` clock seconds later (then call `then`).

    Returns a list that receives the restart's clock time when it happens.
    """
    restarts: list[float] = []

    def start() -> None:
        restarts.append(clock.now())
        device.start()
        if then is not None:
            then()

    device.kill()
    clock.call_later(down_for, start)
    return restarts
