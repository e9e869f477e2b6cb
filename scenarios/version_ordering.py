"""Versions order as numbers, part by part: 1.9 -> 1.10 is an upgrade, 1.10 -> 1.9 is not.

The seed compared versions with float(), so "1.10" counted as older than "1.9" (seed-behaviours.md
section 6, item 19) and a release numbered 1.10 could never replace 1.9.
"""

from __future__ import annotations

from simulators.harness.harness import Harness

NAME = "version-ordering"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device()
    for version, expected in (
        ("1.9", "SUCCEEDED"),
        ("1.10", "SUCCEEDED"),
        ("1.9", "REJECTED"),
        ("1.10.1", "SUCCEEDED"),
    ):
        h.check_job(f"{version} is {expected.lower()}", h.deploy("img-classification", version), expected)
    h.check("1.10.1 serves", h.served(device) == {"img-classification": "1.10.1"}, str(h.served(device)))
    h.check_job(
        "an unorderable version (v2) is rejected",
        h.deploy("img-classification", "v2", kind="img-classification"),
        "REJECTED",
        reason_contains="cannot be ordered",
    )
