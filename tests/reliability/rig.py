"""A device as it runs for real, for kill-point tests: an Edge Agent process and an edge app process
(`edgesim agent serve`, `edgesim device run --profile local` with `agent.target`) on the local cloud
(moto server, Mosquitto, the jobs data plane in the test process).

`power_cut()` SIGKILLs whichever of the two is still alive: when one dies at a kill point, the other
goes too, as when a device loses power. A restart is a new agent and a new app on the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from simulators.model_zoo import write_images
from system.adapters.agent_client import GrpcEdgeAgentClient
from tests.edge.test_device_process import DeviceProcess
from tests.edge_world import EdgeWorld

KILLED = "edgesim: killed at "


class AgentProcess:
    """`edgesim agent serve` on a unix socket; `kill_at` arms a kill point in it."""

    def __init__(self, socket: Path, capture_dir: Path, kill_at: str = "") -> None:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "EDGESIM_KILL_AT": kill_at}
        socket.unlink(missing_ok=True)
        command = [sys.executable, "-m", "system.cli", "--log-format", "text", "agent", "serve"]
        command += ["--socket", str(socket), "--capture-dir", str(capture_dir)]
        self.log = socket.with_suffix(".log")
        with self.log.open("ab") as log:
            # A process group of its own, which the app joins: a kill point `@group` is a power cut of both.
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, process_group=0)
        self.target = f"unix://{socket}"
        deadline = time.monotonic() + 60
        while not socket.exists():
            assert self.process.poll() is None, f"the agent died at start:\n{self.tail()}"
            assert time.monotonic() < deadline, f"no agent socket after 60 s:\n{self.tail()}"
            time.sleep(0.05)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def killed_at(self) -> str | None:
        return _killed_at(self.tail())


def _killed_at(output: str) -> str | None:
    lines = [line for line in output.splitlines() if line.startswith(KILLED)]
    return lines[-1][len(KILLED) :].strip() if lines else None


class Rig:
    """One device's folder, config and processes on `world` (the local profile)."""

    def __init__(self, world: EdgeWorld, folder: Path) -> None:
        self.world = world
        self.folder = folder
        self.root = folder / "device"
        self.socket = folder / "agent.sock"
        self.captures = folder / "captures"
        self.images = folder / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.captures.mkdir(parents=True, exist_ok=True)
        write_images(self.images, 4)
        self.agent: AgentProcess | None = None
        self.device: DeviceProcess | None = None

    def config(self, capture_fraction: float) -> Path:
        path = self.folder / "device.json"
        config = {
            "thing_name": self.world.thing,
            "root": str(self.root),
            "agent": {"target": f"unix://{self.socket}", "check_interval": 0.5},
            "mqtt": self.world.cloud.device_mqtt_config(self.world.thing),
            "object_store": {"endpoint_url": self.world.cloud.endpoint_url},
            "inference": {"source": {"type": "folder", "path": str(self.images)}, "rate_hz": 10,
                          "capture_fraction": capture_fraction},
            "telemetry": {"flush_interval": 0.5},
            "web": {"port": 0},
        }  # fmt: skip
        path.write_text(json.dumps(config))
        return path

    def start(self, *, agent_kill: str = "", device_kill: str = "", capture_fraction: float = 0.0) -> None:
        self.agent = AgentProcess(self.socket, self.captures, agent_kill)
        changes: dict[str, str | None] = {"EDGESIM_KILL_AT": device_kill}
        self.device = DeviceProcess(
            self.config(capture_fraction), env_changes=changes, process_group=self.agent.process.pid
        )

    def stop(self) -> None:
        """A clean stop: SIGTERM to the app, then to the agent."""
        for process in self._processes():
            process.send_signal(signal.SIGTERM)
            process.wait(30)

    def power_cut(self) -> None:
        for process in self._processes():
            if process.poll() is None:
                process.kill()
            process.wait(30)

    def wait_for_death(self, timeout: float = 60) -> str:
        """The kill point the processes died at: both by SIGKILL, in one instant (a `@group` kill)."""
        assert self.agent is not None and self.device is not None
        deadline = time.monotonic() + timeout
        while self.agent.process.poll() is None or self.device.process.poll() is None:
            assert time.monotonic() < deadline, "nothing died at the kill point:\n" + "".join(self.device.output[-20:])
            time.sleep(0.02)
        time.sleep(0.1)  # the last output line reaches the reader thread
        for process in (self.agent.process, self.device.process):
            assert process.returncode == -signal.SIGKILL, f"exit {process.returncode}, not SIGKILL"
        where = self.agent.killed_at() or _killed_at("".join(self.device.output))
        assert where is not None, "a process died without naming its kill point"
        return where

    def predict(self) -> dict[str, Any]:
        """POST an image to the app's /api/predict: a model answers through the agent."""
        assert self.device is not None
        data = next(iter(sorted(self.images.rglob("*.png")))).read_bytes()
        request = urllib.request.Request(
            self.device.url.rstrip("/") + "/api/predict", data=data, headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
        return answer

    def agent_models(self) -> dict[str, str]:
        """identifier -> package url of what the agent holds."""
        assert self.agent is not None
        client = GrpcEdgeAgentClient(self.agent.target)
        try:
            return {m.name: m.url for m in client.list_models()}
        finally:
            client.close()

    def reset_from(self, template: Path) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.copytree(template, self.root)

    def _processes(self) -> list[subprocess.Popen[str] | subprocess.Popen[bytes]]:
        found: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = []
        if self.device is not None:
            found.append(self.device.process)
        if self.agent is not None:
            found.append(self.agent.process)
        return found
