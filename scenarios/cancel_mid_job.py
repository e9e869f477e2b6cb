"""A job canceled by the operator while a device is downloading is wound up: the old model stays.

The operator cancels an upgrade (CancelJob with force) while the device is still downloading the
package. The device hears the job list change, finds the job canceled, rolls back what it had done,
reports nothing (the execution is terminal), and keeps serving the old version.
"""

from __future__ import annotations

import threading

from simulators.harness.harness import Harness
from system.edge.ota_machine import JobState

NAME = "cancel-mid-job"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device()
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    downloading, release = threading.Event(), threading.Event()
    real_download = device.steps.download

    def slow_download(state: JobState) -> str:
        downloading.set()
        release.wait(30)  # a large package on a slow link
        return real_download(state)

    device.steps.download = slow_download  # type: ignore[method-assign]
    job = h.deploy("img-classification", "2")
    h.check("the device starts downloading", downloading.wait(30))
    h.step("the operator cancels the job")
    h.world.jobs.cancel_job(job, force=True, comment="canceled by the operator")
    release.set()
    h.eventually("the device winds the job up", lambda: device.journal.current is None)
    status = h.world.jobs.describe_job_execution(job, h.world.thing)["status"]
    h.check("the execution stays CANCELED", status == "CANCELED", status)
    finished = device.jobs()[0]
    h.check("the device records why", "CANCELED" in finished["reason"], finished["reason"])
    h.check("version 1 still serves", h.served(device) == {"img-classification": "1"}, str(h.served(device)))
    h.check("no files of version 2 remain", not device.layout.package_dir("img-classification", "2").exists())
