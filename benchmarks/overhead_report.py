"""The agent-overhead benchmark's results as a BENCHMARKS.md section and an optional PNG plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

TARGET_LABELS = {"agent_byte_data": "byte_data", "agent_shared_memory": "shared memory"}
_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


def _latency_table(results: dict[str, Any]) -> str:
    rows = []
    base = results["latency"][results["baseline"]]["p50_ms"]
    for key, stats in results["latency"].items():
        added = f"{stats['p50_ms'] - base:+.3f} ms (×{stats['p50_ms'] / base:.2f})"
        if key == results["baseline"]:
            added = "baseline"
        elif key == "grpc_health_check":
            added = "n/a (no model)"
        rows.append(
            [
                f"`{key}`: {stats['description']}",
                f"{stats['p50_ms']:.3f}",
                f"{stats['p95_ms']:.3f}",
                f"{stats['p99_ms']:.3f}",
                f"{stats['mean_ms']:.3f}",
                f"{stats['throughput_per_s']:.0f}",
                added,
            ]
        )
    return table(["path", "p50 ms", "p95 ms", "p99 ms", "mean ms", "calls/s", "added p50 vs baseline"], rows)


def _concurrency_table(results: dict[str, Any]) -> str:
    rows = []
    for level in results["concurrency"]:
        agent, direct = level["agent"], level["direct"]
        agent_cpu = f"{agent['cpu_ms_per_call_agent_process']:.2f} + {agent['cpu_ms_per_call_benchmark_process']:.2f}"
        rows.append(
            [
                level["clients"],
                f"{agent['throughput_per_s']:.0f}",
                f"{agent['p50_ms']:.2f}",
                f"{agent['p99_ms']:.2f}",
                agent_cpu,
                f"{direct['throughput_per_s']:.0f}",
                f"{direct['p50_ms']:.2f}",
                f"{direct['p99_ms']:.2f}",
                f"{direct['cpu_ms_per_call_benchmark_process']:.2f}",
                f"{level['agent_over_direct']:.0%}",
            ]
        )
    header = ["clients", "agent calls/s", "agent p50 ms", "agent p99 ms", "agent CPU ms/call (agent + client)"]
    header += ["direct calls/s", "direct p50 ms", "direct p99 ms", "direct CPU ms/call", "agent / direct"]
    return table(header, rows)


def render_section(results: dict[str, Any]) -> str:
    """The `agent-overhead` section of BENCHMARKS.md."""
    run = results["latency_run"]
    model = results["model"]
    seconds = results["options"]["seconds"]
    cores = results["machine"]["usable_cores"]
    floor = results["latency"]["grpc_health_check"]["p50_ms"]
    beyond = ", ".join(
        f"{TARGET_LABELS[k]} {v['added_p50_ms'] - floor:+.3f} ms" for k, v in results["overhead"].items()
    )
    targets = table(
        ["target (DESIGN.md section 5)", "limit", "measured", "verdict"],
        [[t["target"], t["limit"], t["measured"], _VERDICT[t["met"]]] for t in results["targets"]],
    )
    plot = results.get("plot") or {}
    plot_note = f"Plot: `{plot['path']}`." if plot.get("path") else f"No plot: {plot.get('reason', 'not drawn')}."
    return f"""## Agent overhead (issue 3)

Predict through the Edge Agent (`edgesim agent serve` in its own process, unix socket) against the same
model called directly in one process, same input ({model["inputs"][0]}, {model["input_bytes"]:,} bytes).
Model: {model["builder"]}, {model["parameters"]:,} parameters, served from a {model["package"]} package.
The baseline is the SavedModel's `serving_default` signature called directly, which is what the agent runs.

- Machine: {summary_line(results["machine"])}
- Command: `{results["command"]}`
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{results["json_path"]}`

### Latency, one caller

{run["iterations"]} calls per path after {results["options"]["warmup"]} warm-up calls, interleaved round robin
(the order rotates each iteration), stopped by {run["stopped_by"]}. Agent and direct outputs differ by at most
{results["max_abs_diff_agent_vs_direct"]:.1e}.

{_latency_table(results)}

Added p50 beyond the gRPC floor ({floor:.3f} ms, a Health.Check round trip): {beyond}.

### Throughput, concurrent callers

Each level runs agent clients (threads, one `GrpcEdgeAgentClient` each, `byte_data`) and as many threads calling
the baseline in-process, in two alternating rounds, {seconds:g} s per path in all. CPU time is per call, from the
agent process's and this process's CPU counters over the same windows (the machine has {cores} cores for both).
grpcio shares one connection among channels with the same target and options, so the clients of one level
multiplex one unix-socket connection, as threads of one application would.

{_concurrency_table(results)}

### Targets

{targets}

{plot_note}
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """Draw p50 latency per path and throughput per concurrency level; skipped without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": "matplotlib is not installed in this environment (the plot was skipped)"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    keys = list(results["latency"])
    left.barh(keys, [results["latency"][k]["p50_ms"] for k in keys])
    left.set_xlabel("p50 latency (ms)")
    levels = results["concurrency"]
    clients = [level["clients"] for level in levels]
    for side in ("agent", "direct"):
        right.plot(clients, [level[side]["throughput_per_s"] for level in levels], marker="o", label=side)
    right.set_xlabel("concurrent callers")
    right.set_ylabel("calls/s")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}
