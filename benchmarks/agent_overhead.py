"""Agent overhead (issues 3 and 8): Predict through the Edge Agent and the device's HTTP API vs. direct calls.

The classifier (224x224x3, random weights: this is about overhead, not accuracy) runs on a device
target (`benchmarks.device_target`, the load test's `benchmarks.locust_target`): `edgesim agent
serve` in its own process on a unix socket, with the model loaded as a device loads it, and a device
web UI in another process over that agent, as the edge app and the agent are on a device. In one
run, interleaved round robin so that machine noise hits every path alike:

- direct: the Keras model behind a `tf.function` with a fixed input signature, and the target's
  SavedModel's `serving_default` signature loaded here, which is exactly what the agent runs (the
  baseline);
- agent: Predict with the image as `byte_data`, and through System V shared memory;
- device HTTP API: `POST /api/predict` with the image as a PNG, the whole request (see web_predict);
- a gRPC floor: a Health.Check round trip to the same agent (no payload, no model).

Every path gets the same input: one PNG, and the tensor the device's pre-processing makes of it
(`benchmarks.web_predict`); the outputs are checked to agree before timing. The numbers go to
`<out>/agent_overhead.json` and, with `--write-markdown`, to the `agent-overhead` section of
BENCHMARKS.md. DESIGN.md section 5 sets the targets; they are reported, never asserted. Throughput
under concurrent callers is `benchmarks.concurrency_sweep`'s.

    python -m benchmarks.agent_overhead [--calls N] [--latency-seconds S] [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.agent_process import cpu_seconds
from benchmarks.device_target import DeviceTarget, own_cpu_seconds
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish
from benchmarks.overhead_report import TARGET_LABELS, plot, render_section
from benchmarks.web_predict import WebPredict, class_labels, device_input, http_scores

MODEL_NAME = "img-classification-1"
SHAPE = (1, 224, 224, 3)
SECTION = "agent-overhead"
BASELINE = "direct_signature"
TARGETS = {"agent_byte_data": 1.0, "agent_shared_memory": 0.4}  # added p50, ms (DESIGN.md section 5)
COMPARED = (*TARGETS, "http_api")  # the paths whose overhead over the baseline is reported
AGREEMENT_TOLERANCE = 1e-5  # max |output - baseline|; the device rounds its scores to 6 decimals
PATHS = {
    "direct_tf_function": "direct: Keras model in a tf.function (input_signature [1,224,224,3] float32)",
    "direct_signature": "direct: SavedModel serving_default signature (baseline: what the agent runs)",
    "agent_byte_data": "agent: Predict over the unix socket, byte_data",
    "agent_shared_memory": "agent: Predict over the unix socket, System V shared memory",
    "http_api": "device HTTP API: POST /api/predict with the PNG (decode, pre- and post-processing, JSON)",
    "grpc_health_check": "gRPC floor: Health.Check round trip to the agent (no payload)",
}

Call = Callable[[], object]


@dataclass(frozen=True)
class Options:
    calls: int = 1000  # per path, in the interleaved latency run
    warmup: int = 20  # per path, before it
    latency_seconds: float = 50.0  # wall-time cap of the interleaved latency run
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None
    seed: int = 0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=Options.calls, help="timed calls per path (default 1000)")
    parser.add_argument("--warmup", type=int, default=Options.warmup, help="warm-up calls per path (default 20)")
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=Options.latency_seconds,
        help="wall-time cap of the latency run (default 50)",
    )
    parser.add_argument("--out", type=Path, default=Options.out, help="folder for the JSON (and PNG) results")
    parser.add_argument(
        "--write-markdown", type=Path, metavar="PATH", help="rewrite this file's agent-overhead section"
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the model weights and the input")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 0 or args.latency_seconds <= 0:
        parser.error("--calls must be at least 1, --warmup at least 0, --latency-seconds positive")
    return Options(args.calls, args.warmup, args.latency_seconds, args.out, args.write_markdown, args.seed)


# Statistics ------------------------------------------------------------------------------------
def summarize(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/min in ms; throughput as one caller calling back to back."""
    p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
    mean = float(np.mean(samples_ms))
    return {
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(mean, 4),
        "min_ms": round(float(np.min(samples_ms)), 4),
        "calls": len(samples_ms),
        "throughput_per_s": round(1000.0 / mean, 1) if mean > 0 else 0.0,
    }


def overhead(timings: dict[str, list[float]], path: str) -> dict[str, float]:
    """Added latency of `path` over the baseline: p50 difference, ratio, and median paired difference."""
    agent, base = np.asarray(timings[path]), np.asarray(timings[BASELINE])
    tf_function = np.asarray(timings["direct_tf_function"])
    return {
        "added_p50_ms": round(float(np.median(agent) - np.median(base)), 4),
        "ratio_p50": round(float(np.median(agent) / np.median(base)), 3),
        "added_p50_paired_ms": round(float(np.median(agent - base)), 4),  # same iteration, same noise
        "added_p50_vs_tf_function_ms": round(float(np.median(agent) - np.median(tf_function)), 4),
    }


# Set-up ----------------------------------------------------------------------------------------
def export_classifier(folder: Path, seed: int) -> tuple[Any, Any]:
    """Build the classifier and export it as a TensorFlow package; returns (keras model, manifest)."""
    from system.cloud.packaging import export_package

    model = build_model(seed)
    manifest = export_package(model, folder, name="img-classification", version="1", framework="tensorflow")
    return model, manifest


def build_model(seed: int) -> Any:
    """The benchmark's classifier; the same seed gives the same weights (keras.utils.set_random_seed)."""
    from system.cloud.classifier import build_classifier

    return build_classifier(*SHAPE[1:], seed=seed)


def tf_function_call(model: Any, x: np.ndarray) -> Call:
    """The Keras model behind a tf.function with a fixed input signature, numpy in and out."""
    import tensorflow as tf

    serve = tf.function(lambda t: model(t, training=False), input_signature=[tf.TensorSpec(SHAPE, tf.float32)])
    return lambda: serve(x).numpy()


def signature_call(package: Path, x: np.ndarray) -> Call:
    """The package's SavedModel `serving_default` signature, loaded in this process: what the agent runs."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(package / "saved_model")).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    (output_name,) = signature.structured_outputs
    return lambda: signature(**{input_name: x})[output_name].numpy()


def health_check_call(target: str) -> tuple[Call, Callable[[], None]]:
    """A Health.Check round trip on its own channel; returns (call, close)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(target)
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="")
    return (lambda: stub.Check(request, timeout=30)), channel.close


# Measurements ----------------------------------------------------------------------------------
def measure_latency(calls: dict[str, Call], options: Options) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Warm up, then time every path once per iteration, rotating the order, until --calls or the cap."""
    for call in calls.values():
        for _ in range(options.warmup):
            call()
    timings: dict[str, list[float]] = {key: [] for key in calls}
    order = list(calls.items())
    started = time.monotonic()
    deadline = started + options.latency_seconds
    stopped_by = "calls"
    for iteration in range(options.calls):
        if time.monotonic() > deadline:
            stopped_by = "time"
            break
        shift = iteration % len(order)
        for key, call in order[shift:] + order[:shift]:
            t0 = time.perf_counter()
            call()
            timings[key].append((time.perf_counter() - t0) * 1000)
    run = {"iterations": len(timings[order[0][0]]), "stopped_by": stopped_by, "seconds": time.monotonic() - started}
    return timings, run


def evaluate_targets(overheads: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [
        {
            "target": f"added p50, {TARGET_LABELS[path]}",
            "limit": f"< {limit} ms",
            "measured": f"{overheads[path]['added_p50_ms']:.3f} ms",
            "met": overheads[path]["added_p50_ms"] < limit,
        }
        for path, limit in TARGETS.items()
    ]


def cpu_counters(target: dict[str, Any]) -> dict[str, Callable[[], float]]:
    """CPU-time counters of the three processes: the agent, the device (web UI) and this benchmark."""
    return {
        "agent_process": lambda: cpu_seconds(target["agent_pid"]),
        "device_process": lambda: cpu_seconds(target["pid"]),
        "benchmark_process": own_cpu_seconds,
    }


# The run ---------------------------------------------------------------------------------------
def run(options: Options, command: str) -> dict[str, Any]:
    """The whole benchmark; the device target (agent and web UI) is stopped whatever happens."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from system.agent.malloc import keep_large_buffers_on_heap

    # The client process gets the tuning the agent applies to itself (system/agent/malloc.py), as
    # edgesim's own clients do; the direct calls run in this process too, so they get it as well.
    keep_large_buffers_on_heap()
    started = time.monotonic()
    lifetime = options.latency_seconds + 600.0  # it stops by itself should this process die first
    with (
        tempfile.TemporaryDirectory(prefix="es-bench-") as scratch,
        DeviceTarget(Path(scratch), lifetime=lifetime, seed=options.seed) as device,
    ):
        print(f"device target {device.pid} starting (agent + web UI); building the classifier here", flush=True)
        model = build_model(options.seed)  # meanwhile: same builder and seed as the target's package
        target = device.wait_ready()
        print(f"agent {target['agent']} (pid {target['agent_pid']}), web UI {target['host']}", flush=True)
        results = _measure(target, model, options)
        results["target_exit_code"] = device.stop()
    return {
        "benchmark": "agent_overhead",
        "issue": 3,  # issue 8 added the HTTP path
        "command": command,
        "machine": machine_description(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        **results,
        "runtime_seconds": round(time.monotonic() - started, 1),
    }


def _measure(target: dict[str, Any], model: Any, options: Options) -> dict[str, Any]:
    from system.adapters.agent_client import GrpcEdgeAgentClient
    from system.agent.package import read_package

    manifest = read_package(target["package_dir"]).manifest  # what the agent serves, checksums verified
    given = device_input(manifest, SHAPE[1], options.seed)
    x = given.tensor
    direct = (tf_function_call(model, x), signature_call(Path(target["package_dir"]), x))
    client = GrpcEdgeAgentClient(target["agent"])
    check, close_check = health_check_call(target["agent"])
    web = WebPredict(target["host"], given.png)
    try:
        output_name = client.describe_model(MODEL_NAME).outputs[0].name
        results = _check_agreement(client, output_name, direct[1], web, class_labels(manifest), x)
        calls: dict[str, Call] = {
            "direct_tf_function": direct[0],
            "direct_signature": direct[1],
            "agent_byte_data": lambda: client.predict(MODEL_NAME, x),
            "agent_shared_memory": lambda: client.predict(MODEL_NAME, x, shared_memory=True),
            "http_api": web,
            "grpc_health_check": check,
        }
        results.update(_latency(calls, options, cpu_counters(target)))
    finally:
        web.close()
        close_check()
        client.close()
    results["targets"] = evaluate_targets(results["overhead"])
    results["model"] = _model_info(model, manifest, x)
    results["http"] = {**results["http"], "png_bytes": len(given.png), "request_bytes": len(web.body)}
    return results


def _check_agreement(
    client: Any, output_name: str, baseline: Call, web: WebPredict, labels: tuple[str, ...], x: np.ndarray
) -> dict[str, Any]:
    """Check, before timing, that the agent's and the device's answers match the baseline's output."""
    expected = np.asarray(baseline())
    got = [client.predict(MODEL_NAME, x, shared_memory=mode)[output_name] for mode in (False, True)]
    agent_diff = max(float(np.abs(out - expected).max()) for out in got)
    answer = web()
    http_diff = float(np.abs(http_scores(answer, labels) - expected).max())
    print(f"max |agent - direct| = {agent_diff:.1e}, max |HTTP scores - direct| = {http_diff:.1e}", flush=True)
    if max(agent_diff, http_diff) > AGREEMENT_TOLERANCE:
        raise RuntimeError(f"the paths disagree (agent {agent_diff:.1e}, HTTP {http_diff:.1e}): not the same input?")
    return {
        "max_abs_diff_agent_vs_direct": agent_diff,
        "max_abs_diff_http_vs_direct": http_diff,
        "http": {"answer_bytes": len(answer)},
    }


def _latency(calls: dict[str, Call], options: Options, counters: dict[str, Callable[[], float]]) -> dict[str, Any]:
    """The interleaved latency measurement, and the CPU time each process spent during it."""
    print(f"latency: {options.calls} calls per path, interleaved", flush=True)
    cpu0 = {name: counter() for name, counter in counters.items()}
    timings, latency_run = measure_latency(calls, options)
    latency_run["cpu_seconds"] = {name: round(counter() - cpu0[name], 2) for name, counter in counters.items()}
    latency = {key: {"description": PATHS[key], **summarize(samples)} for key, samples in timings.items()}
    for key, stats in latency.items():
        print(f"  {key:<20} p50 {stats['p50_ms']:7.3f} ms  p95 {stats['p95_ms']:7.3f}  p99 {stats['p99_ms']:7.3f}")
    return {
        "baseline": BASELINE,
        "latency_run": latency_run,
        "latency": latency,
        "overhead": {path: overhead(timings, path) for path in COMPARED},
    }


def _model_info(model: Any, manifest: Any, x: np.ndarray) -> dict[str, Any]:
    return {
        "builder": "system.cloud.classifier.build_classifier (random weights)",
        "package": "tensorflow (SavedModel, serving_default)",
        "inputs": [s.describe() for s in manifest.inputs],
        "outputs": [s.describe() for s in manifest.outputs],
        "preprocessing": manifest.preprocessing.to_dict(),
        "parameters": int(model.count_params()),
        "input_bytes": int(x.nbytes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    results = run(options, command_line("benchmarks.agent_overhead", argv))
    options.out.mkdir(parents=True, exist_ok=True)
    results["plot"] = plot(results, options.out / "agent_overhead.png")
    print(f"plot: {results['plot']['path'] or results['plot']['reason']}")
    publish(
        results, options.out / "agent_overhead.json", markdown=options.markdown, section=SECTION, render=render_section
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
