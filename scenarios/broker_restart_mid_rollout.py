"""The broker restarts in the middle of a rollout: devices reconnect, retry, and finish once each.

A fleet upgrades in a paced rollout (50 devices a minute). Seventy seconds in, the MQTT broker
restarts and stays down for twenty seconds: every connection drops, requests in flight get no
reply, notifications sent meanwhile are lost (the devices' sessions are clean). Devices are
expected to reconnect with backoff, send again what got no answer, ask for pending jobs on
reconnecting (notifications are only hints), and finish; the job to complete with every device
SUCCEEDED, each having installed the new version exactly once, none left stuck.
"""

from __future__ import annotations

from collections import Counter

from simulators.harness.harness import Harness

NAME = "broker-restart-mid-rollout"
PROFILES = ("fake",)  # restarting the broker is the simulated broker's fault control
VIRTUAL_CLOCK = True
DEVICES = 100


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    fleet = h.fleet(count, load_seconds=10.0)
    broker = h.world.cloud.broker
    assert broker is not None
    job = h.fleet_job(fleet, h.light_document("img-classification", "1"), rollout={"maximumPerMinute": 50})
    fleet.run_for(70)
    working = sum(1 for d in fleet.devices if d.current is not None)
    h.step(f"the broker restarts ({working} devices in the middle of a job), down for 20 s")
    broker.restart(downtime=20)
    h.check("every device lost its connection", not any(d.bus and d.bus.connected for d in fleet.devices))
    h.run_fleet(fleet, "the job completes", lambda: fleet.finished(job) and fleet.idle(), 3600)

    tally = Counter(str(e["jobExecutionSummary"]["status"]) for e in fleet.executions(job))
    h.check("every device succeeded", tally == Counter({"SUCCEEDED": count}), str(dict(tally)))
    h.check("the job completed", fleet.job_status(job) == "COMPLETED", fleet.job_status(job))
    loads = Counter(d.runtime.loads for d in fleet.devices)
    h.check("each device installed the version exactly once", loads == Counter({1: count}), str(dict(loads)))
    retries = sum(d.driver.retries for d in fleet.devices if d.driver is not None)
    h.check("requests that got no answer were sent again", retries > 0, f"{retries} retries")
    h.check("every device is connected again", all(d.bus and d.bus.connected for d in fleet.devices))
    h.check(
        "every device serves version 1",
        fleet.served() == Counter({"img-classification 1": count}),
        str(dict(fleet.served())),
    )
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
