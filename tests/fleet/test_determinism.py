"""The same rollout on two fresh fake clouds gives the same per-device histories, to the microsecond.

Everything runs on the cloud's VirtualClock and every random draw comes from the broker's seeded
generator, so nothing but the script decides what happens. The rollout is made eventful on
purpose: a rate-limited rollout, lost replies (random), a load failure, a failed health check, and
a device killed mid-job. This module starts its own clouds (moto allows one at a time per process).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from simulators.clock import VirtualClock
from simulators.cloud import SimulatedCloud
from simulators.fleet.packages import light_archive
from simulators.fleet.runtime import RuntimeFaults
from system.edge.ota_machine import JobState, Step
from tests.fleet.fleet_kit import MODEL, FleetKit, kill_and_restart, when_step

DEVICES = 12
Transition = tuple[float, str, str, int]  # clock time, step, outcome, interruptions


def faults(index: int) -> RuntimeFaults | None:
    if index == 3:
        return RuntimeFaults(fail_loads={"1"})
    if index == 5:
        return RuntimeFaults(bad_outputs={"1"})
    return None


def rollout(root: Path, package: bytes) -> tuple[dict[int, list[Transition]], Counter[str], int]:
    """One run on a fresh cloud: each device's journaled transitions, the final counts, the retries."""
    with SimulatedCloud("fake", clock=VirtualClock(), project="determinism") as cloud:
        kit = FleetKit(cloud, root)
        try:
            fleet = kit.fleet(DEVICES, prefix="same", faults=faults)
            index = {device.thing: n for n, device in enumerate(fleet.devices)}
            transitions: dict[int, list[Transition]] = {n: [] for n in range(DEVICES)}

            def record(thing: str, state: JobState) -> None:
                outcome = "" if state.outcome is None else str(state.outcome)
                transitions[index[thing]].append((kit.clock.now(), str(state.step), outcome, state.interruptions))

            fleet.listeners.append(record)
            assert cloud.broker is not None
            cloud.broker.faults.add(topic_filter="$aws/things/+/jobs/+/update/accepted", drop_rate=0.3)
            document = kit.publish(package, "light/determinism.tar.gz", MODEL, "1")
            job_id = kit.deploy(fleet, document, job_id="same-job", rollout={"maximumPerMinute": 4})
            victim = fleet.devices[7]

            def kill(_state: JobState) -> None:
                kill_and_restart(kit.clock, victim, 20.0)

            when_step(fleet, victim, job_id, Step.LOAD, kill)
            kit.run_job(fleet, job_id, max_seconds=3600)
            retries = sum(device.driver.retries for device in fleet.devices if device.driver is not None)
            return transitions, fleet.counts(job_id), retries
        finally:
            kit.close()


def test_the_same_rollout_twice_gives_the_same_transitions(tmp_path: Path) -> None:
    package = light_archive(tmp_path / "package", MODEL, "1")
    first = rollout(tmp_path / "first", package)
    second = rollout(tmp_path / "second", package)
    transitions, counts, retries = first
    assert counts == {"SUCCEEDED": DEVICES - 2, "FAILED": 2}
    assert retries > 0, "no reply was lost: the run did not exercise the seeded faults"
    assert any(record[1] == "load" and record[3] == 1 for record in transitions[7]), "device 7 was not restarted"
    starts = {records[0][0] for records in transitions.values()}
    assert len({int(start // 60) for start in starts}) >= 3, "the rollout did not spread over minutes"
    assert second == first
