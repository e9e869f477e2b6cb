"""One edge device: the composition root of the edge app (DESIGN.md section 1, system/edge/).

`DeviceApp` wires, from a `DeviceConfig` and the backends of a profile (`DeviceBackends`): the
models of models_config.json restored into the agent, the OTA driver on IoT Jobs, the continuous
inference loop with data capture, telemetry and metrics, and the web UI. It is also the
`DeviceView` the web UI reads. Start order matters: models are restored before MQTT connects, so
an OTA job never races the start-up loads (the seed's did, seed-behaviours.md section 3). After
start-up the agent watch, run by the inference loop's thread, reloads them if the agent restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from system.edge.agent_watch import AgentWatch
from system.edge.atomic import remove_stale_temporaries
from system.edge.device_config import DeviceConfig
from system.edge.health import HealthCheckSettings
from system.edge.image_source import Frame, ImageSource
from system.edge.inference import InferenceEngine
from system.edge.inference_loop import InferenceLoop
from system.edge.jobs_client import IotJobsDeviceClient
from system.edge.journal import Journal
from system.edge.layout import DeviceLayout
from system.edge.metrics import DeviceMetrics, MetricsReporter
from system.edge.models_config import ModelsConfigFile
from system.edge.ota_driver import OtaDriver
from system.edge.ota_machine import JobState, Policy, Step
from system.edge.ota_steps import OtaLimits, OtaSteps, StoreFactory
from system.edge.results import InferenceResult
from system.edge.roster import ModelRoster
from system.edge.startup import StartupReport, restore_models
from system.edge.telemetry import TelemetryLogHandler, TelemetryPublisher
from system.edge.versions import Version
from system.errors import ConfigError, EdgesimError
from system.ports import InferenceClient, MessageBus
from system.preprocessing import decode_image
from system.signing import load_public_key

_log = logging.getLogger(__name__)


def agent_version() -> Version:
    """This edgesim's version: a job's `min_agent_version` is compared with it."""
    try:
        return Version.parse(version("edgesim"))
    except (PackageNotFoundError, EdgesimError):
        return Version.parse("0")


@dataclass
class DeviceBackends:
    """What a profile provides: the device's MQTT connection, S3 access, the agent, an image source."""

    bus: MessageBus
    stores: StoreFactory
    client: InferenceClient
    source: ImageSource
    agent_target: str = ""
    closers: list[Callable[[], None]] = field(default_factory=list)  # run last to first at stop


class DeviceApp:
    def __init__(self, config: DeviceConfig, backends: DeviceBackends, *, profile: str = "local") -> None:
        self.config = config
        self.backends = backends
        self.profile = profile
        self.layout = DeviceLayout(config.root, config.models_config)
        for state_file in (self.layout.models_config, self.layout.journal):
            for stale in remove_stale_temporaries(state_file):  # before anything of this process writes
                _log.info("removed %s, left by a write interrupted before its rename", stale)
        self.config_file = ModelsConfigFile(self.layout.models_config)
        self.roster = ModelRoster(self.config_file.load().mappings)
        self.journal = Journal(self.layout.journal)
        self.metrics = DeviceMetrics(config.thing_name)
        self.telemetry = TelemetryPublisher(
            backends.bus,
            config.thing_name,
            buffer_size=config.telemetry_buffer_size,
            batch_size=config.telemetry_batch_size,
            flush_interval=config.telemetry_flush_interval,
        )
        self.metrics.watch_telemetry(self.telemetry)
        self.agent_watch = AgentWatch(
            backends.client,
            self.config_file,
            self.layout,
            self.roster,
            self.journal,
            interval=config.agent_check_interval,
        )
        self.engine = InferenceEngine(
            backends.client,
            self.roster,
            capture_fraction=config.capture_fraction,
            threshold=config.threshold,
            history=config.history,
            on_result=self._on_result,
            on_agent_trouble=self.agent_watch.notice,
        )
        self.loop = InferenceLoop(
            self.engine,
            backends.source,
            rate_hz=config.rate_hz,
            housekeeping=self.agent_watch.check,  # no thread of its own: checks between frames
            housekeeping_interval=min(1.0, config.agent_check_interval),
        )
        signing_key = self._signing_key(config, profile)
        self._require_signature = signing_key is not None
        self.steps = OtaSteps(
            backends.client,
            backends.stores,
            self.layout,
            self.roster,
            self.config_file,
            health=HealthCheckSettings(enabled=config.health_enabled, output_range=config.health_output_range),
            limits=OtaLimits(max_package_bytes=config.max_package_bytes, require_sha256=config.require_sha256),
            signing_key=signing_key,
        )
        self.jobs_client = IotJobsDeviceClient(
            backends.bus, config.thing_name, on_notify_next=self._on_notify_next, on_notify=self._on_notify
        )
        self.driver = OtaDriver(
            self.jobs_client,
            self.steps,
            self.journal,
            self.roster,
            self._policy,
            step_timeout_minutes=config.step_timeout_minutes,
            on_change=self._on_job_change,
        )
        self.reporter = MetricsReporter(self.metrics, self.telemetry, interval=config.metrics_interval)
        self._log_handler = TelemetryLogHandler(self.telemetry)
        self._web: Any = None
        self._started_at = 0.0
        self._stop = threading.Event()
        self._connector: threading.Thread | None = None
        self.startup: StartupReport | None = None
        self.job_listeners: list[Callable[[JobState], None]] = []  # e.g. a scenario's report

    # -- lifecycle -----------------------------------------------------------------------------

    @staticmethod
    def _signing_key(config: DeviceConfig, profile: str) -> Ed25519PublicKey | None:
        """The pinned package signing key. On aws a device without one refuses to start, unless the config
        says `ota.allow_unsigned` (an OTA channel that installs any archive is a remote code path)."""
        if config.signing_public_key is not None:
            return load_public_key(config.signing_public_key)
        if profile == "aws" and not config.allow_unsigned:
            raise ConfigError(
                "on the aws profile a device installs only signed packages: set ota.signing_public_key "
                "(edgesim provision writes it) or, knowingly, ota.allow_unsigned: true"
            )
        if profile == "aws":
            _log.warning("ota.allow_unsigned: this device installs unsigned packages from any job it is given")
        return None

    def start(self) -> DeviceApp:
        """Start everything; if any part fails, what had started is stopped again and the error raised."""
        self._started_at = time.time()
        try:
            self._start_parts()
        except BaseException:
            self.stop()
            raise
        _log.info("device started", extra={"fields": {"thing": self.config.thing_name, "web": self.web_url}})
        return self

    def _start_parts(self) -> None:
        if self.config.web_enabled:  # first: a port already in use fails before anything else runs
            from system.edge.web.app import create_app
            from system.edge.web.server import WebServer

            self._web = WebServer(create_app(self), self.config.web_host, self.config.web_port).start()
        self.startup = restore_models(
            self.backends.client, self.config_file.load(), self.layout, self.roster, self.journal.current
        )
        self._publish_models()
        if self.config.telemetry_enabled:
            logging.getLogger("system").addHandler(self._log_handler)
            self.reporter.start()
        self.backends.bus.add_connect_listener(self.driver.poke)
        self.driver.start()
        self._connector = threading.Thread(target=self._connect, name="mqtt-connect", daemon=True)
        self._connector.start()
        self.loop.start()

    def _connect(self) -> None:
        """Connect, retrying while the broker is away; inference serves meanwhile."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                self.backends.bus.connect()
                return
            except EdgesimError as exc:
                _log.warning("MQTT connect failed; retrying", extra={"fields": {"error": str(exc), "in_s": delay}})
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def stop(self) -> None:
        """Graceful stop: the job in progress stays journaled and resumes at the next start. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._web is not None:
            self._web.stop()
            self._web = None
        self.loop.stop()
        self.driver.stop()
        self.reporter.stop()
        logging.getLogger("system").removeHandler(self._log_handler)
        # One part failing to stop must not keep the others running, nor turn a clean stop into a crash.
        for closer in (self.telemetry.close, self.jobs_client.close, self.backends.bus.close):
            self._close(closer)
        for closer in reversed(self.backends.closers):
            self._close(closer)

    @staticmethod
    def _close(closer: Callable[[], object]) -> None:
        try:
            closer()
        except Exception:  # noqa: BLE001 - logged with its traceback; the stop goes on
            _log.exception("error while stopping a device part")

    def __enter__(self) -> DeviceApp:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def web_url(self) -> str | None:
        return None if self._web is None else str(self._web.url)

    # -- wiring --------------------------------------------------------------------------------

    def _policy(self) -> Policy:
        return Policy(frozenset(self.roster.mappings.values()), agent_version(), self._require_signature)

    def _on_notify_next(self, payload: dict[str, Any]) -> None:
        self.driver.on_notify_next(payload)

    def _on_notify(self, payload: dict[str, Any]) -> None:
        self.driver.on_notify(payload)

    def _on_result(self, result: InferenceResult) -> None:
        self.metrics.observe_result(result)
        if self.config.telemetry_enabled:
            self.telemetry.record("inference", result.to_dict(images=False))

    def _on_job_change(self, state: JobState) -> None:
        for listener in self.job_listeners:
            listener(state)
        if state.step is Step.DONE:
            self.metrics.ota_event(str(state.outcome).lower())
            self._publish_models()
            self._record_job(state)
            return
        self.metrics.ota_started(state.job_id, state.model_name, state.version)
        if state.step in (Step.UNLOAD_OLD, Step.ROLLBACK):
            self._publish_models()
        self._record_job(state)

    def _record_job(self, state: JobState) -> None:
        if self.config.telemetry_enabled:
            summary = {k: v for k, v in state.to_dict().items() if k not in ("document", "history")}
            self.telemetry.record("ota", summary)

    def _publish_models(self) -> None:
        apps = {name: app for app, name in self.roster.mappings.items()}
        self.metrics.set_models([(apps.get(m.name, ""), m.name, m.version, m.identifier) for m in self.roster.all()])

    # -- DeviceView ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        current = self.journal.current
        agent_ok = self._agent_reachable()
        return {
            "thing": self.config.thing_name,
            "profile": self.profile,
            "uptime_seconds": round(time.time() - self._started_at, 3) if self._started_at else 0.0,
            "healthy": agent_ok and self.loop.running,
            "agent": {"target": self.backends.agent_target, "reachable": agent_ok, **self.agent_watch.snapshot()},
            "mqtt": {"connected": self.backends.bus.connected},
            "ota": {"current_job": None if current is None else _job_view(current), "errors": self.driver.errors},
            "inference": {
                "running": self.loop.running,
                "rate_hz": self.config.rate_hz,
                "count": self.engine.count,
                "errors": self.engine.errors + self.loop.errors,
            },
            "generation": self.roster.generation,
            "startup_problems": list(self.startup.problems) if self.startup else [],
        }

    def _agent_reachable(self) -> bool:
        try:
            self.backends.client.list_models()
        except EdgesimError:
            return False
        return True

    def models(self) -> list[dict[str, Any]]:
        apps = {name: app for app, name in self.roster.mappings.items()}
        return [{**m.to_dict(), "app": apps.get(m.name, "")} for m in self.roster.all()]

    def latest_result(self) -> InferenceResult | None:
        return self.engine.latest()

    def recent_results(self, limit: int) -> list[InferenceResult]:
        return self.engine.recent(limit)

    def jobs(self) -> list[dict[str, Any]]:
        finished = [_job_view(s) for s in reversed(self.journal.finished())]
        current = self.journal.current
        return ([_job_view(current)] if current is not None else []) + finished

    def predict_image(self, data: bytes, name: str) -> InferenceResult:
        image = decode_image(data, f"the uploaded image {name!r}")  # ValueError: the DeviceView contract
        return self.engine.infer(Frame(f"upload/{name}", image))

    def metrics_text(self) -> str:
        return self.metrics.render()

    def generation(self) -> int:
        return self.roster.generation


def _job_view(state: JobState) -> dict[str, Any]:
    finished = state.step is Step.DONE
    return {
        "job_id": state.job_id,
        "execution_number": state.execution_number,
        "model_name": state.model_name,
        "version": state.version,
        "status": str(state.outcome) if finished and state.outcome else "IN_PROGRESS",
        "reason": state.reason,
        "step": str(state.step),
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "steps": [record.to_dict() for record in state.history],
    }
