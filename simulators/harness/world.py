"""A simulated cloud, real agents and devices with real small models: what scenarios and tests drive.

`World` owns one `SimulatedCloud` (fake or local) with its seeded project and thing, exports tiny
model packages on demand (`PackageCache`), uploads their archives and makes job documents, creates
IoT jobs, and starts, kills and restarts `DeviceApp`s that share one device folder (so a restart
finds what the last run left: models_config.json, the journal, partial downloads).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from simulators.camera import SyntheticCamera
from simulators.cloud import SimulatedCloud
from simulators.fleet.packages import light_archive
from simulators.model_zoo import export_broken_package, export_classifier_package, export_segmenter_package
from system.adapters.agent_client import GrpcEdgeAgentClient
from system.agent.server import EdgeAgent
from system.config import AgentSettings, CaptureSettings
from system.edge.device import DeviceApp, DeviceBackends
from system.edge.device_config import DeviceConfig
from system.errors import EdgesimError
from system.ports import JobSpec

TERMINAL = ("SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "CANCELED", "REMOVED")
EXPORTERS = {
    "img-classification": export_classifier_package,
    "unet": export_segmenter_package,
    "broken": export_broken_package,
}


class PackageCache:
    """Exported packages by (kind, version), built once per session (a Keras export takes ~1 s)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[tuple[str, str], Path] = {}

    def folder(self, kind: str, version: str) -> Path:
        key = (kind, version)
        if key not in self._made:
            folder = self.root / f"{kind}-{version}"
            EXPORTERS[kind](folder, version)
            self._made[key] = folder
        return self._made[key]


def tar_folder(folder: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The package folder as a .tar.gz with members at its root (how the device extracts it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class World:
    """One simulated cloud, one thing, and the devices (restarted at will) that serve it."""

    def __init__(
        self, cloud: SimulatedCloud, packages: PackageCache, root: Path, profile: str, *, job_prefix: str | None = None
    ) -> None:
        """`job_prefix` makes job ids `<prefix>-<n>` (reproducible); without it they carry a random
        part, because moto's state can outlive one world in a process (a moto server's does)."""
        self.job_prefix = job_prefix
        self.cloud = cloud
        self.packages = packages
        self.root = root
        self.profile = profile
        self.thing = cloud.project.thing_name
        self.jobs = cloud.jobs_control()
        self.store = cloud.object_store()
        self.devices: list[DeviceApp] = []
        self._agents: list[tuple[EdgeAgent, GrpcEdgeAgentClient]] = []
        self._count = 0
        self._scratch: Path | None = None
        self.closers: list[Callable[[], None]] = []  # run first by close() (fleets)

    # -- cloud side ----------------------------------------------------------------------------

    def document(
        self,
        model: str,
        version: str,
        *,
        kind: str | None = None,
        archive: bytes | None = None,
        sha256: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Upload a package archive and return the job document naming it."""
        data = archive if archive is not None else tar_folder(self.packages.folder(kind or model, version))
        key = f"models/{model}-{version}-{self._next()}.tar.gz"
        self.store.put_bytes(key, data)
        document = {
            "type": "new_model",
            "model_name": model,
            "model_version": version,
            "model_package_bucket": self.cloud.project.bucket,
            "model_package_key": key,
            "sha256": sha256 or hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        document.update(fields)
        return {k: v for k, v in document.items() if v is not None}

    def light_document(self, model: str, version: str, **fields: Any) -> dict[str, Any]:
        """Upload a light package (`simulators.fleet.packages`: for light devices) and return its document."""
        archive = light_archive(self.scratch("light-packages"), model, version)
        return self.document(model, version, archive=archive, **fields)

    def deploy(self, document: dict[str, Any], *, targets: list[str] | None = None, **configs: Any) -> str:
        """Create a job for `targets` (default: the seeded thing); `configs` are JobSpec fields
        (rollout, abort, timeout, retry, target_selection)."""
        n = self._next()
        job_id = f"{self.job_prefix}-{n}" if self.job_prefix else f"job-{n}-{uuid.uuid4().hex[:8]}"
        targets = targets or [self.cloud.project.thing_arn]
        self.jobs.create_job(JobSpec(job_id=job_id, targets=targets, document=document, **configs))
        return job_id

    def scratch(self, name: str) -> Path:
        """A folder for fleets and light packages: on tmpfs when there is one (see `simulators.fleet.fleet`)."""
        if self._scratch is None:
            shm = Path("/dev/shm")
            base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
            self._scratch = Path(tempfile.mkdtemp(prefix="edgesim-", dir=base))
        folder = self._scratch / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def wait_job(self, job_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """The job's execution on the seeded thing, once terminal (TimeoutError after `timeout`)."""
        return self.wait_job_on(job_id, self.thing, timeout)

    def _next(self) -> int:
        self._count += 1
        return self._count

    # -- device side ---------------------------------------------------------------------------

    def agent(self, *, capture_to_s3: bool = False) -> tuple[EdgeAgent, GrpcEdgeAgentClient]:
        """A fresh agent; its captures go to the project bucket ("Cloud") or a local folder ("Disk")."""
        n = len(self._agents)
        capture = CaptureSettings(
            destination="Cloud" if capture_to_s3 else "Disk",
            disk_path=str(self.root / "capture"),
            bucket=self.cloud.project.bucket,
            fleet_name="line-1",
            device_name=self.thing,
            push_period_seconds=0.2,
        )
        settings = AgentSettings(socket_path=str(self.root / f"a{n}.sock"), grace_seconds=2.0, capture=capture)
        agent = EdgeAgent(settings, capture_store=self.store if capture_to_s3 else None)
        client = GrpcEdgeAgentClient(agent.start())
        self._agents.append((agent, client))
        return agent, client

    def restart_agent(self, agent: tuple[EdgeAgent, GrpcEdgeAgentClient]) -> tuple[EdgeAgent, GrpcEdgeAgentClient]:
        """A fresh agent, holding no models, on the socket and settings of `agent`, as systemd starts
        one after a crash. The old one is stopped at once if it still runs; the returned pair keeps
        its client, whose channel reconnects to the new agent by itself."""
        old, client = agent
        old.stop(grace=0)
        to_s3 = old.settings.capture.destination == "Cloud"
        fresh = EdgeAgent(old.settings, capture_store=self.store if to_s3 else None)
        fresh.start()
        restarted = (fresh, client)
        known = [i for i, (each, _) in enumerate(self._agents) if each is old]
        if known:
            self._agents[known[0]] = restarted  # close() stops the new agent, and closes the client once
        else:
            self._agents.append(restarted)
        return restarted

    def add_thing(self, name: str) -> str:
        """A new thing in the project's thing group (a group job reaches it); returns its name."""
        iot = self.cloud.client("iot")
        iot.create_thing(thingName=name)
        iot.add_thing_to_thing_group(thingGroupName=self.cloud.project.thing_group_name, thingName=name)
        return name

    def start_device(
        self,
        *,
        agent: tuple[EdgeAgent, GrpcEdgeAgentClient] | None = None,
        thing: str | None = None,
        camera_seed: int = 1,
        **overrides: Any,
    ) -> DeviceApp:
        """A device of `thing` (default: the seeded one) on its own folder, which a restart of the
        same thing finds again, with a fresh agent unless `agent` is given."""
        thing = thing or self.thing
        _, client = agent or self.agent()
        config = DeviceConfig(
            thing_name=thing,
            root=self.root / ("device" if thing == self.thing else f"device-{thing}"),
            rate_hz=20.0,
            web_enabled=False,
            telemetry_flush_interval=0.2,
            metrics_interval=0.5,
        )
        config = replace(config, **overrides)
        backends = DeviceBackends(
            bus=self.cloud.device_bus(thing, client_id=f"{thing}-{self._next()}"),
            stores=self.cloud.object_store,
            client=client,
            source=SyntheticCamera(seed=camera_seed, size=(64, 64)),
            agent_target=client.target,
        )
        device = DeviceApp(config, backends, profile=self.profile).start()
        self.devices.append(device)
        return device

    def wait_job_on(self, job_id: str, thing: str, timeout: float = 90.0) -> dict[str, Any]:
        """The job's execution on `thing`, once terminal."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                execution = self.jobs.describe_job_execution(job_id, thing)
            except EdgesimError:  # a group job's execution appears once the data plane has taken it
                execution = {"status": "not created yet"}
            if execution["status"] in TERMINAL:
                return execution
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} on {thing} still {execution['status']} after {timeout} s")
            time.sleep(0.05)

    def close(self) -> None:
        for closer in self.closers:
            closer()
        for device in self.devices:
            device.stop()
        for agent, client in self._agents:
            client.close()
            agent.stop(grace=1.0)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
