"""Upgrades under continuous inference fail no inference: the swap happens between two Predicts.

The device classifies camera frames at 20 per second while versions 2 and 3 are deployed. The new
model loads beside the old one, passes its health check, takes over in one step, and only then is
the old one unloaded: no frame goes unclassified and none errs.
"""

from __future__ import annotations

from simulators.harness.harness import Harness

NAME = "version-upgrade-under-load"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device(rate_hz=20.0)
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    h.eventually("inference runs", lambda: device.engine.count > 10)
    start = device.engine.count
    for version in ("2", "3"):
        h.check_job(f"upgrade to {version} succeeds", h.deploy("img-classification", version), "SUCCEEDED")
    h.eventually("inference runs on version 3", lambda: _latest_version(device) == "3")
    h.check("inferences during the upgrades", device.engine.count > start, f"{device.engine.count - start} frames")
    h.check("no inference failed", device.engine.errors + device.loop.errors == 0)
    served = {m.name for m in device.backends.client.list_models()}
    h.check("only version 3 is loaded in the agent", served == {"img-classification-3"}, str(sorted(served)))


def _latest_version(device: object) -> str | None:
    result = device.latest_result()  # type: ignore[attr-defined]
    return None if result is None or result.classification is None else str(result.classification.version)
