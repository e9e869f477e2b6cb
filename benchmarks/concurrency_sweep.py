"""Concurrency sweep (issue 8): agent Predict throughput and latency against direct calls, 1 to 32 callers.

The classifier of the agent-overhead benchmark is exported as a TensorFlow package and served by
`edgesim agent serve` in its own process over a unix socket, as on a device. At each level of
concurrency N (1, 2, 4, 8, 16, 32 by default), N threads of this process call back to back:

- direct: the package's SavedModel `serving_default` signature loaded in this process (the same
  baseline as the agent-overhead benchmark), N threads sharing it;
- agent: Predict over the unix socket, one `GrpcEdgeAgentClient` per thread, with the image as
  `byte_data` and (unless left out with `--transports`) through System V shared memory.

Each level runs two rounds over the paths, the second in reverse order, so that machine drift hits
every path alike. Per level and path: throughput, p50, p99 and CPU time per call of the agent
process and of this process. DESIGN.md section 5's target "throughput with 8 concurrent clients at
least 90 % of direct" is evaluated, never asserted. The numbers go to
`<out>/concurrency_sweep.json` (and `.png`) and, with `--write-markdown`, to the
`concurrency-sweep` section of BENCHMARKS.md.

    python -m benchmarks.concurrency_sweep [--clients 1,2,4,8,16,32] [--seconds S]
        [--transports byte_data,shared_memory] [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import os
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

from benchmarks.agent_overhead import MODEL_NAME, SHAPE, export_classifier, signature_call
from benchmarks.agent_process import AgentProcess
from benchmarks.device_target import own_cpu_seconds
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish
from benchmarks.sweep_report import plot, render_section

SECTION = "concurrency-sweep"
TRANSPORTS = ("byte_data", "shared_memory")
TARGET_CLIENTS = 8
THROUGHPUT_TARGET = 0.9  # agent throughput with 8 clients vs. direct with 8 threads (DESIGN.md section 5)
WARMUP_CALLS = 10  # per path, before the first level: graph tracing and first allocations off the clock

Call = Callable[[], object]


@dataclass(frozen=True)
class Options:
    clients: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    seconds: float = 3.0  # per level and path, split over two rounds
    transports: tuple[str, ...] = TRANSPORTS
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None
    seed: int = 0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.concurrency_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", default="1,2,4,8,16,32", help="concurrency levels (default 1,2,4,8,16,32)")
    parser.add_argument("--seconds", type=float, default=Options.seconds, help="seconds per level and path (default 3)")
    parser.add_argument(
        "--transports", default=",".join(TRANSPORTS), help="agent transports (default byte_data,shared_memory)"
    )
    parser.add_argument("--out", type=Path, default=Options.out, help="folder for the JSON and PNG results")
    parser.add_argument(
        "--write-markdown", type=Path, metavar="PATH", help="rewrite this file's concurrency-sweep section"
    )
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the model weights and the input")
    args = parser.parse_args(argv)
    clients = tuple(int(c) for c in args.clients.split(",") if c.strip())
    transports = tuple(t.strip() for t in args.transports.split(",") if t.strip())
    if not clients or min(clients) < 1 or args.seconds <= 0:
        parser.error("every --clients level must be at least 1, --seconds positive")
    if not transports or set(transports) - set(TRANSPORTS):
        parser.error(f"--transports takes one or more of {', '.join(TRANSPORTS)}")
    return Options(clients, args.seconds, transports, args.out, args.write_markdown, args.seed)


# Timed windows ---------------------------------------------------------------------------------
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

    cpu0 = agent_cpu(), own_cpu_seconds()
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(worker, call, out) for call, out in zip(calls, per_thread, strict=True)]
        for future in futures:
            future.result()
    elapsed = time.perf_counter() - clock["t0"]
    latencies = [ms for out in per_thread for ms in out]
    return Window(latencies, elapsed, agent_cpu() - cpu0[0], own_cpu_seconds() - cpu0[1])


def measure_level(
    n: int, paths: dict[str, Sequence[Call]], seconds: float, agent_cpu: Callable[[], float]
) -> dict[str, Window]:
    """N threads per path: two rounds of seconds/2 windows, the second in reverse order, so drift hits all."""
    windows = {name: Window([], 0.0) for name in paths}
    order = list(paths)
    for round_order in (order, order[::-1]):
        for name in round_order:
            windows[name] = windows[name].merge(run_threads(paths[name][:n], seconds / 2, agent_cpu))
    return windows


def measure_concurrency(
    paths: dict[str, Sequence[Call]], options: Options, agent_cpu: Callable[[], float]
) -> list[dict[str, Any]]:
    """Every level of --clients; `paths` maps a path name to one call per thread ("direct" is the baseline)."""
    levels = []
    for n in options.clients:
        summaries = {name: w.summary() for name, w in measure_level(n, paths, options.seconds, agent_cpu).items()}
        base = summaries["direct"]["throughput_per_s"]
        ratios = {name: round(s["throughput_per_s"] / base, 3) if base else 0.0 for name, s in summaries.items()}
        del ratios["direct"]
        levels.append({"clients": n, "paths": summaries, "agent_over_direct": ratios})
        shown = " | ".join(
            f"{name} {s['throughput_per_s']:7.1f}/s p99 {s['p99_ms']:7.2f} ms" for name, s in summaries.items()
        )
        print(f"  {n:>2} client(s): {shown} | ratio {', '.join(f'{r:.2f}' for r in ratios.values())}", flush=True)
    return levels


def evaluate_targets(levels: list[dict[str, Any]], transports: Sequence[str]) -> list[dict[str, Any]]:
    """DESIGN.md's throughput target, once per agent transport measured."""
    level = next((level for level in levels if level["clients"] == TARGET_CLIENTS), None)
    targets = []
    for transport in transports:
        ratio = level["agent_over_direct"][f"agent_{transport}"] if level else None
        targets.append(
            {
                "target": f"throughput, {TARGET_CLIENTS} clients ({transport}) vs. {TARGET_CLIENTS} direct threads",
                "limit": f">= {THROUGHPUT_TARGET:.0%}",
                "measured": f"{ratio:.0%}" if ratio is not None else "not measured",
                "met": ratio >= THROUGHPUT_TARGET if ratio is not None else None,
            }
        )
    return targets


# The run ---------------------------------------------------------------------------------------
def run(options: Options, command: str) -> dict[str, Any]:
    """The whole sweep; the agent process is stopped whatever happens."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from system.agent.malloc import keep_large_buffers_on_heap

    keep_large_buffers_on_heap()  # as the agent tunes itself (system/agent/malloc.py): clients and direct calls
    started = time.monotonic()
    x = np.random.default_rng(options.seed).random(SHAPE, dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="es-sweep-") as scratch, AgentProcess(Path(scratch)) as agent:
        print(f"agent process {agent.pid} starting on {agent.target}; exporting the classifier", flush=True)
        model, manifest = export_classifier(Path(scratch) / "package", options.seed)
        direct = signature_call(Path(scratch) / "package", x)
        agent.wait_ready()
        levels = _sweep(agent, Path(scratch) / "package", x, direct, options)
        results: dict[str, Any] = {"levels": levels, "agent_exit_code": agent.stop()}
    return {
        "benchmark": "concurrency_sweep",
        "issue": 8,
        "command": command,
        "machine": machine_description(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "model": {
            "inputs": [s.describe() for s in manifest.inputs],
            "parameters": int(model.count_params()),
            "input_bytes": int(x.nbytes),
        },
        "agent_workers": _agent_workers(),
        **results,
        "targets": evaluate_targets(levels, options.transports),
        "runtime_seconds": round(time.monotonic() - started, 1),
    }


def _sweep(agent: AgentProcess, package: Path, x: np.ndarray, direct: Call, options: Options) -> list[dict[str, Any]]:
    from system.adapters.agent_client import GrpcEdgeAgentClient

    clients = [GrpcEdgeAgentClient(agent.target) for _ in range(max(options.clients))]
    try:
        clients[0].load_model(MODEL_NAME, str(package))
        paths: dict[str, Sequence[Call]] = {"direct": [direct] * max(options.clients)}
        for transport in options.transports:
            paths[f"agent_{transport}"] = [_predictor(c, x, transport == "shared_memory") for c in clients]
        for calls in paths.values():
            for _ in range(WARMUP_CALLS):
                calls[0]()
        print(f"sweep: {options.seconds:g} s per level and path, {', '.join(paths)}", flush=True)
        return measure_concurrency(paths, options, agent.cpu_seconds)
    finally:
        for c in clients:
            c.close()


def _predictor(client: Any, x: np.ndarray, shared_memory: bool) -> Call:
    return lambda: client.predict(MODEL_NAME, x, shared_memory=shared_memory)


def _agent_workers() -> int:
    from system.config import AgentSettings

    return AgentSettings().workers  # `agent serve` without --workers, as AgentProcess starts it


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    results = run(options, command_line("benchmarks.concurrency_sweep", argv))
    options.out.mkdir(parents=True, exist_ok=True)
    results["plot"] = plot(results, options.out / "concurrency_sweep.png")
    print(f"plot: {results['plot']['path'] or results['plot']['reason']}")
    publish(
        results,
        options.out / "concurrency_sweep.json",
        markdown=options.markdown,
        section=SECTION,
        render=render_section,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
