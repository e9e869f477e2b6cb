"""LightDevice: one simulated device of a fleet, without a thread, a socket or a real model runtime.

It owns what a full device owns: its thing (its MQTT identity), its folder (models_config.json,
the OTA journal, downloads, extracted packages: `DeviceLayout`), its roster of serving models, and
the OTA code (`OtaSteps` for the I/O, `ota_machine` for the decisions) behind an event-driven
driver (`LightOtaDriver`). Its model runtime is `SimulatedRuntime`; its bus is any `MessageBus`
(an `InMemoryMessageBus` on the simulated broker, or a Paho connection on `local`).

`kill()` is the process dying (the bus breaks without a clean disconnect, the runtime forgets its
models, every scheduled step is dropped); `restart()` starts again from the folder, exactly as a
full device does after a power cut (start-up loads what models_config.json names; the journaled
job resumes or is wound up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from simulators.fleet.jobs_requests import AsyncJobsClient
from simulators.fleet.light_driver import LightOtaDriver, StepTiming
from simulators.fleet.link import Link
from simulators.fleet.runtime import RuntimeFaults, SimulatedRuntime
from system.edge.health import HealthCheckSettings
from system.edge.journal import Journal
from system.edge.layout import DeviceLayout
from system.edge.models_config import ModelsConfigFile
from system.edge.ota_machine import JobState, Outcome, Policy
from system.edge.ota_steps import OtaLimits, OtaSteps, StoreFactory
from system.edge.roster import ModelRoster
from system.edge.startup import StartupReport, restore_models
from system.edge.versions import Version
from system.errors import MessageBusError
from system.ports import Clock, MessageBus, Timer

_log = logging.getLogger(__name__)
BusFactory = Callable[[str], MessageBus]  # client id -> a new, unconnected bus with the thing's identity


@dataclass
class LightSettings:
    """How a light device behaves; shared by a fleet unless a device gets its own."""

    load_seconds: float = 2.0
    timing: StepTiming = field(default_factory=StepTiming)
    step_timeout_minutes: int = 10
    reply_timeout: float = 10.0  # clock seconds without a jobs reply before a request is retried
    agent_version: Version = field(default_factory=lambda: Version.parse("99"))
    limits: OtaLimits = field(default_factory=OtaLimits)


class LightDevice:
    def __init__(
        self,
        thing: str,
        root: Path,
        *,
        buses: BusFactory,
        stores: Callable[[Link], StoreFactory],
        clock: Clock,
        settings: LightSettings | None = None,
        faults: RuntimeFaults | None = None,
        on_change: Callable[[str, JobState], None] | None = None,
    ) -> None:
        self.thing = thing
        self.layout = DeviceLayout(root)
        self.settings = settings or LightSettings()
        self.clock = clock
        self.link = Link()
        self.runtime = SimulatedRuntime(self.settings.load_seconds, faults)
        self._buses = buses
        self._stores = stores(self.link)
        self._on_change = on_change
        self._reconnect: Timer | None = None
        self.alive = False
        self.bus: MessageBus | None = None
        self.driver: LightOtaDriver | None = None
        self.roster = ModelRoster()
        self.journal = Journal(self.layout.journal)  # read again at every start
        self.startup = StartupReport()  # what the last start loaded, adopted, unloaded

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LightDevice:
        """Boot from the folder: load the configured models, then take jobs."""
        config_file = ModelsConfigFile(self.layout.models_config)
        config = config_file.load()
        journal = Journal(self.layout.journal)
        self.roster = ModelRoster(config.mappings)
        self.startup = restore_models(self.runtime, config, self.layout, self.roster, journal.current)
        steps = OtaSteps(
            self.runtime,
            self._stores,
            self.layout,
            self.roster,
            config_file,
            health=HealthCheckSettings(),
            limits=self.settings.limits,
            sleep=_no_sleep,
        )
        bus = self._buses(self.thing)  # one client id per thing, as a real device: a restart takes its session over
        driver: LightOtaDriver
        jobs = AsyncJobsClient(
            bus,
            self.thing,
            self.clock,
            timeout=self.settings.reply_timeout,
            on_notify_next=lambda payload: driver.on_notify_next(payload),
            on_notify=lambda payload: driver.on_notify(payload),
        )
        policy = Policy(frozenset(self.roster.mappings.values()), self.settings.agent_version)
        driver = LightOtaDriver(
            jobs,
            steps,
            journal,
            self.roster,
            policy,
            self.runtime,
            self.clock,
            link=self.link,
            timing=self.settings.timing,
            step_timeout_minutes=self.settings.step_timeout_minutes,
            on_change=self._changed,
        )
        self.bus, self.driver, self.journal, self.alive = bus, driver, journal, True
        bus.add_connect_listener(driver.poke)
        self._connect()
        return self

    def kill(self) -> None:
        """The device dies: no clean disconnect (the broker publishes the will), runtime emptied."""
        if self._halt():
            assert self.bus is not None
            kill = getattr(self.bus, "kill", None)  # the simulated broker's client can die abruptly
            (kill or self.bus.close)()
            self.runtime.crash()

    def restart(self) -> LightDevice:
        self.kill()
        return self.start()

    def stop(self) -> None:
        """A clean shutdown (the journal keeps any job in progress)."""
        if self._halt():
            assert self.bus is not None
            self.bus.close()

    def _halt(self) -> bool:
        """Stop the driver and its timers; False when the device was not running."""
        if not self.alive:
            return False
        self.alive = False
        if self._reconnect is not None:
            self._reconnect.cancel()
        assert self.driver is not None
        self.driver.stop()
        self.driver.jobs.close()
        return True

    # -- state -----------------------------------------------------------------------------------

    def served(self) -> dict[str, str]:
        """Model name -> serving version."""
        return {model.name: model.version for model in self.roster.all()}

    @property
    def busy(self) -> bool:
        """Talking to IoT Jobs or running a step (False while idle, or when not running)."""
        return self.alive and self.driver is not None and self.driver.busy

    @property
    def current(self) -> JobState | None:
        return self.journal.current if self.alive else None

    def outcome(self, job_id: str) -> Outcome | None:
        """How this device finished `job_id` (its last execution), or None if it has not."""
        finished = [state for state in self.journal.finished() if state.job_id == job_id]
        return finished[-1].outcome if finished else None

    # -- internals -------------------------------------------------------------------------------

    def _connect(self) -> None:
        assert self.bus is not None
        try:
            self.bus.connect()
        except MessageBusError as exc:  # refused (a partition, a broker restarting): try again
            _log.info(
                "light device cannot connect; retrying", extra={"fields": {"thing": self.thing, "error": str(exc)}}
            )
            self._reconnect = self.clock.call_later(self.settings.timing.retry, self._retry_connect)

    def _retry_connect(self) -> None:
        if self.alive and self.bus is not None and not self.bus.connected:
            self._connect()

    def _changed(self, state: JobState) -> None:
        if self._on_change is not None:
            self._on_change(self.thing, state)


def _no_sleep(_seconds: float) -> None:
    """OtaSteps' download loop is not used here (the driver schedules retries on the clock)."""
