"""What `make bench-locust` loads: an Edge Agent in its own process and a device web UI over it, on loopback.

- the agent: `edgesim agent serve` on a unix socket in a child process (`AgentProcess`), as on a
  device, so that the web UI and the agent do not share a GIL;
- the classifier of the agent-overhead benchmark (224x224x3, random weights) exported into the
  device folder and named in its models_config.json, so that the device loads it into the agent at
  start-up, exactly as a device restores its models;
- a `DeviceApp` on the simulated `fake` cloud (moto and the broker in this process) with its web UI
  on 127.0.0.1 (a free port): `POST /api/predict` runs the real engine, preprocessing and
  post-processing over the agent. Its own inference loop is paused (`rate_hz` 0): the only
  inferences are the load test's. No segmentation model is deployed, so an upload runs the
  classifier only.

The agent target, the model identifier and the web UI's URL are printed and written to
`<out>/target.json`, and to `<out>/locust.conf` (locust's `--config` format, for the locustfile's
options and `--host`). It runs until SIGINT or SIGTERM, or `--seconds` (600 by default).

    python -m benchmarks.locust_target --out DIR [--seconds S] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.agent_overhead import MODEL_NAME, export_classifier
from benchmarks.agent_process import AgentProcess

THING = "locust-device"
DEFAULT_SECONDS = 600.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.locust_target",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for target.json and locust.conf (created)")
    parser.add_argument(
        "--seconds", type=float, default=DEFAULT_SECONDS, help="stop by itself after this long (default 600)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the model weights (default 0)")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def write_device_folder(root: Path, seed: int) -> dict[str, Any]:
    """The classifier package where a device keeps it, and a models_config.json naming it; returns its entry."""
    from system.edge.layout import DeviceLayout

    layout = DeviceLayout(root)
    package_dir = layout.package_dir("img-classification", "1")
    _, manifest = export_classifier(package_dir, seed)
    entry = {"name": manifest.name, "version": manifest.version, "identifier": MODEL_NAME}
    layout.models_config.write_text(json.dumps({"models": [entry]}))
    return {**entry, "inputs": [spec.describe() for spec in manifest.inputs], "package_dir": str(package_dir)}


def start_device(root: Path, agent_target: str, cloud: Any) -> Any:
    """A `DeviceApp` of THING on `cloud`'s bus and stores, over the agent at `agent_target`, web UI on a free port."""
    from simulators.camera import SyntheticCamera
    from system.adapters.agent_client import GrpcEdgeAgentClient
    from system.edge.device import DeviceApp, DeviceBackends
    from system.edge.device_config import DeviceConfig

    cloud.client("iot").create_thing(thingName=THING)
    config = DeviceConfig(thing_name=THING, root=root, rate_hz=0.0, web_host="127.0.0.1", web_port=0)
    client = GrpcEdgeAgentClient(agent_target)
    backends = DeviceBackends(
        bus=cloud.device_bus(THING),
        stores=cloud.object_store,
        client=client,
        source=SyntheticCamera(seed=0, size=(64, 64)),  # never read: the loop is paused
        agent_target=agent_target,
        closers=[client.close],
    )
    return DeviceApp(config, backends, profile="fake").start()


def publish_target(out: Path, target: dict[str, Any]) -> None:
    """target.json and locust.conf, each written whole then renamed: a poller never reads half a file."""
    out.mkdir(parents=True, exist_ok=True)
    conf = f"host = {target['host']}\nagent = {target['agent']}\nmodel = {target['model']}\n"
    for name, text in (("locust.conf", conf), ("target.json", json.dumps(target, indent=2) + "\n")):
        partial = out / f"{name}.tmp"
        partial.write_text(text)
        partial.replace(out / name)  # target.json last: its presence means both are there


def serve(args: argparse.Namespace, stop: threading.Event) -> int:
    from simulators.cloud import SimulatedCloud

    with tempfile.TemporaryDirectory(prefix="es-locust-") as scratch, AgentProcess(Path(scratch)) as agent:
        print(f"agent process {agent.pid} starting on {agent.target}; exporting the classifier", flush=True)
        model = write_device_folder(Path(scratch) / "device", args.seed)
        agent.wait_ready()
        with SimulatedCloud("fake") as cloud:
            device = start_device(Path(scratch) / "device", agent.target, cloud)
            try:
                if device.startup is None or device.startup.problems:
                    raise RuntimeError(f"the device could not load the model: {device.startup}")
                target = {
                    "agent": agent.target,
                    "model": model["identifier"],
                    "model_inputs": model["inputs"],
                    "package_dir": model["package_dir"],  # for a direct-call baseline on the same SavedModel
                    "host": str(device.web_url).rstrip("/"),
                    "pid": os.getpid(),
                    "agent_pid": agent.pid,
                }
                publish_target(args.out, target)
                print(f"agent {target['agent']}  model {target['model']}  host {target['host']}", flush=True)
                print(
                    f"ready: {args.out / 'target.json'}; running until SIGINT/SIGTERM or {args.seconds:g} s", flush=True
                )
                deadline = time.monotonic() + args.seconds
                while not stop.wait(0.5) and time.monotonic() < deadline:  # slices: signals run between them
                    pass
            finally:
                device.stop()
        print(f"stopped (agent exit code {agent.stop()})", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()  # the main thread leaves its wait and stops the device, then the agent

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return serve(args, stop)


if __name__ == "__main__":
    sys.exit(main())
