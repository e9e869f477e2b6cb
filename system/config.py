"""Settings and the profile, read in one place.

This is the only module that reads the environment. Everything else receives a `Settings` (or
one of its parts) from the composition root, so tests build settings directly and never patch
`os.environ`.

Profiles (DESIGN.md section 2): `fake` (default; everything embedded in one process), `local`
(real servers on loopback: moto server, Mosquitto, the agent as its own process), `aws` (the real
cloud and a real device). `EDGESIM_PROFILE` picks the profile; `EDGESIM_<PORT>_BACKEND` overrides
the backend of one port (e.g. `EDGESIM_MQTT_BACKEND=mosquitto`).

The agent also reads the SageMaker Edge Agent's own JSON config file (`-c config.json` in the
original), so a device's existing `config_edge_device.json` keeps working: see
`AgentSettings.from_agent_config_file`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from system.errors import ConfigError

PROFILES = ("fake", "local", "aws")
PORTS = ("object_store", "mqtt", "jobs", "registry", "agent")

# The original agent listens on this socket (seed run.py AGENT_SOCKET, start_edge_agent.sh -a).
DEFAULT_AGENT_SOCKET = "/tmp/edge_agent"


@dataclass(frozen=True)
class CaptureSettings:
    """Data capture, named after the original agent's `sagemaker_edge_core_capture_data_*` keys."""

    destination: str = "Disk"  # "Disk" (a local folder) or "Cloud" (the ObjectStore port)
    disk_path: str = "/tmp/edgesim-capture"
    bucket: str = ""
    folder_prefix: str = "edge-agent-inference-data-capture"
    fleet_name: str = "edgesim-fleet"
    device_name: str = "edgesim-device"
    buffer_size: int = 30
    batch_size: int = 10
    push_period_seconds: float = 10.0
    base64_embed_limit_kb: int = 3  # the original's default and maximum
    status_history: int = 10_000  # capture ids remembered for status and reuse checks
    max_future_skew_seconds: float = 5.0

    def validate(self) -> None:
        if self.destination not in ("Disk", "Cloud"):
            raise ConfigError(f"capture destination must be Disk or Cloud, not {self.destination!r}")
        if self.buffer_size < 1 or self.batch_size < 1:
            raise ConfigError("capture buffer_size and batch_size must be at least 1")
        if self.batch_size > self.buffer_size:
            raise ConfigError(
                f"capture batch_size ({self.batch_size}) must not exceed buffer_size ({self.buffer_size})"
            )
        if not 0 <= self.base64_embed_limit_kb <= 3:
            raise ConfigError("capture base64_embed_limit_kb must be between 0 and 3 (the original's maximum)")
        if self.push_period_seconds <= 0:
            raise ConfigError("capture push_period_seconds must be positive")


@dataclass(frozen=True)
class AgentSettings:
    """What the Edge Agent needs: where to listen, its budgets, its runtimes, data capture."""

    socket_path: str = DEFAULT_AGENT_SOCKET
    address: str = ""  # "127.0.0.1:PORT" to listen on TCP instead of the unix socket
    max_models: int = 8
    memory_budget_mb: int = 0  # 0 = no budget; else the sum of loaded packages' sizes
    workers: int = 16  # gRPC worker threads: concurrent Predicts across models
    # The seed's client sends float32 bytes whatever dtype the model declares
    # (seed-behaviours.md section 1). When on, such payloads are converted to the declared
    # dtype if every value survives the conversion exactly; otherwise INVALID_ARGUMENT.
    accept_float32_payloads: bool = True
    warmup: bool = True  # run one inference on zeros at load, so the first Predict is not slow
    # The GIL switch interval while a model loads; 0 leaves Python's 5 ms (system/agent/load_priority.py).
    load_switch_interval_ms: float = 0.5
    # Framework objects are frozen out of garbage collection once imported (system/agent/gc_freeze.py).
    gc_freeze: bool = True
    mxnet_python: str = ""  # a Python with mxnet 1.9.1 (`make mxnet` builds .venv-mxnet)
    grace_seconds: float = 10.0  # how long SIGTERM waits for in-flight calls
    max_message_mb: int = 64
    capture: CaptureSettings = field(default_factory=CaptureSettings)

    @property
    def target(self) -> str:
        """The gRPC target string clients dial."""
        return self.address if self.address else f"unix://{self.socket_path}"

    def validate(self) -> None:
        if self.max_models < 1:
            raise ConfigError("agent max_models must be at least 1")
        if self.workers < 1:
            raise ConfigError("agent workers must be at least 1")
        if not 0 <= self.load_switch_interval_ms <= 1000:
            raise ConfigError("agent load_switch_interval_ms must be between 0 and 1000")
        self.capture.validate()

    @classmethod
    def from_agent_config_file(cls, path: str | Path, base: AgentSettings | None = None) -> AgentSettings:
        """Overlay the original agent's JSON config (`sagemaker_edge_*` keys) on `base`."""
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read agent config {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"agent config {path} must hold a JSON object")
        base = base or cls()
        cap = base.capture
        mapping = {
            "sagemaker_edge_core_capture_data_destination": ("destination", str),
            "sagemaker_edge_core_capture_data_disk_path": ("disk_path", str),
            "sagemaker_edge_provider_s3_bucket_name": ("bucket", str),
            "sagemaker_edge_core_folder_prefix": ("folder_prefix", str),
            "sagemaker_edge_core_device_fleet_name": ("fleet_name", str),
            "sagemaker_edge_core_device_name": ("device_name", str),
            "sagemaker_edge_core_capture_data_buffer_size": ("buffer_size", int),
            "sagemaker_edge_core_capture_data_batch_size": ("batch_size", int),
            "sagemaker_edge_core_capture_data_push_period_seconds": ("push_period_seconds", float),
            "sagemaker_edge_core_capture_data_base64_embed_limit": ("base64_embed_limit_kb", int),
        }
        changes: dict[str, Any] = {}
        for key, (attr, kind) in mapping.items():
            if key in raw:
                try:
                    changes[attr] = kind(raw[key])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"agent config {path}: {key} = {raw[key]!r}: {exc}") from exc
        return replace(base, capture=replace(cap, **changes))


@dataclass(frozen=True)
class Settings:
    """Everything edgesim reads from its environment."""

    profile: str = "fake"
    backends: Mapping[str, str] = field(default_factory=dict)  # port -> backend override
    log_level: str = "info"
    agent: AgentSettings = field(default_factory=AgentSettings)
    kill_at: str = ""  # crash testing: a kill point (system/killpoints.py) where the process SIGKILLs itself

    def backend_for(self, port: str) -> str:
        """The backend of one port: its override, else the profile's choice."""
        if port not in PORTS:
            raise ConfigError(f"unknown port {port!r}; ports are {', '.join(PORTS)}")
        return self.backends.get(port, self.profile)

    def validate(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"EDGESIM_PROFILE must be one of {', '.join(PROFILES)}, not {self.profile!r}")
        self.agent.validate()
        if self.kill_at:
            from system.killpoints import parse

            parse(self.kill_at)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from exc


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from exc


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def default_mxnet_python() -> str:
    """`.venv-mxnet/bin/python` beside the running venv, if `make mxnet` has built it."""
    candidate = Path(sys.prefix).parent / ".venv-mxnet" / "bin" / "python"
    return str(candidate) if candidate.exists() else ""


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (`os.environ` unless `env` is given)."""
    env = os.environ if env is None else env
    backends = {
        port: env[f"EDGESIM_{port.upper()}_BACKEND"] for port in PORTS if env.get(f"EDGESIM_{port.upper()}_BACKEND")
    }
    capture = CaptureSettings(
        destination=env.get("EDGESIM_CAPTURE_DESTINATION", CaptureSettings.destination),
        disk_path=env.get("EDGESIM_CAPTURE_DISK_PATH", CaptureSettings.disk_path),
        bucket=env.get("EDGESIM_CAPTURE_BUCKET", ""),
        folder_prefix=env.get("EDGESIM_CAPTURE_PREFIX", CaptureSettings.folder_prefix),
        fleet_name=env.get("EDGESIM_FLEET_NAME", CaptureSettings.fleet_name),
        device_name=env.get("EDGESIM_DEVICE_NAME", CaptureSettings.device_name),
        buffer_size=_env_int(env, "EDGESIM_CAPTURE_BUFFER_SIZE", CaptureSettings.buffer_size),
        batch_size=_env_int(env, "EDGESIM_CAPTURE_BATCH_SIZE", CaptureSettings.batch_size),
        push_period_seconds=_env_float(env, "EDGESIM_CAPTURE_PUSH_PERIOD_SECONDS", CaptureSettings.push_period_seconds),
    )
    agent = AgentSettings(
        socket_path=env.get("EDGESIM_AGENT_SOCKET", DEFAULT_AGENT_SOCKET),
        address=env.get("EDGESIM_AGENT_ADDRESS", ""),
        max_models=_env_int(env, "EDGESIM_AGENT_MAX_MODELS", AgentSettings.max_models),
        memory_budget_mb=_env_int(env, "EDGESIM_AGENT_MEMORY_BUDGET_MB", AgentSettings.memory_budget_mb),
        workers=_env_int(env, "EDGESIM_AGENT_WORKERS", AgentSettings.workers),
        accept_float32_payloads=_env_bool(
            env, "EDGESIM_AGENT_ACCEPT_FLOAT32_PAYLOADS", AgentSettings.accept_float32_payloads
        ),
        warmup=_env_bool(env, "EDGESIM_AGENT_WARMUP", AgentSettings.warmup),
        load_switch_interval_ms=_env_float(
            env, "EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS", AgentSettings.load_switch_interval_ms
        ),
        gc_freeze=_env_bool(env, "EDGESIM_AGENT_GC_FREEZE", AgentSettings.gc_freeze),
        mxnet_python=env.get("EDGESIM_MXNET_PYTHON") or default_mxnet_python(),
        grace_seconds=_env_float(env, "EDGESIM_AGENT_GRACE_SECONDS", AgentSettings.grace_seconds),
        capture=capture,
    )
    settings = Settings(
        profile=env.get("EDGESIM_PROFILE", "fake"),
        backends=backends,
        log_level=env.get("EDGESIM_LOG_LEVEL", "info"),
        agent=agent,
        kill_at=env.get("EDGESIM_KILL_AT", ""),
    )
    settings.validate()
    return settings
