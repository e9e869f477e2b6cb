"""A network partition cuts devices off in the middle of their download; they resume, not restart.

A fleet upgrades over a slow link (the package takes a minute to arrive). Twenty seconds into the
downloads, half the devices lose the network for forty seconds: their MQTT connection drops and
their HTTPS transfer from S3 breaks. Each is expected to keep the bytes it has, wait for the link,
fetch only the rest with a ranged GET, verify the package's sha256 and finish the upgrade; the
other half to finish untouched. Every device ends on the new version with one download attempt
more than the untouched ones, and none starts its download over.
"""

from __future__ import annotations

from collections import Counter

from simulators.fleet.light_device import LightDevice
from simulators.fleet.light_driver import StepTiming
from simulators.harness.harness import Harness
from system.edge.ota_machine import Step

NAME = "network-partition-during-download"
PROFILES = ("fake",)  # the partition is the simulated broker's and the simulated link's
VIRTUAL_CLOCK = True
DEVICES = 20


def run(h: Harness) -> None:
    count = h.fleet_size(DEVICES)
    fleet = h.fleet(count, timing=StepTiming(bandwidth=12.0))  # ~700-byte package: about a minute
    document = h.light_document("img-classification", "1")
    h.step(f"package of {document['size']} bytes at 12 bytes/s")
    job = h.fleet_job(fleet, document)
    cut_off = fleet.devices[::2]
    fleet.run_until(lambda: all(d.current is not None and d.current.step is Step.DOWNLOAD for d in cut_off), 60)
    h.step(f"{len(cut_off)} devices lose the network in 20 s, for 40 s")
    fleet.partition(cut_off, start_in=20, duration=40)
    h.run_fleet(fleet, "the job completes", lambda: fleet.finished(job) and fleet.idle(), 3600)

    tally = Counter(str(e["jobExecutionSummary"]["status"]) for e in fleet.executions(job))
    h.check("every device succeeded", tally == Counter({"SUCCEEDED": count}), str(dict(tally)))
    h.check(
        "every device serves version 1",
        fleet.served() == Counter({"img-classification 1": count}),
        str(dict(fleet.served())),
    )
    untouched = [d for d in fleet.devices if d not in cut_off]
    h.check(
        "the partitioned devices' transfers broke",
        all(d.link.cuts >= 1 for d in cut_off),
        str(Counter(d.link.cuts for d in cut_off)),
    )
    h.check(
        "they resumed with a ranged GET instead of starting over",
        all(d.link.resumes == 1 for d in cut_off),
        str(Counter(d.link.resumes for d in cut_off)),
    )
    h.check(
        "the others downloaded in one go",
        all(d.link.cuts == 0 and d.link.resumes == 0 for d in untouched),
        f"{len(untouched)} devices",
    )

    def details(device: LightDevice, step: Step) -> list[str]:
        finished = [s for s in device.journal.finished() if s.job_id == job]
        return [r.detail for s in finished for r in s.history if r.step == str(step)]

    h.check(
        "their download took one more attempt",
        all(any("after 2 attempts" in x for x in details(d, Step.DOWNLOAD)) for d in cut_off),
        details(cut_off[0], Step.DOWNLOAD)[0] if cut_off and details(cut_off[0], Step.DOWNLOAD) else "",
    )
    h.check(
        "the resumed packages passed the sha256 check",
        all(any("sha256 matches" in x for x in details(d, Step.VERIFY)) for d in cut_off),
    )
    h.check("no device driver hit a bug", fleet.errors() == 0, f"{fleet.errors()} errors")
