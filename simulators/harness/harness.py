"""The facade a scenario's `run(h)` uses: the world's cloud and devices, named checks, narration.

A scenario reads like its story: `h.step("deploy version 2")`, `job = h.deploy("unet", "2")`,
`h.check_job("upgrade succeeds", job, "SUCCEEDED")`. Checks are recorded in the report, never
raised, so one failed check does not hide the others. Steps only a fake can do (fault injection)
ask `h.fake_only(reason)` first; elsewhere they are skipped with the reason printed and reported.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from simulators.fleet.fleet import Fleet
from simulators.fleet.light_device import LightSettings
from simulators.fleet.progress import Progress
from simulators.fleet.runtime import RuntimeFaults
from simulators.harness.report import ScenarioReport
from simulators.harness.world import World
from system.edge.device import DeviceApp
from system.edge.ota_machine import JobState


class Harness:
    def __init__(
        self, world: World, report: ScenarioReport, *, stream: TextIO | None = None, devices: int | None = None
    ) -> None:
        """`devices`: the fleet size asked for on the command line (`--devices`), if any."""
        self.world = world
        self.report = report
        self.rng = np.random.default_rng(report.seed)
        self.stream = stream or sys.stderr
        self.devices: list[DeviceApp] = []
        self.requested_devices = devices
        self.fleets: list[Fleet] = []

    @property
    def profile(self) -> str:
        return self.world.profile

    # -- narration and checks ------------------------------------------------------------------

    def step(self, text: str) -> None:
        self.stream.write(f"  [{self.report.now():7.2f} s] {text}\n")
        self.stream.flush()

    def check(self, name: str, passed: bool, detail: str = "") -> bool:
        self.report.add_check(name, bool(passed), detail)
        mark = "ok" if passed else "FAILED"
        self.stream.write(
            f"  [{self.report.now():7.2f} s]   check {name}: {mark}{' (' + detail + ')' if detail else ''}\n"
        )
        return bool(passed)

    def fake_only(self, what: str) -> bool:
        """True on the fake profile; elsewhere the step is skipped, saying so in the report."""
        if self.profile == "fake":
            return True
        note = f"skipped on {self.profile}: {what} needs the fake profile's fault injection"
        self.report.notes.append(note)
        self.step(note)
        return False

    def eventually(
        self,
        name: str,
        condition: Callable[[], bool],
        timeout: float = 30.0,
        *,
        detail: Callable[[], str] | None = None,
    ) -> bool:
        """Check that `condition` becomes true within `timeout` seconds; `detail()` says what was seen instead."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                seen = f"; {detail()}" if detail is not None else ""
                return self.check(name, False, f"not within {timeout:.0f} s{seen}")
            time.sleep(0.05)
        return self.check(name, True)

    # -- cloud ---------------------------------------------------------------------------------

    def deploy(self, model: str, version: str, **document_fields: Any) -> str:
        """Upload the package of `model` (or `kind=`) at `version` and create the job for the thing."""
        job_id = self.world.deploy(self.world.document(model, version, **document_fields))
        self.step(f"job {job_id}: {model} {version}")
        return job_id

    def check_job(self, name: str, job_id: str, expected: str, *, reason_contains: str = "") -> dict[str, Any]:
        execution = self.world.wait_job(job_id)
        status = str(execution["status"])
        details = (execution.get("statusDetails") or {}).get("detailsMap", {})
        reason = str(details.get("reason", ""))
        passed = status == expected and reason_contains in reason
        self.check(name, passed, f"{status}" + (f": {reason}" if reason else ""))
        return execution

    # -- devices -------------------------------------------------------------------------------

    def start_device(self, **overrides: Any) -> DeviceApp:
        device = self.world.start_device(**overrides)
        thing = device.config.thing_name

        def record(state: JobState) -> None:
            self.report.add_transition(thing, state.job_id, str(state.step), state.outcome and str(state.outcome))

        device.job_listeners.append(record)
        self.devices.append(device)
        return device

    # -- fleets of light devices ---------------------------------------------------------------

    def fleet_size(self, default: int) -> int:
        """The scenario's fleet size: `--devices` when given, else the scenario's own default."""
        return self.requested_devices or default

    def fleet(
        self, count: int, *, faults: Callable[[int], RuntimeFaults | None] | None = None, **settings: Any
    ) -> Fleet:
        """`count` light devices in a thing group of their own, started; their OTA transitions go to
        the report, and the report's times follow the fleet's clock (virtual on the fake profile)."""
        n = len(self.fleets)
        fleet = Fleet(
            self.world.cloud,
            self.world.scratch(f"fleet{n}"),
            settings=LightSettings(**settings),
            prefix=f"{self.report.scenario[:20]}-f{n}",
            progress=Progress(self.report.now, self.stream),
        )
        self.world.closers.append(fleet.close)
        fleet.listeners.append(
            lambda thing, state: self.report.add_transition(
                thing, state.job_id, str(state.step), state.outcome and str(state.outcome)
            )
        )
        self.report.use_clock(fleet.clock.now)
        self.step(f"provisioning {count} light devices (things in group {fleet.group})")
        fleet.provision(count, faults=faults)
        self.fleets.append(fleet)
        return fleet

    def light_document(self, model: str, version: str, **fields: Any) -> dict[str, Any]:
        """Upload a light package of `model` at `version` and return its job document."""
        return self.world.light_document(model, version, **fields)

    def fleet_job(self, fleet: Fleet, document: dict[str, Any], **configs: Any) -> str:
        """A job for the fleet's group; `configs` are JobSpec's (rollout, abort, timeout, retry...)."""
        job_id = self.world.deploy(document, targets=[fleet.group_arn], **configs)
        self.step(
            f"job {job_id} for {len(fleet.devices)} devices: {document['model_name']} {document['model_version']}"
        )
        return job_id

    def run_fleet(self, fleet: Fleet, name: str, condition: Callable[[], bool], max_seconds: float) -> bool:
        """Check that `condition` becomes true within `max_seconds` of fleet time."""
        started = fleet.clock.now()
        done = fleet.run_until(condition, max_seconds)
        took = fleet.clock.now() - started
        return self.check(
            name, done, f"after {took:.0f} s of fleet time" if done else f"not within {max_seconds:.0f} s"
        )

    def served(self, device: DeviceApp) -> dict[str, str]:
        """name -> version of what the device serves."""
        return {m.name: m.version for m in device.roster.all()}
