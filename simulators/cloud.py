"""SimulatedCloud: the composition root of the `fake` and `local` profiles (DESIGN.md section 2).

    with SimulatedCloud("fake") as cloud:
        jobs = cloud.jobs_control()              # boto3 IoT on moto
        device = cloud.device_bus(cloud.project.thing_name)
        ...

What each profile builds:

- `fake`: moto in-process (`mock_aws`) for S3, the IoT control plane and SageMaker; the in-process
  `SimulatedBroker` (devices are `InMemoryMessageBus` clients whose identity is their thing); the
  jobs data plane as a service of that broker (`BrokerJobsFrontend`).
- `local`: the moto server on 127.0.0.1 (`moto_port`, 0 = a free port); a broker of its own (a
  Mosquitto on a free loopback port, mutual TLS, the per-thing ACL of `simulators.mosquitto`, a
  fresh local CA that issues the plane's and each thing's certificate; its files in `broker_folder`
  or a temporary folder), or the broker at `mqtt_url` when given; clients are `PahoMessageBus`es;
  the jobs data plane is a client of that broker (`BusJobsFrontend`, identity `cloud`).

The broker can be chosen apart from moto (`mqtt="local"` with the fake profile, or
`EDGESIM_MQTT_BACKEND=local` through `from_settings`): moto in-process with a real Mosquitto.
Both add a `MotoJobsBridge` between moto and the plane, and the project's seed resources
(`simulators.moto_seed`: bucket, thing, thing group, certificate, policy, registry groups).

Limits: moto's state is global to the process (see `MotoEnvironment`): run one cloud at a time in a
process, and know that starting or stopping a `fake` cloud clears every moto backend. On `local`,
the plane is an ordinary client of the broker, so its replies reach every subscriber of the reply
topic the ACL lets read it (on the cloud's own broker: the requesting thing and the plane; on a
plain broker: everyone; DESIGN.md section 3.2); it needs read and write rights on
`$aws/things/+/jobs/#` (over mutual TLS its certificate's CN is `cloud`). The seeded IoT
certificate is signed by moto's CA, not by a TLS broker's: devices on a TLS Mosquitto use
certificates from `tls` (a `TlsMaterial` issues one per thing; `device_mqtt_config` writes the
`mqtt` section of a device config with them). A plain `mqtt://` broker is only used when asked for
by `mqtt_url`; devices then need `mqtt.allow_plaintext`.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from simulators.broker import InMemoryMessageBus, Policy, SimulatedBroker, ThingPolicy
from simulators.certificates import TlsMaterial, create_tls_material
from simulators.iot_jobs.dataplane import JobsDataPlane
from simulators.iot_jobs.frontends import BrokerJobsFrontend, BusJobsFrontend
from simulators.iot_jobs.moto_bridge import MotoJobsBridge
from simulators.iot_jobs.records import StateChange
from simulators.mosquitto import PRIVILEGED_IDENTITY, THING_ACL, MosquittoProcess
from simulators.moto_env import MotoEnvironment
from simulators.moto_seed import SeededProject
from system.adapters.iot_jobs_control import IotJobsControl
from system.adapters.paho_bus import PahoMessageBus
from system.adapters.s3_object_store import S3ObjectStore
from system.adapters.sagemaker_registry import SageMakerModelRegistry
from system.adapters.tls import TlsFiles
from system.clock import WallClock
from system.config import Settings
from system.errors import ConfigError, EdgesimError
from system.ports import Clock, MessageBus

PROFILES = ("fake", "local")
JOBS_IDENTITY = PRIVILEGED_IDENTITY  # the data plane's MQTT identity (the ACL's privileged one)
T = TypeVar("T")


class SimulatedCloudError(EdgesimError):
    """The simulated cloud is not started (or already stopped)."""


@dataclass(frozen=True)
class BrokerAddress:
    """An MQTT broker URL: `mqtt://HOST[:PORT]` (TCP, 1883) or `mqtts://HOST[:PORT]` (TLS, 8883)."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"broker URL must look like mqtt://HOST:PORT or mqtts://HOST:PORT, not {url!r}")
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigError(f"broker URL {url!r}: {exc}") from exc
        tls = parts.scheme == "mqtts"
        return cls(parts.hostname, port or (8883 if tls else 1883), tls)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


class SimulatedCloud:
    """The fake cloud of one profile: moto, a broker, the jobs data plane, seeded resources.

    `clock` drives the plane's timers and, on `fake`, the broker (a `VirtualClock` makes both
    deterministic: nothing moves until it is advanced). On `local` without `mqtt_url` it starts its
    own TLS Mosquitto (`mosquitto`, files in `broker_folder`, default a temporary folder removed at
    stop); with `mqtt_url`, `tls` (for an `mqtts://` broker) is a `TlsMaterial` (it issues the
    plane's and each device's certificate) or the plane's own `TlsFiles` (devices then pass theirs to
    `device_bus`). `policy` is the simulated broker's authorization (default: devices stay under
    their own `$aws/things/<thing>/` and `edgesim/<thing>/`).
    """

    def __init__(
        self,
        profile: str = "fake",
        *,
        clock: Clock | None = None,
        mqtt_url: str | None = None,
        tls: TlsMaterial | TlsFiles | None = None,
        project: str = "edgesim",
        region: str = "us-east-1",
        moto_port: int = 0,
        poll_interval: float = 0.2,
        policy: Policy | None = None,
        mqtt: str | None = None,
        broker_folder: Path | None = None,
    ) -> None:
        """`profile` picks moto's mode; `mqtt` (default: the profile) picks the broker on its own:
        "fake" the in-process SimulatedBroker, "local" a real one (its own TLS Mosquitto, or `mqtt_url`)."""
        mqtt = mqtt or profile
        for name, value in (("profile", profile), ("mqtt", mqtt)):
            if value not in PROFILES:
                raise ConfigError(f"a simulated cloud's {name} is one of {', '.join(PROFILES)}, not {value!r}")
        if mqtt == "fake" and (mqtt_url is not None or tls is not None or broker_folder is not None):
            raise ConfigError("the fake broker is in-process: mqtt_url, tls and broker_folder are for a local broker")
        if mqtt_url is None and tls is not None:
            raise ConfigError("tls is for the broker at mqtt_url: without one the cloud makes its own PKI")
        if mqtt_url is not None and broker_folder is not None:
            raise ConfigError("broker_folder is for the cloud's own broker: not with mqtt_url")
        self.profile = profile
        self.mqtt = mqtt
        self.address = BrokerAddress.parse(mqtt_url) if mqtt == "local" and mqtt_url is not None else None
        if self.address is not None and self.address.tls != (tls is not None):
            raise ConfigError("an mqtts:// broker needs tls, and tls needs an mqtts:// broker")
        self.tls = tls
        self.owns_broker = mqtt == "local" and mqtt_url is None
        self.broker_folder = broker_folder
        self.mosquitto: MosquittoProcess | None = None  # the cloud's own broker, while it runs
        self._temporary_folder: Path | None = None
        self.project_name = project
        self.region = region
        self.moto_port = moto_port
        self.poll_interval = poll_interval
        self.policy = policy or ThingPolicy(privileged=(JOBS_IDENTITY,))
        self._clock: Clock = clock or WallClock()
        self._moto: MotoEnvironment | None = None
        self._project: SeededProject | None = None
        self._bridge: MotoJobsBridge | None = None
        self.broker: SimulatedBroker | None = None
        self._frontend: BrokerJobsFrontend | BusJobsFrontend | None = None
        self._jobs_bus: PahoMessageBus | None = None
        self._buses: list[MessageBus] = []

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SimulatedCloud:
        """The cloud of `settings` (fake or local); `options` as for the constructor.

        `EDGESIM_MQTT_BACKEND` may pick the broker apart from the rest (e.g. moto in-process with a
        real Mosquitto). The object store, jobs and registry ports share one moto, so their
        backends must agree; the aws backend is refused (there is nothing to simulate).
        """
        moto_ports = {port: settings.backend_for(port) for port in ("object_store", "jobs", "registry")}
        mqtt = settings.backend_for("mqtt")
        if "aws" in (*moto_ports.values(), mqtt):
            raise ConfigError("a simulated cloud serves the fake and local backends, not aws")
        if len(set(moto_ports.values())) > 1:
            raise ConfigError(
                f"object_store, jobs and registry share one moto: their backends must agree, not {moto_ports}"
            )
        return cls(moto_ports["object_store"], mqtt=mqtt, **options)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SimulatedCloud:
        """Start moto, the broker side and the bridge, then seed the project; returns self."""
        if self._moto is not None:
            raise ConfigError("this simulated cloud is already started")
        mode = "inprocess" if self.profile == "fake" else "server"
        self._moto = MotoEnvironment(mode, self.region, port=self.moto_port).start()
        try:
            options = {"region": self.region, "account": self._moto.account_id, "observer": self._observe}
            self._frontend = self._start_fake(options) if self.mqtt == "fake" else self._start_local(options)
            self._bridge = MotoJobsBridge(self._frontend.plane, self._moto, poll_interval=self.poll_interval)
            self._project = self._moto.seed_project(self.project_name)
            self._bridge.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_fake(self, options: dict[str, Any]) -> BrokerJobsFrontend:
        self.broker = SimulatedBroker(clock=self._clock, policy=self.policy, name=f"{self.project_name}-broker")
        return BrokerJobsFrontend(self.broker, self._clock, **options)

    def _start_local(self, options: dict[str, Any]) -> BusJobsFrontend:
        if self.owns_broker:
            self._start_own_broker()
        assert self.address is not None
        tls = self.tls.client(JOBS_IDENTITY) if isinstance(self.tls, TlsMaterial) else self.tls
        client_id = f"edgesim-jobs-{self.project_name}-{uuid.uuid4().hex[:8]}"
        self._jobs_bus = PahoMessageBus(self.address.host, self.address.port, client_id, tls)
        frontend = BusJobsFrontend(self._jobs_bus, self._clock, **options)  # subscribes before connecting
        self._jobs_bus.connect()
        return frontend

    def _start_own_broker(self) -> None:
        """A Mosquitto on a free loopback port: mutual TLS (a fresh CA), the per-thing ACL."""
        folder = self.broker_folder
        if folder is None:
            folder = self._temporary_folder = Path(tempfile.mkdtemp(prefix="edgesim-broker-"))
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)  # the CA key lives here
        # A fresh CA each start (moto's state is new too): client certificates of an earlier run's CA,
        # which TlsMaterial.client would otherwise hand out again, must not survive it.
        shutil.rmtree(folder / "pki", ignore_errors=True)
        material = create_tls_material(folder / "pki")
        self.mosquitto = MosquittoProcess(folder / "mosquitto", tls=material, acl=THING_ACL)
        try:
            self.mosquitto.start()
        except EdgesimError as exc:
            raise ConfigError(f"{exc}; or give the cloud a broker URL of yours (mqtt_url, --mqtt-url)") from exc
        self.tls = material
        self.address = BrokerAddress.parse(self.mosquitto.url)

    def stop(self) -> None:
        """Close the buses it made, then the bridge, the plane, the broker and moto. Idempotent."""
        buses, self._buses = self._buses, []
        for bus in buses:
            bus.close()
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
        if self._frontend is not None:
            self._frontend.close()
            self._frontend = None
        if self._jobs_bus is not None:
            self._jobs_bus.close()
            self._jobs_bus = None
        if self.broker is not None:
            self.broker.close()
            self.broker = None
        if self.mosquitto is not None:
            self.mosquitto.stop()
            self.mosquitto = None
            self.address, self.tls = None, None
        if self._temporary_folder is not None:
            shutil.rmtree(self._temporary_folder, ignore_errors=True)
            self._temporary_folder = None
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._project = None

    def __enter__(self) -> SimulatedCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _observe(self, change: StateChange) -> None:
        if self._bridge is not None:
            self._bridge.observe(change)

    # -- what it runs --------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def moto(self) -> MotoEnvironment:
        return _started(self._moto)

    @property
    def project(self) -> SeededProject:
        """The seeded project's names, ARNs and device credentials."""
        return _started(self._project)

    @property
    def bridge(self) -> MotoJobsBridge:
        return _started(self._bridge)

    @property
    def plane(self) -> JobsDataPlane:
        """The `JobsDataPlane` (for fault injection: `plane.inject_error`, a `Behaviour`...)."""
        if self._frontend is None:
            raise SimulatedCloudError("start the simulated cloud first")
        return self._frontend.plane

    @property
    def endpoint_url(self) -> str | None:
        """The moto server's URL on `local`; None on `fake` (in-process clients need none)."""
        return self.moto.endpoint_url

    @property
    def mqtt_url(self) -> str | None:
        """The broker's URL on `local` (the cloud's own broker: once started); None on `fake`."""
        return self.address.url if self.address is not None else None

    def device_mqtt_config(self, thing: str) -> dict[str, Any]:
        """The `mqtt` section of an `edgesim device run` config for `thing` on this cloud's broker.

        Over TLS: the broker URL and the thing's certificate from the cloud's `TlsMaterial`. On a
        plain broker (only when `mqtt_url` asked for one): the URL and `allow_plaintext`, without
        which the device refuses it.
        """
        if self.address is None:
            raise SimulatedCloudError("the device config needs a real broker: a started local cloud")
        if not self.address.tls:
            return {"url": self.address.url, "allow_plaintext": True}
        if not isinstance(self.tls, TlsMaterial):
            raise ConfigError(f"this cloud holds no certificate for {thing}: the broker's PKI is not its own")
        files = self.tls.client(thing)
        assert files.cert is not None and files.key is not None  # TlsMaterial.client issues both
        paths = {"ca": files.ca, "cert": files.cert, "key": files.key}
        return {"url": self.address.url, "tls": {name: str(path.resolve()) for name, path in paths.items()}}

    # -- port factories ------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client on this cloud; an IoT client syncs the jobs bridge after each change it makes."""
        client = self.moto.client(service)
        return self.bridge.watch(client) if service == "iot" else client

    def object_store(self, bucket: str | None = None) -> S3ObjectStore:
        """S3 on moto: the project bucket, or `bucket`."""
        return S3ObjectStore(self.client("s3"), bucket or self.project.bucket)

    def jobs_control(self) -> IotJobsControl:
        return IotJobsControl(self.client("iot"))

    def registry(self) -> SageMakerModelRegistry:
        return SageMakerModelRegistry(self.client("sagemaker"))

    def device_bus(self, thing: str, client_id: str | None = None, *, tls: TlsFiles | None = None) -> MessageBus:
        """A device's MessageBus, not yet connected (subscribe, then `connect()`); closed by `stop()`.

        `fake`: an `InMemoryMessageBus` whose identity is the thing (the broker's policy applies).
        `local`: a `PahoMessageBus` to the broker; over TLS with `tls`, or the thing's certificate
        from the cloud's `TlsMaterial`.
        """
        client_id = client_id or thing
        bus: MessageBus
        if self.mqtt == "fake":
            bus = InMemoryMessageBus(_started(self.broker), client_id, identity=thing)
        else:
            assert self.address is not None
            _started(self._moto)
            if tls is None and self.address.tls:
                if not isinstance(self.tls, TlsMaterial):
                    raise ConfigError(f"the broker needs TLS: pass the TlsFiles of {thing}")
                tls = self.tls.client(thing)
            bus = PahoMessageBus(self.address.host, self.address.port, client_id, tls)
        self._buses.append(bus)
        return bus


def _started(part: T | None) -> T:
    if part is None:
        raise SimulatedCloudError("start the simulated cloud first")
    return part
