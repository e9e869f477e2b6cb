"""The Edge Agent as its own process, as on a device: `edgesim agent serve` under a benchmark.

The agent runs in a child process so that the benchmark's clients and the agent do not share a
GIL. Its JSON log goes to a file (never an unread pipe, which would block the agent once full);
the last lines are quoted when it fails to start. `stop()` sends SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.errors import AgentUnavailableError


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time process `pid` has used so far (Linux /proc; 0.0 elsewhere or when gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (proc(5))


def log_tail(path: Path, lines: int, *, missing: str) -> str:
    """The last `lines` lines of a child's log file, or `missing` when it cannot be read."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return missing


def stop_child(process: subprocess.Popen[bytes], timeout: float, kill: Callable[[], None]) -> int | None:
    """SIGTERM, wait up to `timeout`, then `kill()` and wait again; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill()
            process.wait(timeout=timeout)
    return process.returncode


class AgentProcess:
    """`python -m system.cli agent serve --socket PATH --capture-dir DIR` in a child process."""

    def __init__(
        self,
        folder: Path,
        *,
        ready_timeout: float = 120.0,
        stop_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`folder` must be short: it holds the unix socket (paths stay under ~107 bytes).

        `env` adds to (or overrides) this process's environment, e.g. `EDGESIM_AGENT_*` settings.
        """
        self.socket_path = folder / "edge_agent"
        self.capture_dir = folder / "capture"
        self.log_path = folder / "agent.log"
        self.target = f"unix://{self.socket_path}"
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._env = dict(env or {})

    def start(self) -> None:
        """Spawn the agent; returns at once (the agent imports TensorFlow meanwhile)."""
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), **self._env}
        command = [sys.executable, "-m", "system.cli", "agent", "serve"]
        command += ["--socket", str(self.socket_path), "--capture-dir", str(self.capture_dir)]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def wait_ready(self) -> None:
        """Block until the agent answers on its socket; raise with its log if it died or hung."""
        with GrpcEdgeAgentClient(self.target) as client:
            try:
                client.wait_ready(timeout=self._ready_timeout)
            except AgentUnavailableError as exc:
                raise RuntimeError(f"the agent did not start: {exc}\n{self.log_tail()}") from exc
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"the agent exited with {self._process.returncode}\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the agent process has used so far (Linux /proc; 0.0 elsewhere)."""
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines, missing="(no agent log)")

    def stop(self) -> int | None:
        """SIGTERM (graceful stop), then SIGKILL after the timeout; returns the exit code."""
        process, self._process = self._process, None
        return None if process is None else stop_child(process, self._stop_timeout, process.kill)

    def __enter__(self) -> AgentProcess:
        self.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()
