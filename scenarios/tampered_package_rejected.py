"""A package whose bytes do not match the job's sha256 fails verification and never loads.

The archive in S3 is replaced after the job document was written (a tampered or corrupted
upload). The device downloads it, finds the digest differs, and reports FAILED with both digests;
the serving model is untouched and nothing of the bad package stays on disk.
"""

from __future__ import annotations

import hashlib

from simulators.harness.harness import Harness

NAME = "tampered-package-rejected"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)


def run(h: Harness) -> None:
    device = h.start_device()
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    genuine = h.world.document("img-classification", "2")
    tampered = bytearray(h.world.store.get_bytes(genuine["model_package_key"]))
    tampered[len(tampered) // 2] ^= 0xFF
    h.world.store.put_bytes(genuine["model_package_key"], bytes(tampered))
    h.check("the stored archive no longer matches", hashlib.sha256(tampered).hexdigest() != genuine["sha256"])
    job = h.world.deploy(genuine)
    h.check_job("the tampered package fails", job, "FAILED", reason_contains="sha256 mismatch")
    h.check("version 1 still serves", h.served(device) == {"img-classification": "1"}, str(h.served(device)))
    h.check("no files of version 2 remain", not device.layout.package_dir("img-classification", "2").exists())
