"""`edgesim agent serve` as its own process: JSON logs, owner-only socket, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from system.adapters.agent_client import GrpcEdgeAgentClient


def _start(socket_path: Path, tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "system.cli",
            "agent",
            "serve",
            "--socket",
            str(socket_path),
            "--capture-dir",
            str(tmp / "capture"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_answers_then_stops_gracefully_on_sigterm(short_tmp: Path, zoo) -> None:
    socket_path = short_tmp / "edge_agent"
    process = _start(socket_path, short_tmp)
    try:
        client = GrpcEdgeAgentClient(f"unix://{socket_path}")
        client.wait_ready(timeout=60)
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o600
        client.load_model("clf", str(zoo.packages["tflite"]))
        x = np.zeros((1, 32, 32, 3), np.float32)
        assert client.predict("clf", x)["output_0"].shape == (1, 2)
        client.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert not socket_path.exists()
    entries = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    messages = [e["msg"] for e in entries]
    assert "agent serving" in messages and "model loaded" in messages and "agent stopped" in messages
    loaded = next(e for e in entries if e["msg"] == "model loaded")
    assert loaded["model"] == "clf" and loaded["framework"] == "tflite" and loaded["level"] == "info"


def test_second_agent_on_the_same_socket_exits_with_a_clear_error(short_tmp: Path) -> None:
    socket_path = short_tmp / "edge_agent"
    first = _start(socket_path, short_tmp)
    try:
        client = GrpcEdgeAgentClient(f"unix://{socket_path}")
        client.wait_ready(timeout=60)
        client.close()
        second = subprocess.run(
            [sys.executable, "-m", "system.cli", "agent", "serve", "--socket", str(socket_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert "already serving" in second.stderr
        assert socket_path.is_socket()  # the refused agent left the live one's socket alone
        with GrpcEdgeAgentClient(f"unix://{socket_path}") as again:
            assert again.list_models() == []
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=30)
    assert first.returncode == 0


def test_help_lists_the_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "system.cli", "--help"], capture_output=True, text=True, check=True)
    assert "agent" in out.stdout and "demo" in out.stdout
    serve = subprocess.run(
        [sys.executable, "-m", "system.cli", "agent", "serve", "--help"], capture_output=True, text=True, check=True
    )
    assert "--socket" in serve.stdout and "--address" in serve.stdout and "SIGTERM" in serve.stdout
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "system.cli", "--help"], capture_output=True, check=True)
    assert time.monotonic() - started < 20  # --help must not import TensorFlow
