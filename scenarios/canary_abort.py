"""A canary rollout meets bad devices: the abort criterion stops it at its threshold.

A fleet runs version 1. The operator rolls out version 2 with an abort criterion: cancel the job
once 10 % of at least 5 executed devices have FAILED. One device in ten cannot load version 2
(its runtime fails the load), and one in ten is offline when the job starts. The job is expected to
be aborted (reasonCode ABORT_CRITERIA_MET) once the failures reach the threshold, with every
execution still QUEUED at that moment CANCELED (the offline devices' among them) and no new device
notified after it; the failing devices to roll back to version 1; every device to end serving a
whole version (1 or 2), never none; and the offline devices, back online, to find nothing to do.
"""

from __future__ import annotations

from collections import Counter

from simulators.fleet.runtime import RuntimeFaults
from simulators.harness.harness import Harness

NAME = "canary-abort"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)
VIRTUAL_CLOCK = True
DEVICES = 100
ABORT = {
    "criteriaList": [
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 10, "minNumberOfExecutedThings": 5}
    ]
}


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    bad = {i for i in range(count) if i % 10 == 1}  # spread through the rollout order (the group's)
    offline = {i for i in range(count) if i % 10 == 5}

    def faults(index: int) -> RuntimeFaults | None:
        return RuntimeFaults(fail_loads={"2"}) if index in bad else None

    fleet = h.fleet(count, faults=faults, load_seconds=0.5)
    first = h.fleet_job(fleet, h.light_document("img-classification", "1"))
    h.run_fleet(fleet, "version 1 reaches the fleet", lambda: fleet.finished(first) and fleet.idle(), 1800)
    h.check("every device serves version 1", fleet.served() == Counter({"img-classification 1": count}))

    away = [fleet.devices[i] for i in sorted(offline)]
    h.step(f"{len(away)} devices go offline; {len(bad)} devices cannot load version 2")
    for device in away:
        device.stop()
    rollout = {"maximumPerMinute": max(10, count // 5)}  # a minute's batch at a time
    job = h.fleet_job(fleet, h.light_document("img-classification", "2"), rollout=rollout, abort=ABORT)
    h.run_fleet(fleet, "the job ends", lambda: fleet.finished(job), 3600)

    described = h.world.cloud.plane.describe_job(job)["job"]
    details = described["jobProcessDetails"]
    h.check(
        "the job is aborted by its criterion",
        described["status"] == "CANCELED" and described.get("reasonCode") == "ABORT_CRITERIA_MET",
        f"{described['status']} {described.get('reasonCode')}: {described.get('comment', '')}",
    )
    failed, succeeded = details["numberOfFailedThings"], details["numberOfSucceededThings"]
    executed = failed + succeeded
    h.check(
        "the failures reached the threshold",
        executed >= 5 and failed * 100 >= 10 * executed,
        f"{failed} failed of {executed} executed",
    )
    online = count - len(offline)
    h.check("the rollout stopped before the whole fleet ran it", executed < online, f"{executed} of {online} online")
    statuses = {
        str(e["thingArn"]).rsplit("/", 1)[-1]: str(e["jobExecutionSummary"]["status"]) for e in fleet.executions(job)
    }
    left = Counter(s for s in statuses.values() if s in ("QUEUED", "IN_PROGRESS"))
    h.check("no execution is left QUEUED or IN_PROGRESS", not left, str(dict(left)))
    away_statuses = Counter(statuses.get(d.thing, "never notified") for d in away)
    h.check(
        "the offline devices' executions were canceled (or never created)",
        set(away_statuses) <= {"CANCELED", "never notified"} and away_statuses["CANCELED"] > 0,
        str(dict(away_statuses)),
    )
    bad_devices = [fleet.devices[i] for i in sorted(bad)]
    bad_failed = [d for d in bad_devices if statuses.get(d.thing) == "FAILED"]
    h.check(
        "the devices that failed rolled back to version 1",
        bool(bad_failed) and all(d.served() == {"img-classification": "1"} for d in bad_failed),
        f"{len(bad_failed)} failed",
    )
    mismatched = [
        d.thing
        for d in fleet.devices
        if d.alive and d.served() != {"img-classification": "2" if statuses.get(d.thing) == "SUCCEEDED" else "1"}
    ]
    h.check("each device serves what its execution says", not mismatched, ", ".join(mismatched[:5]))

    h.step("the offline devices come back")
    for device in away:
        device.start()
    h.run_fleet(
        fleet,
        "they settle",
        lambda: all(d.driver and d.driver.answers and d.current is None and not d.busy for d in away),
        600,
    )
    h.check(
        "they stay on version 1",
        all(d.served() == {"img-classification": "1"} for d in away),
        str(Counter(str(d.served()) for d in away)),
    )
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
