"""A device under a benchmark: `python -m benchmarks.locust_target` in a child process, and its CPU counters.

The target is what `make bench-locust` loads: an Edge Agent in its own process with the classifier
loaded as `img-classification-1`, and a device web UI (`DeviceApp`, waitress on loopback) over it in
the target's process. So the web UI, the agent and the benchmark are three processes, as the edge
app and the agent are on a device. The target writes `<out>/target.json` once both are up.

Stopping: SIGTERM (the target stops the device, then the agent), then SIGKILL to the target's whole
process group after a bounded wait. The target runs in a session of its own so that the agent, its
child, is in that group and cannot outlive a killed target; the target's `--seconds` bounds its
life even if this process is killed first. Its log goes to a file (never an unread pipe, which
would block it once full) and is quoted when it fails to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.agent_process import log_tail, stop_child

ROOT = Path(__file__).resolve().parents[1]
TARGET_KEYS = ("agent", "model", "host", "pid", "agent_pid", "package_dir")


def own_cpu_seconds() -> float:
    """User + system CPU time this process has used so far."""
    times = os.times()
    return times.user + times.system


class DeviceTarget:
    """`python -m benchmarks.locust_target --out DIR --seconds S` in a child process."""

    def __init__(
        self,
        folder: Path,
        *,
        lifetime: float,
        seed: int = 0,
        ready_timeout: float = 120.0,
        stop_timeout: float = 30.0,
    ) -> None:
        """`lifetime` caps the target's own run (its `--seconds`): it stops by itself after that long.

        `seed` is the target's `--seed`, the seed of the classifier's weights.
        """
        self.out = folder / "target"
        self.log_path = folder / "target.log"
        self._lifetime = lifetime
        self._seed = seed
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the target; returns at once (it imports TensorFlow and exports the classifier meanwhile)."""
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        command = [sys.executable, "-m", "benchmarks.locust_target"]
        command += ["--out", str(self.out), "--seconds", f"{self._lifetime:g}", "--seed", str(self._seed)]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def wait_ready(self) -> dict[str, Any]:
        """Block until target.json exists; return it. RuntimeError with the target's log if it died or hung."""
        deadline = time.monotonic() + self._ready_timeout
        ready = self.out / "target.json"  # written whole, then renamed: never read half-written
        while not ready.exists():
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise RuntimeError(f"the device target exited with {code} before it was ready\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the device target was not ready after {self._ready_timeout:g} s\n{self.log_tail()}"
                )
            time.sleep(0.2)
        target: dict[str, Any] = json.loads(ready.read_text())
        missing = [key for key in TARGET_KEYS if key not in target]
        if missing:
            raise RuntimeError(f"{ready} lacks {', '.join(missing)}: is benchmarks/locust_target.py up to date?")
        return target

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines, missing="(no target log)")

    def stop(self) -> int | None:
        """SIGTERM (graceful: device, then agent), then SIGKILL to the process group; returns the exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        # The group is the target's own session: SIGKILL reaches the target and its agent.
        return stop_child(process, self._stop_timeout, lambda: os.killpg(process.pid, signal.SIGKILL))

    def __enter__(self) -> DeviceTarget:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
