"""Soak: a device under steady Predict load for minutes while it is upgraded again and again and its
broker drops every connection at random, then the checks a long-running device must pass.

What runs (all on loopback): the local cloud (moto server, the IoT Jobs data plane, its own
Mosquitto with mutual TLS and the per-thing ACL, the device on the thing's certificate), an Edge
Agent process and an edge app process (`edgesim agent serve`, `edgesim device run --profile local`)
as on a device. For `--minutes`:

- load: `POST /api/predict` with a camera image at `--rate` requests a second (the device's own path:
  its roster, its agent client, the swap retry); every failure is recorded with its time and reason;
- upgrades: a new img-classification version by IoT job every `--upgrade-every` seconds (each job
  must end SUCCEEDED);
- disconnects: the broker restarts at random moments (seeded, `--disconnect-every` seconds apart on
  average), dropping the device's and the plane's connections.

Every 5 s it samples, for the agent and the app process, resident memory (VmRSS), threads and open
file descriptors, and the System V shared-memory segments of the machine. The verdict: no failed
Predict; memory after the last upgrade no more than `--rss-bound-mb` above memory after the first
(a warmed-up device); threads and descriptors back within a few of that baseline; no shared-memory
segment left over. Results go to `benchmarks/results/soak.json`; `make soak` runs it (RELIABILITY.md
reports it). The run is bounded: the load loop stops at the deadline, every wait has a timeout.

    python -m benchmarks.soak [--minutes 3] [--rate 10] [--upgrade-every 30] [--disconnect-every 40]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.agent_process import AgentProcess, log_tail, stop_child
from simulators.cloud import SimulatedCloud
from simulators.harness.world import PackageCache, World
from simulators.model_zoo import write_images
from simulators.mosquitto import MosquittoProcess

SAMPLE_SECONDS = 5.0
THREAD_SLACK, FD_SLACK = 4, 8  # a reconnect in flight or a pooled connection at the moment of the sample


def process_sample(pid: int) -> dict[str, int]:
    """VmRSS in kB, thread count and open descriptors of `pid` (Linux /proc)."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {
        "rss_kb": int(status["VmRSS"].split()[0]),
        "threads": int(status["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def sample(pids: dict[str, int], at: float, **marks: bool) -> dict[str, Any]:
    """One sample of every process, `at` seconds into the run (`baseline=True`, `final=True` mark one)."""
    return {"at": round(at, 1), **marks, **{name: process_sample(pid) for name, pid in pids.items()}}


def shm_segments() -> int:
    """System V shared-memory segments on this machine (the agent's shared-memory inputs use them)."""
    try:
        return max(0, len(Path("/proc/sysvipc/shm").read_text().splitlines()) - 1)
    except OSError:
        return 0


class DeviceProcess:
    """`edgesim device run --profile local` with its log in a file; `url` is its web UI once started."""

    def __init__(self, config: Path, log: Path) -> None:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "TF_CPP_MIN_LOG_LEVEL": "3"}  # fmt: skip
        command = [sys.executable, "-m", "system.cli", "--log-format", "text", "device", "run"]
        command += ["--profile", "local", "--config", str(config)]
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while True:
            text = log.read_text(errors="replace")
            if "web UI: " in text:
                self.url = text.split("web UI: ", 1)[1].split()[0]
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the device did not start:\n{log_tail(log, 30, missing='(no log)')}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        return stop_child(self.process, 30, self.process.kill)  # type: ignore[arg-type]


class Load(threading.Thread):
    """POST /api/predict at `rate` per second until `stop`; records every failure."""

    def __init__(self, url: str, image: bytes, rate: float) -> None:
        super().__init__(name="soak-load", daemon=True)
        self.url, self.image, self.period = url.rstrip("/") + "/api/predict", image, 1.0 / rate
        self.stop = threading.Event()
        self.sent = 0
        self.failures: list[dict[str, Any]] = []
        self.started = time.monotonic()

    def run(self) -> None:
        due = time.monotonic()
        while not self.stop.is_set():
            self._one()
            due += self.period
            self.stop.wait(max(0.0, due - time.monotonic()))

    def _one(self) -> None:
        self.sent += 1
        request = urllib.request.Request(self.url, data=self.image, headers={"Content-Type": "image/png"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = json.loads(response.read())
            if body.get("classification") is None:
                raise ValueError("no classification in the answer")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.failures.append({"at": round(time.monotonic() - self.started, 2), "error": str(exc)[:200]})


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    agent = AgentProcess(folder / "a")
    (folder / "a").mkdir()
    # The local profile's own broker: Mosquitto with mutual TLS and the per-thing ACL.
    with SimulatedCloud("local", project=f"soak-{os.getpid()}", broker_folder=folder / "broker") as cloud:
        broker = cloud.mosquitto
        assert broker is not None
        world = World(cloud, PackageCache(folder / "packages"), folder, "local")
        agent.start()
        agent.wait_ready()
        images = folder / "images"
        write_images(images, 4)
        config = folder / "device.json"
        config.write_text(json.dumps({
            "thing_name": world.thing, "root": str(folder / "device"),
            "agent": {"target": agent.target, "check_interval": 1.0},
            "mqtt": cloud.device_mqtt_config(world.thing), "object_store": {"endpoint_url": cloud.endpoint_url},
            "inference": {"source": {"type": "folder", "path": str(images)}, "rate_hz": 5},
            "telemetry": {"flush_interval": 1.0}, "web": {"port": 0},
        }))  # fmt: skip
        device = DeviceProcess(config, folder / "device.log")
        try:
            return _soak(args, rng, world, broker, agent, device, images)
        finally:
            device.stop()
            agent.stop()


def _soak(
    args: argparse.Namespace,
    rng: random.Random,
    world: World,
    broker: MosquittoProcess,
    agent: AgentProcess,
    device: DeviceProcess,
    images: Path,
) -> dict[str, Any]:
    assert agent.pid is not None
    pids = {"agent": agent.pid, "device": device.process.pid}
    first = world.wait_job(world.deploy(world.document("img-classification", "1")), timeout=120)
    if first["status"] != "SUCCEEDED":
        raise RuntimeError(f"the first deployment ended {first['status']}")
    shm_before = shm_segments()
    load = Load(device.url, next(iter(sorted(images.rglob("*.png")))).read_bytes(), args.rate)
    samples: list[dict[str, Any]] = []
    upgrades: list[dict[str, Any]] = []
    disconnects: list[float] = []
    started = time.monotonic()
    deadline = started + args.minutes * 60
    next_upgrade, next_disconnect, next_sample = (
        started + args.upgrade_every,
        started + rng.expovariate(1 / args.disconnect_every),
        started,
    )
    version = 1
    load.start()
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_sample:
            samples.append(sample(pids, now - started))
            next_sample += SAMPLE_SECONDS
        if now >= next_disconnect:
            broker.restart()
            disconnects.append(round(time.monotonic() - started, 1))
            next_disconnect = time.monotonic() + rng.expovariate(1 / args.disconnect_every)
        if now >= next_upgrade:
            version += 1
            job = world.deploy(world.document("img-classification", str(version)))
            status = world.wait_job(job, timeout=180)["status"]
            upgrades.append({"version": str(version), "status": status, "at": round(time.monotonic() - started, 1)})
            if len(upgrades) == 1:
                samples.append(sample(pids, time.monotonic() - started, baseline=True))
            next_upgrade = time.monotonic() + args.upgrade_every
        time.sleep(0.05)
    load.stop.set()
    load.join(60)
    samples.append(sample(pids, time.monotonic() - started, final=True))
    return _verdict(args, load, samples, upgrades, disconnects, shm_before, time.monotonic() - started)


def _verdict(
    args: argparse.Namespace,
    load: Load,
    samples: list[dict[str, Any]],
    upgrades: list[dict[str, Any]],
    disconnects: list[float],
    shm_before: int,
    seconds: float,
) -> dict[str, Any]:
    baseline = next((s for s in samples if s.get("baseline")), samples[0])
    final = samples[-1]
    growth = {k: round((final[k]["rss_kb"] - baseline[k]["rss_kb"]) / 1024, 1) for k in ("agent", "device")}
    checks = {
        "no failed Predict": not load.failures,
        "every upgrade SUCCEEDED": bool(upgrades) and all(u["status"] == "SUCCEEDED" for u in upgrades),
        f"memory growth after warm-up <= {args.rss_bound_mb} MB per process": all(
            g <= args.rss_bound_mb for g in growth.values()
        ),
        f"threads back within {THREAD_SLACK}": all(
            final[k]["threads"] <= baseline[k]["threads"] + THREAD_SLACK for k in ("agent", "device")
        ),
        f"file descriptors back within {FD_SLACK}": all(
            final[k]["fds"] <= baseline[k]["fds"] + FD_SLACK for k in ("agent", "device")
        ),
        "no shared-memory segment left": shm_segments() <= shm_before,
    }
    return {
        "minutes": round(seconds / 60, 2),
        "settings": {"rate": args.rate, "upgrade_every": args.upgrade_every,
                     "disconnect_every": args.disconnect_every, "seed": args.seed, "rss_bound_mb": args.rss_bound_mb},
        "predicts": load.sent,
        "failed": load.failures,
        "upgrades": upgrades,
        "disconnects": disconnects,
        "rss_growth_mb": growth,
        "samples": samples,
        "checks": checks,
        "passed": all(checks.values()),
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long the load runs (default 3)")
    parser.add_argument("--rate", type=float, default=10.0, help="Predict requests per second (default 10)")
    parser.add_argument("--upgrade-every", type=float, default=30.0, help="seconds between upgrades (default 30)")
    parser.add_argument("--disconnect-every", type=float, default=40.0, help="mean seconds between broker restarts")
    parser.add_argument("--rss-bound-mb", type=float, default=64.0, help="allowed memory growth per process")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/soak.json", help="the results file")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server's access log: one line per request
    with tempfile.TemporaryDirectory(prefix="es-soak-") as folder:
        result = run(args, Path(folder))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"soak: {result['minutes']} min, {result['predicts']} Predicts, {len(result['failed'])} failed, "
          f"{len(result['upgrades'])} upgrades, {len(result['disconnects'])} broker restarts, "
          f"memory growth {result['rss_growth_mb']} MB")  # fmt: skip
    for name, ok in result["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
