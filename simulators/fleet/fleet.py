"""Fleet: N light devices of one simulated cloud, their things, their folders, and running them.

    fleet = Fleet(cloud, root)                  # on the cloud's clock (a VirtualClock on fake)
    fleet.provision(1000)                       # things in the fleet's thing group, devices started
    jobs.create_job(JobSpec(job_id, targets=[fleet.group_arn], document=..., rollout=...))
    fleet.run_until(lambda: fleet.finished(job), max_seconds=3600)

Things are created in moto (so boto3 sees them and group jobs reach them) and synced to the data
plane at once. Each device gets `<root>/<thing>/` as its folder; by default `root` is on tmpfs
(`/dev/shm`) when the machine has one, because every OTA step rewrites the journal atomically with
an fsync, and 10,000 devices times a dozen fsyncs is minutes on a disk and a second in memory.

Time: on the fake profile the cloud's `VirtualClock` drives the broker, the data plane and every
device, and `run_until` advances it; nothing runs in between, and a run is reproducible. On `local`
(a real broker, wall time) the devices' timers share one timer thread and `run_until` waits.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from simulators.broker.delivery import ThreadedExecutor
from simulators.clock import VirtualClock
from simulators.cloud import SimulatedCloud
from simulators.fleet.light_device import LightDevice, LightSettings
from simulators.fleet.link import Link, LinkedS3Client
from simulators.fleet.progress import Progress
from simulators.fleet.runtime import RuntimeFaults
from system.adapters.s3_object_store import S3ObjectStore
from system.edge.ota_machine import JobState
from system.errors import ConfigError
from system.ports import Clock, FileTransfer, MessageBus

_log = logging.getLogger(__name__)
Listener = Callable[[str, JobState], None]


@contextmanager
def _fewer_collections(young: int = 50_000) -> Iterator[None]:
    """Collect the young generation every `young` allocations instead of every 700, meanwhile.

    Every callback of a running fleet allocates (messages, JSON, journal states) and most of it dies
    young, but each collection also walks older generations in turn, and a fleet's heap is large: at
    10,000 devices the default thresholds spent a quarter of the rollout in the collector
    (BENCHMARKS.md). Cycles are still collected, only in bigger batches.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(max(young, thresholds[0]), *thresholds[1:])
    gc.freeze()  # what lives now (the fleet, moto, the modules) is not scanned again meanwhile
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


class Fleet:
    def __init__(
        self,
        cloud: SimulatedCloud,
        root: Path,
        *,
        settings: LightSettings | None = None,
        prefix: str = "light",
        group: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        """`group`: the thing group the devices join; default a new one, `<prefix>-fleet`, so that a
        job for the fleet reaches nothing else (the project's group also holds the seeded thing)."""
        self.cloud = cloud
        self.root = root
        self.settings = settings or LightSettings()
        self.prefix = prefix
        self.progress = progress
        self.devices: list[LightDevice] = []
        self.listeners: list[Listener] = []
        self._by_thing: dict[str, LightDevice] = {}
        self._s3 = cloud.client("s3")
        self._own_timers: ThreadedExecutor | None = None
        self.clock: Clock = self._device_clock()
        self.group = group or f"{prefix}-fleet"
        iot = cloud.moto.client("iot")
        if group is None:
            iot.create_thing_group(thingGroupName=self.group)
        self.group_arn = str(iot.describe_thing_group(thingGroupName=self.group)["thingGroupArn"])

    def _device_clock(self) -> Clock:
        if isinstance(self.cloud.clock, VirtualClock):
            return self.cloud.clock
        if self.cloud.broker is not None:
            return self.cloud.broker.executor  # the fake broker's own timer thread, in wall time
        self._own_timers = ThreadedExecutor(workers=0, name="fleet")  # one timer thread for all devices
        return self._own_timers

    @property
    def virtual(self) -> bool:
        return isinstance(self.clock, VirtualClock)

    # -- building ----------------------------------------------------------------------------------

    def provision(
        self, count: int, *, faults: Callable[[int], RuntimeFaults | None] | None = None, start: bool = True
    ) -> list[LightDevice]:
        """Create `count` more things in the project's group and their devices (started unless `start=False`)."""
        iot = self.cloud.moto.client("iot")  # unwatched: one bridge sync at the end, not one per call
        made: list[LightDevice] = []
        first = len(self.devices)
        for index in range(first, first + count):
            thing = f"{self.prefix}-{index:05d}"
            made_thing = iot.create_thing(thingName=thing)
            # By ARN: moto finds a thing or group given by name by scanning all of them (quadratic
            # over a fleet), by ARN with a dict lookup.
            iot.add_thing_to_thing_group(thingGroupArn=self.group_arn, thingArn=made_thing["thingArn"])
            device = LightDevice(
                thing,
                self.root / thing,
                buses=partial(self._bus, thing),
                stores=self._stores,
                clock=self.clock,
                settings=self.settings,
                faults=faults(index) if faults is not None else None,
                on_change=self._changed,
            )
            made.append(device)
            self.devices.append(device)
            self._by_thing[thing] = device
        self.cloud.bridge.sync()
        if start:
            for device in made:
                device.start()
        return made

    def _bus(self, thing: str, client_id: str) -> MessageBus:
        return self.cloud.device_bus(thing, client_id=client_id)

    def _stores(self, link: Link) -> Callable[[str], FileTransfer]:
        client = LinkedS3Client(self._s3, link)
        return lambda bucket: S3ObjectStore(client, bucket)

    def device(self, thing: str) -> LightDevice:
        return self._by_thing[thing]

    # -- running -----------------------------------------------------------------------------------

    def run_until(self, condition: Callable[[], bool], max_seconds: float, *, step: float = 1.0) -> bool:
        """Let the fleet work until `condition()` holds (True) or `max_seconds` of its time pass (False)."""
        with _fewer_collections():
            return self._run_until(condition, max_seconds, step)

    def _run_until(self, condition: Callable[[], bool], max_seconds: float, step: float) -> bool:
        deadline = self.clock.now() + max_seconds
        while not condition():
            now = self.clock.now()
            if now >= deadline:
                return False
            if isinstance(self.clock, VirtualClock):
                self.clock.advance(min(step, deadline - now))
            else:
                time.sleep(min(0.05, deadline - now))
            if self.progress is not None:
                self.progress.maybe_show(self.summary)
        if self.progress is not None:
            self.progress.maybe_show(self.summary, force=True)
        return True

    def run_for(self, seconds: float) -> None:
        self.run_until(lambda: False, seconds)

    # -- what the fleet did ------------------------------------------------------------------------

    def executions(self, job_id: str) -> list[dict[str, Any]]:
        """The job's executions as the data plane holds them (no boto3 pagination over 10,000)."""
        return self.cloud.plane.list_job_executions_for_job(job_id)

    def counts(self, job_id: str) -> Counter[str]:
        """Execution status -> how many devices of the fleet (a thing's latest execution)."""
        latest: dict[str, str] = {}
        for summary in self.executions(job_id):
            thing = str(summary["thingArn"]).rsplit("/", 1)[-1]
            if thing in self._by_thing:
                latest[thing] = str(summary["jobExecutionSummary"]["status"])
        return Counter(latest.values())

    def job_status(self, job_id: str) -> str:
        return str(self.cloud.plane.describe_job(job_id)["job"]["status"])

    def finished(self, job_id: str) -> bool:
        """The job is no longer IN_PROGRESS and no device is still working on it."""
        return self.job_status(job_id) != "IN_PROGRESS" and not any(
            d.current is not None and d.current.job_id == job_id for d in self.devices
        )

    def idle(self) -> bool:
        """No running device is talking to IoT Jobs or working on a job."""
        return not any(d.busy or d.current is not None for d in self.devices if d.alive)

    def served(self) -> Counter[str]:
        """ "<model> <version>" -> how many devices serve it."""
        return Counter(f"{name} {version}" for d in self.devices for name, version in d.served().items())

    def summary(self) -> str:
        busy = sum(1 for d in self.devices if d.current is not None)
        serving = ", ".join(f"{key}: {n}" for key, n in sorted(self.served().items())) or "nothing"
        return f"{len(self.devices)} devices, {busy} working on a job; serving {serving}"

    def errors(self) -> int:
        """Exceptions the drivers caught (a bug, never a fault the scenario injected)."""
        return sum(d.driver.errors for d in self.devices if d.driver is not None)

    def _changed(self, thing: str, state: JobState) -> None:
        for listener in self.listeners:
            listener(thing, state)

    # -- faults ------------------------------------------------------------------------------------

    def partition(self, devices: Iterable[LightDevice], start_in: float, duration: float) -> None:
        """Cut these devices off the network (MQTT and S3) from `start_in` for `duration` clock seconds."""
        devices = list(devices)
        broker = self.cloud.broker
        if broker is None:
            raise ConfigError("a partition needs the fake profile's simulated broker (local uses a real one)")
        now = self.clock.now()
        for device in devices:
            device.link.add_outage(now + start_in, now + start_in + duration)
        # A device's client id is its thing, from boot to boot, so a restart inside the window stays cut off.
        broker.faults.partition([device.thing for device in devices], duration, start_in=start_in)

    def close(self) -> None:
        for device in self.devices:
            device.stop()
        if self._own_timers is not None:
            self._own_timers.close()
