"""The agent-overhead benchmark's results as a BENCHMARKS.md section and an optional PNG plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


def _latency_table(results: dict[str, Any]) -> str:
    rows = []
    for key, stats in results["latency"].items():
        extra = results["overhead"].get(key)
        added = f"+{extra['added_p50_ms']:.3f} ms (×{extra['ratio_p50']:.2f})" if extra else ""
        if key == results["baseline"]:
            added = "baseline"
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
    rows = [
        [
            level["clients"],
            f"{level['agent']['throughput_per_s']:.0f}",
            f"{level['agent']['p50_ms']:.2f}",
            f"{level['agent']['p99_ms']:.2f}",
            f"{level['direct']['throughput_per_s']:.0f}",
            f"{level['direct']['p50_ms']:.2f}",
            f"{level['direct']['p99_ms']:.2f}",
            f"{level['agent_over_direct']:.0%}",
        ]
        for level in results["concurrency"]
    ]
    header = ["clients", "agent calls/s", "agent p50 ms", "agent p99 ms"]
    header += ["direct calls/s", "direct p50 ms", "direct p99 ms", "agent / direct"]
    return table(header, rows)


def render_section(results: dict[str, Any]) -> str:
    """The `agent-overhead` section of BENCHMARKS.md."""
    run = results["latency_run"]
    model = results["model"]
    seconds = results["options"]["seconds"]
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

### Throughput, concurrent callers

Each level runs agent clients (threads, one `GrpcEdgeAgentClient` each, `byte_data`) and as many threads calling
the baseline in-process, in two alternating rounds, {seconds:g} s per path in all.

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
