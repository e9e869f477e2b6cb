"""A model that loads but answers NaN fails its health check; the old model serves throughout.

The seed swapped models without checking anything and marked the job SUCCEEDED before loading it.
Here the new version is loaded beside the old one, given a golden input, found to output NaN,
unloaded and deleted; the job reports FAILED with the reason, and the inference loop, running all
along, never fails and never sees the bad model.
"""

from __future__ import annotations

from simulators.harness.harness import Harness

NAME = "bad-model-rolls-back"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device(rate_hz=10.0)
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    h.eventually("inference runs on version 1", lambda: device.engine.count > 5)
    before = device.latest_result()
    errors = device.engine.errors + device.loop.errors
    job = h.deploy("img-classification", "2", kind="broken")
    h.check_job("the broken version fails its health check", job, "FAILED", reason_contains="non-finite")
    count = device.engine.count
    h.eventually("inference goes on", lambda: device.engine.count > count + 5)
    during = [r for r in device.engine.recent(100) if before is not None and r.sequence > before.sequence]
    versions = {r.classification.version for r in during if r.classification is not None}
    h.check("every verdict came from version 1", versions == {"1"}, str(sorted(versions)))
    h.check("no inference failed", device.engine.errors + device.loop.errors == errors)
    h.check("version 1 still serves", h.served(device) == {"img-classification": "1"}, str(h.served(device)))
