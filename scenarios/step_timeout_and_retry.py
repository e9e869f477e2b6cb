"""Devices stuck in a step time out, and the job's retry config brings them through on a second try.

A fleet upgrades; one device in ten loads the new version very slowly the first time (a cold
cache: 15 minutes), longer than the 10-minute step timeout each device sets when it reports
IN_PROGRESS. IoT Jobs is expected to time those executions out (TIMED_OUT), the job's retry
config (TIMED_OUT, up to 2 retries; AWS retries timeouts only for a job with a timeoutConfig, here
60 minutes in progress) to queue a second execution for each, and the slow devices,
once their load returns, to find the first execution ended in the cloud, roll it back without
reporting, and take the retry, which loads at normal speed and succeeds. Every device ends on the
new version and the job completes.
"""

from __future__ import annotations

from collections import Counter

from simulators.fleet.runtime import RuntimeFaults
from simulators.harness.harness import Harness

NAME = "step-timeout-and-retry"
PROFILES = ("fake",)  # a 10-minute step timeout: minutes of waiting on a wall clock
VIRTUAL_CLOCK = True
DEVICES = 50
RETRY = {"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 2}]}
TIMEOUT = {"inProgressTimeoutInMinutes": 60}


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    slow = {i for i in range(count) if i % 10 == 3}

    def faults(index: int) -> RuntimeFaults | None:
        return RuntimeFaults(slow_first_loads={"2": 15 * 60.0}) if index in slow else None

    fleet = h.fleet(count, faults=faults, step_timeout_minutes=10)
    first = h.fleet_job(fleet, h.light_document("img-classification", "1"))
    h.run_fleet(fleet, "version 1 reaches the fleet", lambda: fleet.finished(first) and fleet.idle(), 1800)
    h.step(f"{len(slow)} devices will load version 2 slowly the first time (15 min > the 10 min step timeout)")
    # AWS retries TIMED_OUT executions only for a job with a timeoutConfig; an hour bounds each run.
    job = h.fleet_job(fleet, h.light_document("img-classification", "2"), retry=RETRY, timeout=TIMEOUT)
    h.run_fleet(fleet, "the job completes", lambda: fleet.finished(job) and fleet.idle(), 3 * 3600)

    plane = h.world.cloud.plane

    def history(thing: str) -> list[tuple[int, str]]:
        """Every execution of the job on `thing` (listings show only a thing's newest)."""
        latest = plane.describe_job_execution(job, thing)["execution"]
        numbers = range(1, int(latest["executionNumber"]) + 1)
        return [(n, str(plane.describe_job_execution(job, thing, n)["execution"]["status"])) for n in numbers]

    slow_things = {fleet.devices[i].thing for i in slow}
    histories = {d.thing: history(d.thing) for d in fleet.devices}
    slow_history = Counter(str(histories[t]) for t in slow_things)
    h.step(f"executions of the slow devices: {dict(slow_history)}")
    h.check(
        "each slow device timed out once, then succeeded on the retry",
        all(histories[t] == [(1, "TIMED_OUT"), (2, "SUCCEEDED")] for t in slow_things),
        str(dict(slow_history)),
    )
    fast = [d.thing for d in fleet.devices if d.thing not in slow_things]
    h.check(
        "every other device succeeded at once",
        all(histories[t] == [(1, "SUCCEEDED")] for t in fast),
        str(Counter(str(histories[t]) for t in fast)),
    )
    wound_up = [
        d.thing
        for d in fleet.devices
        if d.thing in slow_things
        and any(s.job_id == job and s.execution_number == 1 and not s.report for s in d.journal.finished())
    ]
    h.check(
        "the slow devices wound the timed-out execution up without reporting it",
        len(wound_up) == len(slow_things),
        f"{len(wound_up)} of {len(slow_things)}",
    )
    h.check(
        "every device serves version 2",
        fleet.served() == Counter({"img-classification 2": count}),
        str(dict(fleet.served())),
    )
    h.check("the job completed", fleet.job_status(job) == "COMPLETED", fleet.job_status(job))
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
