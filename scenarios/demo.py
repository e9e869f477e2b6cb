"""The Edge Agent tour (`edgesim demo --agent-tour`; `edgesim demo` runs scenarios/flagship.py).

A factory line makes metal parts; a camera photographs each one and a small model says whether
the surface is normal or anomalous. Here, with no AWS and no download:

1. generate a KolektorSDD2-like data set (synthetic surfaces, some with scratches and spots);
2. pre-process it exactly as the edge will (pad to square, resize to 224x224, scale);
3. train a small CNN briefly on CPU and measure it on held-out images;
4. package it twice (TensorFlow SavedModel and TFLite) as edgesim model packages;
5. start the Edge Agent on a unix socket and load both packages, as a device would;
6. run the held-out images through the agent, compare with the model called directly, and
   time both (byte_data and System V shared memory);
7. capture a few inferences with CaptureData and show where they landed.

It prints the results and latencies and writes `<out>/demo-report.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from system.agent.package import Preprocessing
from system.config import AgentSettings, CaptureSettings, Settings

PRE = Preprocessing(
    height=224, width=224, pad_to_square=True, pad_value=0, channel_order="RGB", layout="NHWC", scale=1 / 255
)


def add_command(commands: Any) -> None:
    """Register `edgesim demo` (entry point `edgesim.commands`)."""
    from scenarios import flagship

    parser = commands.add_parser(
        "demo",
        help="the flagship demo: train both models, deploy them by IoT job to a fleet, upgrade under load",
        description=f"{flagship.__doc__}\nWith --agent-tour, the Edge Agent tour instead:\n{__doc__}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="out/demo", help="folder for data, packages, captures and the report")
    parser.add_argument("--epochs", type=int, help="training epochs at most (default 40; agent tour 20)")
    parser.add_argument("--train-images", type=int, help="synthetic training images (default 160; agent tour 240)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and training (default 0)")
    parser.add_argument(
        "--devices", type=int, default=1, help="full devices (real agent and models) in the fleet (default 1)"
    )
    parser.add_argument(
        "--light-devices",
        type=int,
        default=20,
        help="light devices (OTA code on a simulated model runtime) in the fleet (default 20)",
    )
    parser.add_argument("--port", type=int, default=8080, help="web UI port of the first device (default 8080)")
    parser.add_argument("--no-serve", action="store_true", help="exit when done instead of keeping the web UI up")
    parser.add_argument("--agent-tour", action="store_true", help="the Edge Agent tour (issue 3's demo) instead")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, settings: Settings) -> int:
    if args.agent_tour:
        run(Path(args.out), epochs=args.epochs or 20, train_images=args.train_images or 240, seed=args.seed)
        return 0
    import signal
    import threading

    from scenarios import flagship

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        report = flagship.run(
            Path(args.out),
            devices=args.devices,
            light_devices=args.light_devices,
            train_images=args.train_images or 160,
            epochs=args.epochs or 40,
            seed=args.seed,
            serve=not args.no_serve,
            web_port=args.port,
            stop=stop,
        )
    except KeyboardInterrupt:
        return 0
    upgrade = report["upgrade"]
    light_ok = set(upgrade["light"]) <= {"SUCCEEDED"}
    ok = report["upgrade_inference_errors"] == 0 and all(s == "SUCCEEDED" for s in upgrade["full"]) and light_ok
    return 0 if ok else 1


def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3), "p99_ms": round(float(p99), 3)}


def _load_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from system.cloud.dataset import load_split
    from system.preprocessing import load_image, preprocess

    samples = load_split(root, split)
    x = np.concatenate([preprocess(load_image(s.image), PRE) for s in samples])
    y = np.array([int(s.anomalous) for s in samples])
    return x, y, [s.image.name for s in samples]


def run(out: Path, *, epochs: int = 20, train_images: int = 240, seed: int = 0) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from simulators.surfaces import write_dataset
    from system.adapters.agent_client import GrpcEdgeAgentClient
    from system.agent.server import EdgeAgent
    from system.cloud.classifier import LABELS, classification_metrics, train_classifier
    from system.cloud.packaging import export_package

    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {}

    print(f"[1/7] generating synthetic KolektorSDD2-like surfaces in {out / 'data'}")
    data = out / "data"
    if data.exists():
        import shutil

        shutil.rmtree(data)
    summary = write_dataset(data, n_train=train_images, n_test=max(train_images // 4, 20), defect_rate=0.25, seed=seed)
    print(
        f"      train {summary.train.images} images ({summary.train.defective} defective), "
        f"test {summary.test.images} ({summary.test.defective} defective)"
    )

    print("[2/7] pre-processing: pad to square, resize to 224x224, RGB, scale 1/255")
    x_train, y_train, _ = _load_split(data, "train")
    x_test, y_test, test_names = _load_split(data, "test")

    print(f"[3/7] training the classifier for {epochs} epochs on CPU")
    t0 = time.monotonic()
    model = train_classifier(x_train, y_train, epochs=epochs, seed=seed)
    direct_probs = model.predict_on_batch(x_test)
    metrics = classification_metrics(y_test, direct_probs.argmax(axis=1))
    report["training"] = {"seconds": round(time.monotonic() - t0, 1), "test_metrics": metrics.to_dict()}
    print(
        f"      {time.monotonic() - t0:.0f} s; test accuracy {metrics.accuracy:.3f}, anomalous F1 {metrics.f1:.3f} "
        f"(precision {metrics.precision:.3f}, recall {metrics.recall:.3f})"
    )

    print("[4/7] packaging img-classification version 1 (SavedModel and TFLite)")
    packages = out / "packages"
    if packages.exists():
        import shutil

        shutil.rmtree(packages)
    for framework in ("tensorflow", "tflite"):
        export_package(
            model,
            packages / framework,
            name="img-classification",
            version="1",
            framework=framework,
            preprocessing=PRE,
            labels=LABELS,
        )

    with tempfile.TemporaryDirectory(prefix="edgesim-") as sock_dir:
        settings = AgentSettings(
            socket_path=str(Path(sock_dir) / "edge_agent"),
            capture=CaptureSettings(
                disk_path=str(out / "capture"),
                push_period_seconds=0.5,
                fleet_name="demo-fleet",
                device_name="demo-device",
            ),
        )
        agent = EdgeAgent(settings)
        target = agent.start()
        print(f"[5/7] Edge Agent serving on {target}; loading the packages")
        try:
            with GrpcEdgeAgentClient(target) as client:
                for framework, name in (
                    ("tensorflow", "img-classification-1"),
                    ("tflite", "img-classification-1-lite"),
                ):
                    t0 = time.monotonic()
                    info = client.load_model(name, str(packages / framework))
                    print(
                        f"      {name}: {framework}, input {info.inputs[0].describe()}, "
                        f"output {info.outputs[0].describe()}, loaded in {time.monotonic() - t0:.2f} s"
                    )
                report["inference"] = _predict_and_time(client, model, x_test, y_test, test_names, direct_probs)
                report["capture"] = _capture(client, x_test, direct_probs, out)
        finally:
            agent.stop()
    report["seconds"] = round(time.monotonic() - started, 1)
    (out / "demo-report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"done in {report['seconds']:.0f} s; report: {out / 'demo-report.json'}")
    return report


def _predict_and_time(
    client: Any, model: Any, x: np.ndarray, y: np.ndarray, names: list[str], direct_probs: np.ndarray
) -> dict[str, Any]:
    import tensorflow as tf

    from system.cloud.classifier import LABELS

    print("[6/7] predicting the held-out images through the agent")
    agent_probs = np.concatenate(
        [client.predict("img-classification-1", x[i : i + 1])["output_0"] for i in range(len(x))]
    )
    lite_probs = np.concatenate(
        [client.predict("img-classification-1-lite", x[i : i + 1])["output_0"] for i in range(len(x))]
    )
    for i in range(min(8, len(x))):
        verdict = LABELS[int(agent_probs[i].argmax())]
        print(
            f"      {names[i]:>10}  {verdict:<9} normal={agent_probs[i][0]:.6f} anomalous={agent_probs[i][1]:.6f}"
            f"  (truth: {LABELS[int(y[i])]})"
        )
    diff = float(np.abs(agent_probs - direct_probs).max())
    diff_lite = float(np.abs(lite_probs - direct_probs).max())
    print(f"      max |agent - direct| = {diff:.2e} (SavedModel), {diff_lite:.2e} (TFLite)")

    serve = tf.function(
        lambda t: model(t, training=False), input_signature=[tf.TensorSpec([1, 224, 224, 3], tf.float32)]
    )
    one = x[:1]
    timings: dict[str, list[float]] = {
        "direct": [],
        "agent_byte_data": [],
        "agent_shared_memory": [],
        "agent_tflite": [],
    }
    calls = {
        "direct": lambda: serve(one).numpy(),
        "agent_byte_data": lambda: client.predict("img-classification-1", one),
        "agent_shared_memory": lambda: client.predict("img-classification-1", one, shared_memory=True),
        "agent_tflite": lambda: client.predict("img-classification-1-lite", one),
    }
    for call in calls.values():
        for _ in range(10):
            call()  # type: ignore[no-untyped-call]  # warm-up
    for _ in range(100):  # interleaved, so drift on a noisy machine hits every path alike
        for key, call in calls.items():
            t0 = time.perf_counter()
            call()
            timings[key].append((time.perf_counter() - t0) * 1000)
    latency = {key: _percentiles(samples) for key, samples in timings.items()}
    print("      latency over 100 calls, 1x224x224x3 float32:")
    for key, stats in latency.items():
        print(
            f"        {key:<20} p50 {stats['p50_ms']:7.3f} ms  p95 {stats['p95_ms']:7.3f} ms  "
            f"p99 {stats['p99_ms']:7.3f} ms"
        )
    return {
        "max_abs_diff_savedmodel": diff,
        "max_abs_diff_tflite": diff_lite,
        "latency": latency,
        "agent_accuracy": float((agent_probs.argmax(1) == y).mean()),
    }


def _capture(client: Any, x: np.ndarray, probs: np.ndarray, out: Path) -> dict[str, Any]:
    print("[7/7] capturing 5 inferences with CaptureData")
    ids = [
        client.capture_data("img-classification-1", {"input": x[i : i + 1]}, {"output": probs[i : i + 1]})
        for i in range(5)
    ]
    deadline = time.monotonic() + 10
    statuses = [client.capture_status(i) for i in ids]
    while any(s == "IN_PROGRESS" for s in statuses) and time.monotonic() < deadline:
        time.sleep(0.1)
        statuses = [client.capture_status(i) for i in ids]
    files = sorted(str(p.relative_to(out)) for p in (out / "capture").rglob("*.jsonl"))
    print(f"      statuses {sorted(set(statuses))}; batches written: {files[-1] if files else 'none'}")
    return {"statuses": statuses, "batches": files}
