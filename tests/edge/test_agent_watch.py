"""The agent watch: a device whose Edge Agent restarted empty reloads its models and serves again.

Unit tests drive `AgentWatch` with a fake agent client and a hand-turned clock; the last tests use
a real device and a real agent that is stopped and replaced by a fresh one on the same socket.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from simulators.harness.world import PackageCache
from system.agent.package import read_package
from system.edge.agent_watch import AGENT_STEPS, AgentWatch
from system.edge.device_config import parse_device_config
from system.edge.image_source import Frame
from system.edge.inference import InferenceEngine
from system.edge.inference_loop import InferenceLoop
from system.edge.journal import Journal
from system.edge.layout import DeviceLayout
from system.edge.models_config import ModelEntry, ModelsConfig, ModelsConfigFile
from system.edge.ota_machine import JobState, Serving, Step
from system.edge.roster import ModelRoster, ServingModel
from system.errors import AgentUnavailableError, ConfigError, ModelNotFoundError, ResourceExhaustedError
from tests.edge.test_ota_flows import assert_consistent, deploy_and_wait, eventually
from tests.edge_world import EdgeWorld

CLASSIFIER = "img-classification"


@dataclass(frozen=True)
class Loaded:
    name: str
    url: str


class FakeAgentClient:
    """An InferenceClient over a dict of loaded models that records every call.

    Limits: `predict` answers `outputs` for a loaded model (NOT_FOUND otherwise) without running
    anything; `capture_data` is refused. `down = True` makes every call fail as an unreachable
    agent does; `fail_loads` queues errors for the next LoadModel calls; `on_load` runs inside
    LoadModel (to interleave another thread's work with a reload).
    """

    def __init__(self, outputs: dict[str, np.ndarray] | None = None) -> None:
        self.models: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.down = False
        self.fail_loads: list[Exception] = []
        self.on_load: Callable[[str], None] | None = None
        self.outputs = outputs or {}

    def _call(self, method: str, name: str = "") -> None:
        self.calls.append((method, name))
        if self.down:
            raise AgentUnavailableError("UNAVAILABLE: failed to connect to all addresses")

    def load_model(self, name: str, url: str) -> Any:
        self._call("load", name)
        if self.fail_loads:
            raise self.fail_loads.pop(0)
        if self.on_load is not None:
            self.on_load(name)
        self.models[name] = url
        return Loaded(name, url)

    def unload_model(self, name: str) -> None:
        self._call("unload", name)
        if self.models.pop(name, None) is None:
            raise ModelNotFoundError(f"NOT_FOUND: no model {name}")

    def list_models(self) -> Sequence[Any]:
        self._call("list")
        return [Loaded(name, url) for name, url in self.models.items()]

    def predict(self, name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        self._call("predict", name)
        if name not in self.models:
            raise ModelNotFoundError(f"NOT_FOUND: no model {name}")
        return dict(self.outputs)

    def capture_data(self, model_name: str, inputs: Any, outputs: Any, **options: Any) -> str:
        raise NotImplementedError

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Device:
    """The files and state an AgentWatch works on, with `CLASSIFIER` versions installed on disk."""

    layout: DeviceLayout
    config_file: ModelsConfigFile
    roster: ModelRoster
    journal: Journal
    client: FakeAgentClient
    clock: Clock

    def serving(self, version: str) -> ServingModel:
        folder = self.layout.package_dir(CLASSIFIER, version)
        return ServingModel(CLASSIFIER, version, identifier(version), folder, read_package(str(folder)).manifest)

    def watch(self, **options: Any) -> AgentWatch:
        options = {"interval": 5.0, "initial_backoff": 0.5, "max_backoff": 4.0, **options}
        return AgentWatch(
            self.client, self.config_file, self.layout, self.roster, self.journal, clock=self.clock, **options
        )

    def config_bytes(self) -> bytes:
        return self.layout.models_config.read_bytes()


def identifier(version: str) -> str:
    return f"{CLASSIFIER}-{version.replace('.', '-')}"


@pytest.fixture
def device(tmp_path: Path, packages: PackageCache) -> Device:
    """Version 1 serving (config, roster, and the agent holds it); version 2 extracted beside it."""
    layout = DeviceLayout(tmp_path / "device")
    for version in ("1", "2"):
        shutil.copytree(packages.folder(CLASSIFIER, version), layout.package_dir(CLASSIFIER, version))
    config_file = ModelsConfigFile(layout.models_config)
    config_file.save(ModelsConfig(models=(ModelEntry(CLASSIFIER, "1", identifier("1")),)))
    made = Device(layout, config_file, ModelRoster(), Journal(layout.journal), FakeAgentClient(), Clock())
    made.roster.switch(made.serving("1"))
    made.client.models[identifier("1")] = str(layout.package_dir(CLASSIFIER, "1"))
    return made


def job_at(step: Step, version: str = "2", previous: str | None = "1") -> JobState:
    return JobState(
        "job-7",
        1,
        {},
        step,
        started_at=0.0,
        model_name=CLASSIFIER,
        version=version,
        identifier=identifier(version),
        previous=None if previous is None else Serving(previous, identifier(previous)),
    )


# -- unit: AgentWatch over a fake client ------------------------------------------------------


def test_models_the_agent_lost_are_reloaded_and_the_config_and_roster_stay_as_they_were(device: Device) -> None:
    watch = device.watch()
    before, generation = device.config_bytes(), device.roster.generation
    device.client.models.clear()  # the agent restarted empty
    device.clock.t += 5.0

    assert watch.check() is True
    assert device.client.models == {identifier("1"): str(device.layout.package_dir(CLASSIFIER, "1"))}
    assert (watch.reloads, watch.models_reloaded, watch.last_error) == (1, 1, None)
    assert watch.last_reload_at is not None and watch.last_report is not None
    assert watch.last_report.loaded == [identifier("1")]
    assert device.config_bytes() == before
    assert device.roster.generation == generation  # the roster was never switched
    assert watch.snapshot() == {"reloads": 1, "last_reload_at": watch.last_reload_at, "last_error": None}


def test_a_healthy_agent_costs_one_list_per_interval_and_nothing_else(device: Device) -> None:
    watch = device.watch(interval=5.0)
    assert watch.check() is False and device.client.calls == []  # not due yet
    device.clock.t += 4.9
    assert watch.check() is False and device.client.calls == []
    device.clock.t += 0.1
    assert watch.check() is False
    assert device.client.methods() == ["list"]
    assert watch.check() is False and device.client.methods() == ["list"]  # the next one is 5 s away
    assert watch.reloads == 0


def test_a_noticed_failure_is_checked_at_once(device: Device) -> None:
    watch = device.watch(interval=60.0)
    device.client.models.clear()
    assert watch.check() is False and device.client.calls == []
    watch.notice(identifier("1"))
    assert watch.check() is True
    assert watch.reloads == 1


def test_an_unreachable_agent_is_retried_with_a_growing_backoff_and_logged_once(
    device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    watch = device.watch(interval=5.0, initial_backoff=0.5, max_backoff=4.0)
    device.client.down = True
    caplog.set_level(logging.DEBUG, logger="system.edge.agent_watch")
    attempts: list[float] = []  # seconds from the start at which a ListModels was tried
    start = device.clock.t
    while device.clock.t < start + 20.0:
        watch.notice(identifier("1"))  # every failing frame notices; notices must not defeat the backoff
        calls = len(device.client.calls)
        assert watch.check() is False
        if len(device.client.calls) > calls:
            attempts.append(device.clock.t - start)
        device.clock.t += 0.0625  # a frame every 1/16 s: exact in binary, so the gaps compare exactly
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[:4] == [0.5, 1.0, 2.0, 4.0] and set(gaps[4:]) == {4.0}, attempts
    assert watch.last_error is not None and "unreachable" in watch.last_error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]

    device.client.down = False
    device.client.models.clear()  # it came back empty
    device.clock.t += 4.0
    assert watch.check() is True
    assert watch.last_error is None and watch.reloads == 1
    assert any("holds the serving models again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("step", sorted(AGENT_STEPS), ids=str)
def test_no_reload_while_an_ota_job_loads_checks_or_switches_models(device: Device, step: Step) -> None:
    watch = device.watch()
    device.journal.save(job_at(step))
    device.client.models.clear()
    watch.notice(identifier("1"))
    assert watch.check() is False
    assert device.client.calls == []  # not even a ListModels: the OTA step owns the agent now
    device.clock.t += 0.5
    assert watch.check() is False and device.client.calls == []  # not re-checked at every frame
    device.journal.save(job_at(Step.UNLOAD_OLD))
    device.clock.t += 0.5
    assert watch.check() is True
    assert identifier("1") in device.client.models


def test_a_job_waiting_at_one_step_holds_a_reload_back_for_max_defer_only(
    device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    """The journal names the step about to run; with the broker away the job can wait there for long."""
    watch = device.watch(max_defer=30.0)
    device.journal.save(job_at(Step.HEALTH_CHECK))
    device.client.models.clear()
    start = device.clock.t
    while device.clock.t < start + 30.0:
        watch.notice(identifier("1"))
        assert watch.check() is False
        device.clock.t += 1.0
    assert device.client.calls == []
    assert watch.check() is True
    device.client.models.clear()
    device.clock.t += 5.0
    assert watch.check() is True and watch.reloads == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "too long" in r.getMessage()]
    assert len(warnings) == 1, warnings
    device.journal.save(job_at(Step.SWITCH))  # the job moved on: the next step gets its own allowance
    device.client.models.clear()
    watch.notice(identifier("1"))
    assert watch.check() is False and identifier("1") not in device.client.models


def test_a_reload_keeps_what_the_job_in_progress_loaded_and_unloads_strays(device: Device) -> None:
    """After SWITCH the config and roster name version 2; the agent lost it but holds the previous
    version (not yet unloaded by UNLOAD_OLD) and a model nobody names."""
    device.config_file.save(ModelsConfig(models=(ModelEntry(CLASSIFIER, "2", identifier("2")),)))
    device.roster.switch(device.serving("2"))
    device.journal.save(job_at(Step.UNLOAD_OLD))
    device.client.models = {identifier("1"): "kept", "stray-9": "x"}
    watch = device.watch()
    watch.notice(identifier("2"))

    assert watch.check() is True
    assert set(device.client.models) == {identifier("1"), identifier("2")}
    assert watch.last_report is not None and watch.last_report.unloaded == ["stray-9"]


def test_a_reload_racing_a_switch_never_swings_the_roster_back(device: Device) -> None:
    """The OTA worker switches to version 2 while the watch is reloading version 1: version 2 stays."""
    watch = device.watch()
    device.client.models.clear()

    def switch_meanwhile(_name: str) -> None:
        device.config_file.save(ModelsConfig(models=(ModelEntry(CLASSIFIER, "2", identifier("2")),)))
        device.roster.switch(device.serving("2"))

    device.client.on_load = switch_meanwhile
    watch.notice(identifier("1"))
    assert watch.check() is True
    served = device.roster.by_name(CLASSIFIER)
    assert served is not None and served.identifier == identifier("2")
    device.client.on_load = None
    device.clock.t += 5.0
    assert watch.check() is True  # the next check loads what the roster now says serves
    assert identifier("2") in device.client.models


def test_a_failed_reload_is_reported_and_retried_after_a_backoff(device: Device) -> None:
    watch = device.watch(initial_backoff=0.5)
    device.client.models.clear()
    device.client.fail_loads.append(ResourceExhaustedError("RESOURCE_EXHAUSTED: model budget full"))
    watch.notice(identifier("1"))
    assert watch.check() is False
    assert watch.last_error is not None and "model budget full" in watch.last_error
    assert watch.reloads == 0
    watch.notice(identifier("1"))
    assert watch.check() is False  # backing off
    device.clock.t += 0.5
    assert watch.check() is True
    assert watch.last_error is None and watch.reloads == 1


def test_a_bug_in_a_check_is_logged_and_never_raised(device: Device, caplog: pytest.LogCaptureFixture) -> None:
    watch = device.watch()

    def broken() -> Sequence[Any]:
        raise KeyError("a bug")

    device.client.list_models = broken  # type: ignore[method-assign]
    device.clock.t += 5.0
    assert watch.check() is False
    assert watch.last_error == "KeyError: 'a bug'"
    assert any(r.exc_info for r in caplog.records if r.name == "system.edge.agent_watch")


def test_no_check_without_serving_models(device: Device) -> None:
    device.roster.remove(CLASSIFIER)
    watch = device.watch()
    device.clock.t += 5.0
    assert watch.check() is False and device.client.calls == []


def test_interval_must_be_positive(device: Device) -> None:
    with pytest.raises(ValueError, match="interval"):
        device.watch(interval=0)


# -- unit: the engine reports trouble, the loop runs the watch ---------------------------------


def engine_for(device: Device, noticed: list[str]) -> InferenceEngine:
    model = device.serving("1")
    device.client.outputs = {model.manifest.outputs[0].name: np.array([[0.9, 0.1]], dtype=np.float32)}
    return InferenceEngine(device.client, device.roster, on_agent_trouble=noticed.append)


def frame() -> Frame:
    return Frame("test", Image.new("RGB", (32, 32), (120, 120, 120)))


def test_the_engine_reports_a_serving_model_missing_or_an_unreachable_agent(device: Device) -> None:
    noticed: list[str] = []
    engine = engine_for(device, noticed)
    assert engine.infer(frame()).classification is not None and noticed == []
    device.client.models.clear()
    assert engine.infer(frame()).errors and noticed == [identifier("1")]
    device.client.down = True
    assert engine.infer(frame()).errors and noticed == [identifier("1")] * 2


def test_the_engine_does_not_report_a_model_swapped_out_under_it(device: Device) -> None:
    noticed: list[str] = []
    engine = engine_for(device, noticed)
    device.client.models = {identifier("2"): "v2"}
    real_predict = device.client.predict

    def predict_while_swapping(name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        if name == identifier("1"):
            device.roster.switch(device.serving("2"))  # SWITCH then UNLOAD_OLD ran meanwhile
        return real_predict(name, inputs)

    device.client.predict = predict_while_swapping  # type: ignore[method-assign]
    result = engine.infer(frame())
    assert result.classification is not None and result.classification.model == identifier("2")
    assert noticed == []


def test_the_loop_runs_its_housekeeping_while_paused_and_survives_its_errors(device: Device) -> None:
    calls: list[int] = []
    twice = threading.Event()

    def housekeeping() -> None:
        calls.append(1)
        if len(calls) >= 3:
            twice.set()
        raise RuntimeError("a bug in housekeeping")

    engine = engine_for(device, [])
    loop = InferenceLoop(engine, _NoFrames(), rate_hz=0.0, housekeeping=housekeeping, housekeeping_interval=0.02)
    loop.start()
    try:
        assert twice.wait(5.0), "housekeeping did not run while the loop was paused"
        assert loop.running
    finally:
        assert loop.stop()


class _NoFrames:
    """An ImageSource for a paused loop: asking it for a frame is a test failure."""

    def next_frame(self) -> Frame:
        raise AssertionError("a paused loop asked for a frame")


def test_the_check_interval_is_read_from_the_device_config(tmp_path: Path) -> None:
    config = parse_device_config({"thing_name": "t", "agent": {"check_interval": 0.5}}, tmp_path)
    assert config.agent_check_interval == 0.5
    assert parse_device_config({"thing_name": "t"}, tmp_path).agent_check_interval == 5.0
    with pytest.raises(ConfigError, match="check_interval"):
        parse_device_config({"thing_name": "t", "agent": {"check_interval": 0}}, tmp_path)


# -- a real device, a real agent restarted ----------------------------------------------------


def test_a_device_reloads_its_models_after_its_agent_restarts_and_takes_the_next_job(world: EdgeWorld) -> None:
    agent = world.agent()
    device = world.start_device(agent=agent, agent_check_interval=0.5)
    assert deploy_and_wait(world, world.document(CLASSIFIER, "1"))["status"] == "SUCCEEDED"
    eventually(lambda: device.engine.count > 3 and device.engine.errors == 0, what="inference on version 1")
    config = device.layout.models_config.read_bytes()

    agent[0].stop(grace=0)  # the agent process dies
    errors = device.engine.errors
    eventually(lambda: device.engine.errors > errors + 2, timeout=5, what="inference failing without the agent")
    agent = world.restart_agent(agent)  # systemd starts a fresh, empty agent on the same socket
    eventually(lambda: device.agent_watch.reloads == 1, timeout=10, what="the models reloaded")
    seen = device.engine.count
    eventually(
        lambda: any(r.classification is not None for r in device.engine.recent(5) if r.sequence > seen),
        timeout=5,
        what="inference succeeding again",
    )
    assert device.layout.models_config.read_bytes() == config
    assert_consistent(world, device, {CLASSIFIER: "1"})
    assert device.status()["agent"]["reloads"] == 1

    assert deploy_and_wait(world, world.document(CLASSIFIER, "2"))["status"] == "SUCCEEDED"
    assert_consistent(world, device, {CLASSIFIER: "2"})
    assert device.agent_watch.reloads == 1  # the upgrade was the OTA's doing, not a reload


def test_an_agent_restart_during_a_download_loses_neither_the_model_nor_the_job(world: EdgeWorld) -> None:
    agent = world.agent()
    device = world.start_device(agent=agent, agent_check_interval=0.5)
    assert deploy_and_wait(world, world.document(CLASSIFIER, "1"))["status"] == "SUCCEEDED"
    downloading, release = threading.Event(), threading.Event()
    real_download = device.steps.download

    def slow_download(state: JobState) -> str:
        downloading.set()
        assert release.wait(30), "the test never released the download"
        return real_download(state)

    device.steps.download = slow_download  # type: ignore[method-assign]
    job = world.deploy(world.document(CLASSIFIER, "2"))
    assert downloading.wait(30)
    world.restart_agent(agent)
    eventually(lambda: device.agent_watch.reloads == 1, timeout=10, what="version 1 reloaded mid-job")
    release.set()
    assert world.wait_job(job)["status"] == "SUCCEEDED"
    assert_consistent(world, device, {CLASSIFIER: "2"})
