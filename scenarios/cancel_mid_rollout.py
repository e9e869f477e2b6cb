"""The operator cancels a rollout halfway: it stops, and every device is left whole.

A fleet runs version 1. Version 2 rolls out at 20 devices a minute, and each device takes about
half a minute to load it. After 75 seconds the operator cancels the job with force. The rollout is
expected to stop notifying devices; QUEUED executions to become CANCELED; devices caught in the
middle of an install to hear of it, roll back (before the switch) or keep the new version (after
it, healthy) and report nothing, since the execution is over; and at the end every device to serve
one whole version, matching its execution (SUCCEEDED: 2; canceled or never notified: 1, or 2 when
the cancel came after its switch), with models_config.json saying the same.
"""

from __future__ import annotations

from collections import Counter

from simulators.harness.harness import Harness
from system.edge.models_config import ModelsConfigFile

NAME = "cancel-mid-rollout"
PROFILES = ("fake",)  # a paced rollout: minutes of waiting on a wall clock
VIRTUAL_CLOCK = True
DEVICES = 100


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    fleet = h.fleet(count, load_seconds=30.0)
    first = h.fleet_job(fleet, h.light_document("img-classification", "1"))
    h.run_fleet(fleet, "version 1 reaches the fleet", lambda: fleet.finished(first) and fleet.idle(), 1800)

    job = h.fleet_job(fleet, h.light_document("img-classification", "2"), rollout={"maximumPerMinute": 20})
    fleet.run_for(75)
    working = [d.thing for d in fleet.devices if d.current is not None and d.current.job_id == job]
    h.step(f"the operator cancels the job (force) with {len(working)} devices in the middle of it")
    h.world.jobs.cancel_job(job, force=True, comment="canceled by the operator mid-rollout")
    h.run_fleet(fleet, "the fleet settles", fleet.idle, 1800)

    statuses = {
        str(e["thingArn"]).rsplit("/", 1)[-1]: str(e["jobExecutionSummary"]["status"]) for e in fleet.executions(job)
    }
    h.check("the job is CANCELED", fleet.job_status(job) == "CANCELED", fleet.job_status(job))
    tally = Counter(statuses.values())
    h.step(f"executions: {dict(tally)}, never notified: {count - len(statuses)}")
    h.check("the rollout stopped: some devices were never notified", len(statuses) < count, f"{len(statuses)} notified")
    h.check(
        "no execution is left QUEUED or IN_PROGRESS",
        not (tally["QUEUED"] or tally["IN_PROGRESS"]),
        str(dict(tally)),
    )
    h.check("devices were caught in the middle", bool(working), f"{len(working)} devices")
    wrong = []
    for device in fleet.devices:
        status = statuses.get(device.thing, "never notified")
        served = device.served().get("img-classification")
        allowed = {"2"} if status == "SUCCEEDED" else {"1", "2"} if device.thing in working else {"1"}
        if served not in allowed:
            wrong.append(f"{device.thing}: {status}, serves {served}")
    h.check("every device serves a version its execution allows", not wrong, "; ".join(wrong[:5]))
    canceled_in_flight = [t for t in working if statuses.get(t) == "CANCELED"]
    silent = [
        t
        for t in canceled_in_flight
        if any(s.job_id == job and not s.report for s in fleet.device(t).journal.finished())
    ]
    h.check(
        "devices canceled mid-install wound up without reporting",
        len(silent) == len(canceled_in_flight),
        f"{len(silent)} of {len(canceled_in_flight)}",
    )
    disagree = [
        d.thing
        for d in fleet.devices
        if {m.name: m.version for m in ModelsConfigFile(d.layout.models_config).load().models} != d.served()
    ]
    h.check("models_config.json names what each device serves", not disagree, ", ".join(disagree[:5]))
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
