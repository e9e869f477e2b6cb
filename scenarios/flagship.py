"""The flagship demo: from synthetic data to a fleet serving, then an upgrade under load.

With no AWS and no download, on the embedded fake profile:

1. generate a KolektorSDD2-like data set (synthetic surfaces, some with scratches and spots);
2. run both training pipelines (pre-process, train briefly on CPU, evaluate, gate on F1 / Dice,
   package as SavedModel + TFLite, register version 1 in the model registry);
3. start a small fleet in the thing group: full devices (a real Edge Agent and the edge app; one by
   default) and light devices (the same OTA code on a simulated model runtime; 20 by default);
4. deploy both models to the group by IoT job and wait until every device reports SUCCEEDED;
5. let the full devices classify and segment camera frames continuously;
6. retrain the classifier (version 2) and deploy it under load: no inference may fail;
7. print the web UI of the first device, the report and a summary, and keep the UI up until Ctrl-C
   (`--no-serve` exits instead, for CI).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from simulators.cloud import SimulatedCloud
from simulators.cloud_profile import cloud_backends
from simulators.fleet.fleet import Fleet
from simulators.harness.world import PackageCache, World
from simulators.surfaces import write_dataset
from system.cloud.deploy import DeploymentConfig, deploy_report
from system.cloud.edge_package import PackageReport, package_key
from system.cloud.pipeline.backends import CloudBackends
from system.cloud.pipeline.pipelines import PipelineOptions, run_pipeline
from system.cloud.pipeline.progress import Progress
from system.edge.device import DeviceApp


def _deploy(
    backends: CloudBackends, world: World, model: str, version: str, devices: list[DeviceApp], fleet: Fleet
) -> dict[str, Any]:
    """Deploy a registered version to the thing group; every device's execution status."""
    raw = json.loads(backends.store.get_bytes(package_key("models", model, version, "package-report.json")))
    rollout = DeploymentConfig(rollout={"maximumPerMinute": 100})
    job_id = deploy_report(backends.jobs, PackageReport.from_dict(raw), targets=backends.targets, config=rollout)
    full = [str(world.wait_job_on(job_id, d.config.thing_name)["status"]) for d in devices]
    fleet.run_until(lambda: fleet.finished(job_id), 300)
    return {"full": full, "light": dict(fleet.counts(job_id))}


def run(
    out: Path,
    *,
    devices: int = 1,
    light_devices: int = 20,
    train_images: int = 160,
    epochs: int = 40,
    seed: int = 0,
    serve: bool = True,
    web_port: int = 8080,
    stream: TextIO | None = None,
    stop: threading.Event | None = None,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the demo; `gate` overrides the pipelines' gate thresholds (a quick test run trains too briefly)."""
    say = (stream or sys.stdout).write
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"devices": devices, "light_devices": light_devices, "seed": seed}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="es-") as short, SimulatedCloud("fake", project="demo") as cloud:
        backends = cloud_backends(cloud)
        world = World(cloud, PackageCache(Path(short) / "packages"), Path(short), "fake", job_prefix="demo")
        try:
            say("[1/7] generating synthetic KolektorSDD2-like data\n")
            shutil.rmtree(out / "data", ignore_errors=True)  # the generator never mixes two data sets
            data = write_dataset(
                out / "data", train_images, train_images // 2, defect_rate=0.25, seed=seed, size=(64, 160)
            )
            report["data"] = {"train": data.train.images, "test": data.test.images}
            say("[2/7] training pipelines (classification, then segmentation)\n")
            base = PipelineOptions("classification", data=out / "data", epochs=epochs, seed=seed, gate=gate or {})
            progress = Progress(stream or sys.stderr)
            for options in (base, replace(base, task="segmentation", epochs=min(epochs, 25), augment_copies=1)):
                result = run_pipeline(options, backends, Path(short) / options.task, progress)
                report[options.task] = {name: o.summary for name, o in result.outcomes.items()}
            say(f"[3/7] starting {devices} full and {light_devices} light devices\n")
            full = [world.start_device(web_enabled=True, web_port=web_port, rate_hz=5.0)]
            for n in range(1, devices):
                thing = world.add_thing(f"{world.thing}-{n}")
                full.append(world.start_device(thing=thing, camera_seed=n + 1, rate_hz=5.0))
            light = Fleet(cloud, world.scratch("fleet"), group=cloud.project.thing_group_name, prefix="demo-light")
            world.closers.append(light.close)
            light.provision(light_devices)
            say("[4/7] deploying both models to the thing group by IoT job\n")
            report["first_rollout"] = {
                m: _deploy(backends, world, m, "1", full, light) for m in ("img-classification", "unet")
            }
            say("[5/7] continuous inference\n")
            _wait(lambda: all(d.engine.count >= 10 for d in full), 60)
            say("[6/7] retraining the classifier (version 2) and deploying it under load\n")
            run_pipeline(replace(base, seed=seed + 1), backends, Path(short) / "v2", progress)
            before = sum(d.engine.errors + d.loop.errors for d in full)
            report["upgrade"] = _deploy(backends, world, "img-classification", "2", full, light)
            report["upgrade_inference_errors"] = sum(d.engine.errors + d.loop.errors for d in full) - before
            report["served"] = {d.config.thing_name: {m.name: m.version for m in d.roster.all()} for d in full}
            report["light_served"] = dict(light.served())
            report["inferences"] = {d.config.thing_name: d.engine.count for d in full}
            report["web_ui"] = full[0].web_url
            report["duration_s"] = round(time.monotonic() - started, 1)
            (out / "demo-report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
            say(_summary(report, out))
            if serve:
                say(f"[7/7] the web UI of {full[0].config.thing_name} stays up at {full[0].web_url}; Ctrl-C stops\n")
                waiting = stop or threading.Event()
                while not waiting.wait(0.5):  # in slices, so that Ctrl-C and SIGTERM are seen (device_cli.py)
                    pass
        finally:
            world.close()
    return report


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def _summary(report: dict[str, Any], out: Path) -> str:
    clf, seg = report["classification"]["evaluate"], report["segmentation"]["evaluate"]
    lines = [
        f"done in {report['duration_s']} s; report: {out / 'demo-report.json'}",
        f"  classifier: F1 {clf.get('f1'):.3f}, ROC-AUC {clf.get('roc_auc') or float('nan'):.3f}; "
        f"UNet: Dice {seg.get('dice'):.3f}, IoU {seg.get('iou'):.3f}",
        f"  first rollout: {report['first_rollout']}",
        f"  upgrade to 2 under load: {report['upgrade']}, failed inferences {report['upgrade_inference_errors']}",
        f"  light devices serve: {report['light_served']}",
        f"  web UI: {report['web_ui']}",
    ]
    return "\n".join(lines) + "\n"
