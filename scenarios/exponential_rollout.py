"""An exponential rollout to 1,000 devices obeys its rate, minute by minute, on the virtual clock.

The operator upgrades a fleet of light devices (the device's OTA code on a simulated model runtime)
with a job whose rollout starts at 10 devices a minute and doubles each time 10 more devices have
succeeded, up to 200 a minute. The job is expected to reach every device, never to notify more
devices in a minute than the rate allows at that point, to start at the base rate and to climb to
the maximum; every device ends on the new version. On the fake profile the whole rollout runs on
the virtual clock (an hour of fleet time in seconds); `--devices N` changes the fleet size.
"""

from __future__ import annotations

import math
from collections import Counter

from simulators.harness.harness import Harness

NAME = "exponential-rollout-1000"
PROFILES = ("fake",)  # minutes of rollout: on a wall clock that is minutes of waiting
VIRTUAL_CLOCK = True
DEVICES = 1000
BASE, FACTOR, STEP, MAXIMUM = 10, 2.0, 10, 200


def allowed_rate(succeeded: int) -> int:
    """The rate the rollout config allows once `succeeded` devices have succeeded (AWS: exponentialRate)."""
    rate = float(BASE)
    for _ in range(succeeded // STEP):
        if rate >= MAXIMUM:
            break
        rate *= FACTOR
    return min(MAXIMUM, math.floor(rate))


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    fleet = h.fleet(count)
    rollout = {
        "maximumPerMinute": MAXIMUM,
        "exponentialRate": {
            "baseRatePerMinute": BASE,
            "incrementFactor": FACTOR,
            "rateIncreaseCriteria": {"numberOfSucceededThings": STEP},
        },
    }
    created = int(fleet.clock.now())
    job = h.fleet_job(fleet, h.light_document("img-classification", "2"), rollout=rollout)
    h.run_fleet(fleet, "the rollout reaches every device and ends", lambda: fleet.finished(job), 6 * 3600)

    executions = fleet.executions(job)
    statuses = Counter(str(e["jobExecutionSummary"]["status"]) for e in executions)
    h.check("every device succeeded", statuses == Counter({"SUCCEEDED": count}), str(dict(statuses)))
    h.check(
        "every device serves version 2",
        fleet.served() == Counter({"img-classification 2": count}),
        str(dict(fleet.served())),
    )

    queued = sorted(int(e["jobExecutionSummary"]["queuedAt"].timestamp()) - created for e in executions)
    finished = sorted(int(e["jobExecutionSummary"]["lastUpdatedAt"].timestamp()) - created for e in executions)
    per_minute = Counter(moment // 60 for moment in queued)
    minutes = range(max(per_minute) + 1) if per_minute else range(0)
    over = []
    for minute in minutes:
        # Rates only rise with successes, so the successes by the END of the minute bound it from above.
        succeeded_by_end = sum(1 for moment in finished if moment < (minute + 1) * 60)
        if per_minute[minute] > allowed_rate(succeeded_by_end):
            over.append(f"minute {minute}: {per_minute[minute]} > {allowed_rate(succeeded_by_end)}")
    counts = [per_minute[m] for m in minutes]
    h.step(f"devices notified per minute: {counts}")
    h.check("no minute exceeds the rate the config allows", not over, "; ".join(over) or f"{len(counts)} minutes")
    h.check("the first minute runs at the base rate", bool(counts) and counts[0] == min(BASE, count), str(counts[:1]))
    if count >= 2 * MAXIMUM:
        h.check("the rate climbs to the maximum", max(counts, default=0) == MAXIMUM, f"peak {max(counts, default=0)}")
    least = math.ceil(count / MAXIMUM) - 1
    h.check(
        "the rollout is paced, not all at once",
        len(counts) - 1 >= least,
        f"{len(counts)} minutes for {count} devices at most {MAXIMUM} a minute",
    )
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
