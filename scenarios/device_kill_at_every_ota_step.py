"""A device killed at every OTA step restarts consistent and finishes the job.

For each step from download to unloading the old model, an upgrade starts, the device dies at that
step (as under SIGKILL: no shutdown work), and a new device process starts on the same folder with
a fresh agent. At once it serves a working model (the old one, or the new one if the switch had
been persisted), its models_config.json matches what the agent holds, and the job resumes and
ends SUCCEEDED. The seed lost OTA-installed versions on any unclean exit and never resumed a job.
"""

from __future__ import annotations

from simulators.harness.faults import crash, kill_at, quiet_kills
from simulators.harness.harness import Harness
from system.edge.ota_machine import Step

NAME = "device-kill-at-every-ota-step"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)
STEPS = (Step.DOWNLOAD, Step.VERIFY, Step.EXTRACT, Step.LOAD, Step.HEALTH_CHECK, Step.SWITCH, Step.UNLOAD_OLD)


def run(h: Harness) -> None:
    quiet_kills()
    device = h.start_device()
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    for number, step in enumerate(STEPS, start=2):
        version = str(number)
        kill_at(device, step)
        job = h.deploy("img-classification", version)
        crash(device)
        h.step(f"killed at {step}; restarting")
        device = h.start_device()
        # What start-up restored, before the resumed job could change anything:
        restored = sorted(device.startup.loaded + device.startup.adopted) if device.startup else []
        expected = f"img-classification-{version if step is Step.UNLOAD_OLD else number - 1}"
        h.check(f"after a kill at {step} the restart serves a working model", restored == [expected], str(restored))
        h.check_job(f"the job killed at {step} resumes and succeeds", job, "SUCCEEDED")
        config = {m.identifier for m in device.config_file.load().models}
        loaded = {m.name for m in device.backends.client.list_models()}
        h.check(f"after {step}: config matches the agent", config == loaded, f"{sorted(config)} vs {sorted(loaded)}")
