"""`edgesim --profile fake device run`: the simulated cloud and the agent inside the device process."""

from __future__ import annotations

import json
import signal
import tempfile
import time
from pathlib import Path

from tests.edge.test_device_process import DeviceProcess


def test_fake_profile_device_runs_the_camera_and_stops_on_sigterm() -> None:
    with tempfile.TemporaryDirectory(prefix="es-") as short:
        config = Path(short) / "device.json"
        config.write_text(
            json.dumps(
                {
                    "thing_name": "line-1-camera-3",
                    "root": "device",
                    "inference": {"source": {"type": "camera", "seed": 3}, "rate_hz": 10},
                    "web": {"port": 0},
                }
            )
        )
        device = DeviceProcess(config, profile="fake")
        try:
            status = device.get("/api/status")
            assert status["thing"] == "line-1-camera-3" and status["profile"] == "fake"
            deadline = time.monotonic() + 20
            while device.get("/api/status")["inference"]["count"] < 3:  # no model yet: frames, no verdicts
                assert time.monotonic() < deadline, "the camera loop did not run"
                time.sleep(0.1)
            assert device.get("/api/status")["mqtt"]["connected"]
            assert device.get("/api/models")["models"] == []
        finally:
            assert device.stop(signal.SIGTERM) == 0
        assert (Path(short) / "device" / "agent.sock").exists() is False
