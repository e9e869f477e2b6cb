"""A fraction of inferences is captured through the agent and lands in S3 in the Edge Manager layout.

The device captures every frame (capture fraction 1) through CaptureData; the agent batches the
records and uploads them to `<prefix>/<fleet>/<model>/YYYY/MM/DD/HH/` in the project bucket.
"""

from __future__ import annotations

import json
import re

from simulators.harness.harness import Harness

NAME = "data-capture-to-s3"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)
PREFIX = "edge-agent-inference-data-capture/line-1/img-classification-1/"


def run(h: Harness) -> None:
    device = h.start_device(agent=h.world.agent(capture_to_s3=True), capture_fraction=1.0)
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    h.eventually("inferences are captured", lambda: device.engine.captures >= 3)

    def records() -> list[str]:
        return [k for k in h.world.store.list_keys(PREFIX) if k.endswith(".jsonl")]

    if not h.eventually("capture records reach S3", lambda: bool(records())):
        return
    key = records()[0]
    h.check(
        "the key follows the Edge Manager layout",
        bool(re.match(rf"{PREFIX}\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/", key)),
        key,
    )
    record = json.loads(h.world.store.get_bytes(key).splitlines()[0])
    fields = set(record.get("eventData", record))
    h.check(
        "a record has inputs and outputs", {"deviceFleetInputs", "deviceFleetOutputs"} <= fields, str(sorted(fields))
    )
