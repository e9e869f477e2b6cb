"""Agent overhead (issue 3): Predict through the Edge Agent vs. the same model called directly.

The classifier (224x224x3, random weights: this is about overhead, not accuracy) is exported as a
TensorFlow package and served by `edgesim agent serve` in its own process over a unix socket, as
on a device. In one run, interleaved round robin so that machine noise hits every path alike:

- direct: the Keras model behind a `tf.function` with a fixed input signature, and the loaded
  SavedModel's `serving_default` signature, which is exactly what the agent runs (the baseline);
- agent: Predict with the image as `byte_data`, and through System V shared memory;
- a gRPC floor: a Health.Check round trip to the same agent (no payload, no model).

Then 1, 2, 4, 8 concurrent clients (threads, each with its own client, `byte_data`) against as
many threads calling the baseline in-process. The numbers go to `<out>/agent_overhead.json`
and, with `--write-markdown`, to the `agent-overhead` section of BENCHMARKS.md. DESIGN.md
section 5 sets the targets; they are reported, never asserted.

    python -m benchmarks.agent_overhead [--calls N] [--seconds S] [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.agent_process import AgentProcess
from benchmarks.machine import machine_description
from benchmarks.markdown import publish
from benchmarks.overhead_report import TARGET_LABELS, plot, render_section

MODEL_NAME = "img-classification-1"
SHAPE = (1, 224, 224, 3)
SECTION = "agent-overhead"
BASELINE = "direct_signature"
TARGETS = {"agent_byte_data": 1.0, "agent_shared_memory": 0.4}  # added p50, ms (DESIGN.md section 5)
THROUGHPUT_TARGET = 0.9  # agent throughput with 8 clients vs. direct
PATHS = {
    "direct_tf_function": "direct: Keras model in a tf.function (input_signature [1,224,224,3] float32)",
    "direct_signature": "direct: SavedModel serving_default signature (baseline: what the agent runs)",
    "agent_byte_data": "agent: Predict over the unix socket, byte_data",
    "agent_shared_memory": "agent: Predict over the unix socket, System V shared memory",
    "grpc_health_check": "gRPC floor: Health.Check round trip to the agent (no payload)",
}

Call = Callable[[], object]


@dataclass(frozen=True)
class Options:
    calls: int = 500  # per path, in the interleaved latency run
    warmup: int = 20  # per path, before it
    latency_seconds: float = 60.0  # wall-time cap of the interleaved latency run
    seconds: float = 5.0  # per concurrency level and path
    clients: tuple[int, ...] = (1, 2, 4, 8)
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None
    seed: int = 0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.agent_overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=Options.calls, help="timed calls per path (default 500)")
    parser.add_argument("--warmup", type=int, default=Options.warmup, help="warm-up calls per path (default 20)")
    parser.add_argument(
        "--latency-seconds", type=float, default=Options.latency_seconds, help="wall-time cap of the latency run"
    )
    parser.add_argument(
        "--seconds", type=float, default=Options.seconds, help="seconds per concurrency level and path (default 5)"
    )
    parser.add_argument("--clients", default="1,2,4,8", help="concurrency levels, comma-separated (default 1,2,4,8)")
    parser.add_argument("--out", type=Path, default=Options.out, help="folder for the JSON (and PNG) results")
    parser.add_argument(
        "--write-markdown", type=Path, metavar="PATH", help="rewrite this file's agent-overhead section"
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the model weights and the input")
    args = parser.parse_args(argv)
    clients = tuple(int(c) for c in args.clients.split(",") if c.strip())
    if args.calls < 1 or args.warmup < 0 or args.seconds <= 0 or not clients or min(clients) < 1:
        parser.error("--calls and every --clients level must be at least 1, --seconds positive")
    return Options(
        args.calls, args.warmup, args.latency_seconds, args.seconds, clients, args.out, args.write_markdown, args.seed
    )


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
    from system.cloud.classifier import build_classifier
    from system.cloud.packaging import export_package

    model = build_classifier(*SHAPE[1:], seed=seed)
    manifest = export_package(model, folder, name="img-classification", version="1", framework="tensorflow")
    return model, manifest


def direct_calls(model: Any, package: Path, x: np.ndarray) -> tuple[Call, Call]:
    """(tf.function of the Keras model, the SavedModel's serving_default), numpy in and out."""
    import tensorflow as tf

    serve = tf.function(lambda t: model(t, training=False), input_signature=[tf.TensorSpec(SHAPE, tf.float32)])
    signature = tf.saved_model.load(str(package / "saved_model")).signatures["serving_default"]
    (input_name,) = signature.structured_input_signature[1]
    (output_name,) = signature.structured_outputs
    return (lambda: serve(x).numpy()), (lambda: signature(**{input_name: x})[output_name].numpy())


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


@dataclass
class Window:
    """What a group of threads did in a timed window, and the CPU time both processes spent meanwhile."""

    latencies_ms: list[float]
    seconds: float
    agent_cpu_s: float = 0.0
    bench_cpu_s: float = 0.0

    def merge(self, other: Window) -> Window:
        return Window(
            self.latencies_ms + other.latencies_ms,
            self.seconds + other.seconds,
            self.agent_cpu_s + other.agent_cpu_s,
            self.bench_cpu_s + other.bench_cpu_s,
        )

    def summary(self) -> dict[str, float]:
        lat, calls = self.latencies_ms, max(len(self.latencies_ms), 1)
        p50, p99 = np.percentile(lat, [50, 99]) if lat else (float("nan"), float("nan"))
        return {
            "throughput_per_s": round(len(lat) / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(float(p50), 3),
            "p99_ms": round(float(p99), 3),
            "calls": len(lat),
            "seconds": round(self.seconds, 2),
            "cpu_ms_per_call_agent_process": round(self.agent_cpu_s * 1000 / calls, 3),
            "cpu_ms_per_call_benchmark_process": round(self.bench_cpu_s * 1000 / calls, 3),
        }


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def run_threads(calls: Sequence[Call], seconds: float, agent_cpu: Callable[[], float]) -> Window:
    """One thread per call, released together, each calling back to back for `seconds`."""
    for call in calls:
        call()  # each thread's client connected and warm before the clock starts
    clock: dict[str, float] = {}
    start = threading.Barrier(len(calls), action=lambda: clock.update(t0=time.perf_counter()))
    per_thread: list[list[float]] = [[] for _ in calls]

    def worker(call: Call, out: list[float]) -> None:
        start.wait()
        deadline = clock["t0"] + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            call()
            out.append((time.perf_counter() - t0) * 1000)

    cpu0 = agent_cpu(), _own_cpu_seconds()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(worker, call, out) for call, out in zip(calls, per_thread, strict=True)]
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - clock["t0"]
    latencies = [ms for out in per_thread for ms in out]
    return Window(latencies, elapsed, agent_cpu() - cpu0[0], _own_cpu_seconds() - cpu0[1])


def measure_concurrency(
    agent_calls: Sequence[Call], direct: Call, options: Options, agent_cpu: Callable[[], float]
) -> list[dict[str, Any]]:
    """Per level: two rounds of (direct, agent) windows of seconds/2 each, so drift hits both."""
    levels = []
    for n in options.clients:
        windows = {"direct": Window([], 0.0), "agent": Window([], 0.0)}
        for _ in range(2):
            windows["direct"] = windows["direct"].merge(run_threads([direct] * n, options.seconds / 2, agent_cpu))
            windows["agent"] = windows["agent"].merge(run_threads(agent_calls[:n], options.seconds / 2, agent_cpu))
        agent, base = windows["agent"].summary(), windows["direct"].summary()
        ratio = agent["throughput_per_s"] / base["throughput_per_s"] if base["throughput_per_s"] else 0.0
        levels.append({"clients": n, "agent": agent, "direct": base, "agent_over_direct": round(ratio, 3)})
        print(
            f"  {n} client(s): agent {agent['throughput_per_s']:7.1f}/s p50 {agent['p50_ms']:6.2f} ms | "
            f"direct {base['throughput_per_s']:7.1f}/s p50 {base['p50_ms']:6.2f} ms | ratio {ratio:.2f}",
            flush=True,
        )
    return levels


def evaluate_targets(overheads: dict[str, dict[str, float]], levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    targets = [
        {
            "target": f"added p50, {TARGET_LABELS[path]}",
            "limit": f"< {limit} ms",
            "measured": f"{overheads[path]['added_p50_ms']:.3f} ms",
            "met": overheads[path]["added_p50_ms"] < limit,
        }
        for path, limit in TARGETS.items()
    ]
    eight = next((level for level in levels if level["clients"] == 8), None)
    targets.append(
        {
            "target": "throughput with 8 clients vs. direct with 8 threads",
            "limit": f">= {THROUGHPUT_TARGET:.0%}",
            "measured": f"{eight['agent_over_direct']:.0%}" if eight else "not measured",
            "met": eight["agent_over_direct"] >= THROUGHPUT_TARGET if eight else None,
        }
    )
    return targets


# The run ---------------------------------------------------------------------------------------
def run(options: Options, command: str) -> dict[str, Any]:
    """The whole benchmark; the agent process is stopped whatever happens."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from system.agent.malloc import keep_large_buffers_on_heap

    # The client process gets the tuning the agent applies to itself (system/agent/malloc.py), as
    # edgesim's own clients do; the direct calls run in this process too, so they get it as well.
    keep_large_buffers_on_heap()
    started = time.monotonic()
    x = np.random.default_rng(options.seed).random(SHAPE, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="es-bench-") as scratch, AgentProcess(Path(scratch)) as agent:
        print(f"agent process {agent.pid} starting on {agent.target}; exporting the classifier", flush=True)
        model, manifest = export_classifier(Path(scratch) / "package", options.seed)
        tf_function, signature = direct_calls(model, Path(scratch) / "package", x)
        agent.wait_ready()
        results = _measure(agent, Path(scratch) / "package", x, (tf_function, signature), options)
        results["model"] = {
            "builder": "system.cloud.classifier.build_classifier (random weights)",
            "package": "tensorflow (SavedModel, serving_default)",
            "inputs": [s.describe() for s in manifest.inputs],
            "outputs": [s.describe() for s in manifest.outputs],
            "parameters": int(model.count_params()),
            "input_bytes": int(x.nbytes),
        }
        results["agent_exit_code"] = agent.stop()
    results = {
        "benchmark": "agent_overhead",
        "issue": 3,
        "command": command,
        "machine": machine_description(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        **results,
        "runtime_seconds": round(time.monotonic() - started, 1),
    }
    return results


def _measure(
    agent: AgentProcess, package: Path, x: np.ndarray, direct: tuple[Call, Call], options: Options
) -> dict[str, Any]:
    from system.adapters.agent_client import GrpcEdgeAgentClient

    clients = [GrpcEdgeAgentClient(agent.target) for _ in range(max(options.clients))]
    check, close_check = health_check_call(agent.target)
    try:
        output_name = clients[0].load_model(MODEL_NAME, str(package)).outputs[0].name
        results = _latency(clients[0], output_name, x, direct, check, options)
        print(f"concurrency: {options.seconds:g} s per level and path, byte_data", flush=True)
        results["concurrency"] = measure_concurrency(
            [_predictor(c, x) for c in clients], direct[1], options, agent.cpu_seconds
        )
    finally:
        close_check()
        for c in clients:
            c.close()
    results["targets"] = evaluate_targets(results["overhead"], results["concurrency"])
    return results


def _latency(
    client: Any, output_name: str, x: np.ndarray, direct: tuple[Call, Call], check: Call, options: Options
) -> dict[str, Any]:
    """Check that agent and direct agree, then run the interleaved latency measurement."""
    expected = np.asarray(direct[1]())
    got = [client.predict(MODEL_NAME, x, shared_memory=mode)[output_name] for mode in (False, True)]
    max_diff = max(float(np.abs(out - expected).max()) for out in got)
    print(f"latency: {options.calls} calls per path, interleaved (max |agent - direct| = {max_diff:.1e})", flush=True)
    calls: dict[str, Call] = {
        "direct_tf_function": direct[0],
        "direct_signature": direct[1],
        "agent_byte_data": lambda: client.predict(MODEL_NAME, x),
        "agent_shared_memory": lambda: client.predict(MODEL_NAME, x, shared_memory=True),
        "grpc_health_check": check,
    }
    timings, latency_run = measure_latency(calls, options)
    latency = {key: {"description": PATHS[key], **summarize(samples)} for key, samples in timings.items()}
    for key, stats in latency.items():
        print(f"  {key:<20} p50 {stats['p50_ms']:7.3f} ms  p95 {stats['p95_ms']:7.3f}  p99 {stats['p99_ms']:7.3f}")
    return {
        "baseline": BASELINE,
        "max_abs_diff_agent_vs_direct": max_diff,
        "latency_run": latency_run,
        "latency": latency,
        "overhead": {path: overhead(timings, path) for path in TARGETS},
    }


def _predictor(client: Any, x: np.ndarray) -> Call:
    return lambda: client.predict(MODEL_NAME, x)


def command_line(argv: Sequence[str]) -> str:
    """How this run was invoked, with the interpreter relative to the working directory when inside it."""
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    return shlex.join([python, "-m", "benchmarks.agent_overhead", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    results = run(options, command_line(argv))
    options.out.mkdir(parents=True, exist_ok=True)
    results["plot"] = plot(results, options.out / "agent_overhead.png")
    print(f"plot: {results['plot']['path'] or results['plot']['reason']}")
    publish(
        results, options.out / "agent_overhead.json", markdown=options.markdown, section=SECTION, render=render_section
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
