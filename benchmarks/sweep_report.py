"""The concurrency sweep's results as a BENCHMARKS.md section and an optional PNG plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table
from benchmarks.overhead_report import NO_MATPLOTLIB, plot_note, targets_table


def _levels_table(results: dict[str, Any]) -> str:
    """One row per level and path: throughput, latency, CPU per call, ratio to direct."""
    rows = []
    for level in results["levels"]:
        for name, stats in level["paths"].items():
            ratio = level["agent_over_direct"].get(name)
            rows.append(
                [
                    level["clients"],
                    f"`{name}`",
                    f"{stats['throughput_per_s']:.0f}",
                    f"{stats['p50_ms']:.2f}",
                    f"{stats['p99_ms']:.2f}",
                    f"{stats['cpu_ms_per_call_agent_process']:.2f}",
                    f"{stats['cpu_ms_per_call_benchmark_process']:.2f}",
                    "baseline" if ratio is None else f"{ratio:.0%}",
                ]
            )
    header = ["clients", "path", "calls/s", "p50 ms", "p99 ms", "agent CPU ms/call", "bench CPU ms/call"]
    return table([*header, "calls/s vs direct"], rows)


def render_section(results: dict[str, Any]) -> str:
    """The `concurrency-sweep` section of BENCHMARKS.md."""
    options, model = results["options"], results["model"]
    levels = ", ".join(str(level["clients"]) for level in results["levels"])
    cores = results["machine"]["usable_cores"]
    return f"""## Concurrency sweep (issue 8)

Throughput and latency of Predict through the Edge Agent (`edgesim agent serve` in its own process, unix socket)
with {levels} concurrent callers, against as many threads calling the same model directly in one process (the
SavedModel's `serving_default` signature, which is what the agent runs), same input ({model["inputs"][0]},
{model["input_bytes"]:,} bytes). Each caller is a thread of this process calling back to back; each agent caller
has its own `GrpcEdgeAgentClient` (grpcio shares one connection among channels with the same target and options,
so they multiplex one unix-socket connection, as threads of one application would).

- Machine: {summary_line(results["machine"])}
- Command: `{results["command"]}`
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{results["json_path"]}`

Each level runs two rounds over the paths, the second in reverse order so that drift hits every path alike,
{options["seconds"]:g} s per level and path in all. CPU time per call comes from the agent process's and this
process's CPU counters over the same windows. The machine has {cores} usable cores for all of it: beyond
{cores} callers nothing more runs in parallel, so throughput flattens and latency grows with the queue. The agent
serves with {results["agent_workers"]} RPC threads (its default): above that, calls wait in the agent's queue.

{_levels_table(results)}

### Targets

{targets_table(results["targets"])}

{plot_note(results)}
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """Draw throughput and p99 latency against concurrency (log2 axis), per path; skipped without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": NO_MATPLOTLIB}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = results["levels"]
    clients = [level["clients"] for level in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in levels[0]["paths"]:
        left.plot(clients, [level["paths"][name]["throughput_per_s"] for level in levels], marker="o", label=name)
        right.plot(clients, [level["paths"][name]["p99_ms"] for level in levels], marker="o", label=name)
    for axes, label in ((left, "throughput (calls/s)"), (right, "p99 latency (ms)")):
        axes.set_xscale("log", base=2)
        axes.set_xticks(clients, [str(c) for c in clients])
        axes.set_xlabel("concurrent callers")
        axes.set_ylabel(label)
        axes.legend()
    left.set_ylim(bottom=0)
    fig.suptitle("Concurrency sweep: agent Predict vs. direct")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}
