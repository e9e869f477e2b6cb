"""`edgesim device run` as its own process on the local profile (Mosquitto + moto server):
SIGTERM stops it cleanly, and after a SIGKILL in the middle of an OTA job the next start finishes
the job with the config matching the agent."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.edge_fixtures import write_images
from tests.edge_world import EdgeWorld

pytestmark = pytest.mark.parametrize("world", ["local"], indirect=True)


class DeviceProcess:
    """One `edgesim device run` process; `url` is its web UI once it has started."""

    started: ClassVar[list[subprocess.Popen[str]]] = []  # every process launched, for clean-up

    def __init__(
        self,
        config: Path,
        profile: str = "local",
        env_changes: dict[str, str | None] | None = None,
        process_group: int | None = None,
    ) -> None:
        """`env_changes` sets variables of the device's environment, or removes those given as None;
        `process_group` puts the process in that group (a kill point `@group` then takes both down)."""
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "EDGESIM_PROFILE": profile,
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
        for name, value in (env_changes or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        command = [sys.executable, "-m", "system.cli", "--log-format", "text", "device", "run", "--config", str(config)]
        command += ["--profile", profile]  # the subcommand's own flag (EDGESIM_PROFILE says the same)
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, process_group=process_group
        )
        DeviceProcess.started.append(self.process)
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait_for_url(timeout=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            self.lines.put(line)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if "web UI: " in line:
                return line.rsplit("web UI: ", 1)[1].strip()
        raise AssertionError("the device did not start:\n" + "".join(self.output))

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url.rstrip("/") + path, timeout=5) as response:
            return json.loads(response.read())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture(autouse=True)
def no_leftover_devices() -> Iterator[None]:
    """Kill every device process a test started and did not stop (a failed assertion skips stop())."""
    yield
    while DeviceProcess.started:
        process = DeviceProcess.started.pop()
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.fixture
def device_config(world: EdgeWorld) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="es-") as short:
        root = Path(short)
        write_images(root / "images", 6)
        config = {
            "thing_name": world.thing,
            "root": "device",
            "mqtt": world.cloud.device_mqtt_config(world.thing),
            "object_store": {"endpoint_url": world.cloud.endpoint_url},
            "inference": {"source": {"type": "folder", "path": "images"}, "rate_hz": 10},
            "telemetry": {"flush_interval": 0.5},
            "web": {"port": 0},
        }
        path = root / "device.json"
        path.write_text(json.dumps(config))
        yield path


def consistent(device: DeviceProcess, root: Path) -> dict[str, str]:
    """name -> version, after checking models_config.json and the agent (through the API) agree."""
    config = json.loads((root / "models_config.json").read_text())
    served = {m["name"]: m["version"] for m in device.get("/api/models")["models"]}
    assert {m["name"]: m["version"] for m in config["models"]} == served
    return served


def test_sigterm_stops_the_device_cleanly_and_a_restart_serves_the_same_models(
    world: EdgeWorld, device_config: Path
) -> None:
    device = DeviceProcess(device_config)
    assert world.wait_job(world.deploy(world.document("img-classification", "1")))["status"] == "SUCCEEDED"
    assert device.get("/healthz")["status"] == "ok"
    assert device.stop(signal.SIGTERM) == 0
    again = DeviceProcess(device_config)
    try:
        assert consistent(again, device_config.parent / "device") == {"img-classification": "1"}
    finally:
        again.stop()


def test_sigkill_during_an_upgrade_then_restart_finishes_it(world: EdgeWorld, device_config: Path) -> None:
    root = device_config.parent / "device"
    device = DeviceProcess(device_config)
    assert world.wait_job(world.deploy(world.document("img-classification", "1")))["status"] == "SUCCEEDED"
    job_id = world.deploy(world.document("img-classification", "2"))
    journal = root / "ota" / "journal.json"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill as soon as the journal shows the job under way
        current = json.loads(journal.read_text()).get("current") if journal.exists() else None
        if current and current["job_id"] == job_id:
            break
        time.sleep(0.005)
    device.stop(signal.SIGKILL)
    killed_at = json.loads(journal.read_text())
    assert killed_at["current"] is not None  # (every step is killed in-process: test_ota_crash_recovery.py)
    again = DeviceProcess(device_config)
    try:
        execution = world.wait_job(job_id)
        assert execution["status"] == "SUCCEEDED", (execution, killed_at)
        assert consistent(again, root) == {"img-classification": "2"}
        jobs = again.get("/api/jobs")["jobs"]
        assert jobs[0]["job_id"] == job_id and jobs[0]["status"] == "SUCCEEDED"
    finally:
        again.stop()


def test_sigterm_in_the_middle_of_a_job_stops_promptly_and_the_restart_finishes_it(
    world: EdgeWorld, device_config: Path
) -> None:
    root = device_config.parent / "device"
    device = DeviceProcess(device_config)
    job_id = world.deploy(world.document("img-classification", "1"))
    journal = root / "ota" / "journal.json"
    deadline = time.monotonic() + 30
    while not (journal.exists() and json.loads(journal.read_text()).get("current")):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.005)
    stopping = time.monotonic()
    assert device.stop(signal.SIGTERM, timeout=30) == 0, "".join(device.output[-40:])
    assert time.monotonic() - stopping < 20
    again = DeviceProcess(device_config)
    try:
        assert world.wait_job(job_id)["status"] == "SUCCEEDED"
        assert consistent(again, root) == {"img-classification": "1"}
    finally:
        again.stop()
