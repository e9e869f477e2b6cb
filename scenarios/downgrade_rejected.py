"""A version that is not newer than the serving one is REJECTED, with the reason, and changes nothing.

The seed marked such jobs SUCCEEDED and kept the old model silently (seed-behaviours.md section 6,
item 18). Here the device reports REJECTED before downloading anything, for a lower version and for
the same version written differently ("2.0" after "2").
"""

from __future__ import annotations

from simulators.harness.harness import Harness

NAME = "downgrade-rejected"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device()
    h.check_job("version 2 is deployed", h.deploy("img-classification", "2"), "SUCCEEDED")
    h.check_job("version 1 is rejected", h.deploy("img-classification", "1"), "REJECTED", reason_contains="not newer")
    h.check_job(
        "version 2.0 (equal to 2) is rejected",
        h.deploy("img-classification", "2.0", kind="img-classification"),
        "REJECTED",
        reason_contains="not newer",
    )
    h.check("version 2 still serves", h.served(device) == {"img-classification": "2"}, str(h.served(device)))
    h.check("nothing of version 1 was downloaded", not any(device.layout.downloads.glob("*")))
