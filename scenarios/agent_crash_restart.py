"""The Edge Agent crashes and comes back empty: the device reloads its models and serves again.

On a device the agent is a process of its own; systemd restarts it after a crash, and the new
process holds no model. Until the device noticed, every Predict failed (UNAVAILABLE while the agent
was down, NOT_FOUND after), for good. Here version 1 of the classifier serves with inference
running; the agent dies without any grace and a fresh one starts on the same socket. The device's
agent watch hears of the failing Predicts, backs off while the agent is away, and once it answers
reloads what models_config.json names, without rewriting the file. Inference resumes on the same
version, and the next upgrade by IoT job goes through as usual.
"""

from __future__ import annotations

from simulators.harness.harness import Harness
from system.edge.device import DeviceApp

NAME = "agent-crash-restart"
PROFILES = ("fake", "local")  # aws: once the device side of the aws profile lands (issue 10)
MODEL = "img-classification"


def run(h: Harness) -> None:
    agent = h.world.agent()
    device = h.start_device(agent=agent, rate_hz=10.0)
    h.check_job("version 1 is deployed", h.deploy(MODEL, "1"), "SUCCEEDED")
    h.eventually("inference runs on version 1", lambda: _verdict_from(device, "1", after=0))
    config = device.layout.models_config.read_bytes()

    h.step("the Edge Agent crashes")
    agent[0].stop(grace=0)
    errors = device.engine.errors
    h.eventually("inference fails while the agent is down", lambda: device.engine.errors > errors, timeout=10)
    h.step("systemd starts a fresh agent on the same socket; it holds no model")
    agent = h.world.restart_agent(agent)
    h.eventually("the device reloads its models", lambda: device.agent_watch.reloads == 1, timeout=20)
    resumed_after = device.engine.count
    h.eventually("inference succeeds again", lambda: _verdict_from(device, "1", after=resumed_after), timeout=10)
    h.check("the same version serves", h.served(device) == {MODEL: "1"}, str(h.served(device)))
    h.check("models_config.json is unchanged", device.layout.models_config.read_bytes() == config)
    loaded = sorted(m.name for m in agent[1].list_models())
    h.check("the agent holds exactly the configured model", loaded == [f"{MODEL}-1"], str(loaded))

    h.check_job("an upgrade to version 2 afterwards succeeds", h.deploy(MODEL, "2"), "SUCCEEDED")
    h.eventually("inference runs on version 2", lambda: _verdict_from(device, "2", after=0))
    h.check("the upgrade needed no reload", device.agent_watch.reloads == 1, str(device.agent_watch.reloads))


def _verdict_from(device: DeviceApp, version: str, *, after: int) -> bool:
    """Whether a result newer than sequence `after` has a verdict of `version` and no error."""
    return any(
        r.classification is not None and r.classification.version == version and not r.errors
        for r in device.engine.recent(5)
        if r.sequence > after
    )
