"""The agent-overhead benchmark's results as a BENCHMARKS.md section and an optional PNG plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

TARGET_LABELS = {"agent_byte_data": "byte_data", "agent_shared_memory": "shared memory"}
VERDICT = {True: "met", False: "**not met**", None: "not measured"}
NO_MATPLOTLIB = "matplotlib is not installed in this environment (the plot was skipped)"


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
    return table(["path", "p50 ms", "p95 ms", "p99 ms", "mean ms", "calls/s", "added p50 vs baseline (ratio)"], rows)


def targets_table(targets: list[dict[str, Any]]) -> str:
    """The targets as a markdown table with a verdict column (shared with the concurrency sweep)."""
    return table(
        ["target (DESIGN.md section 5)", "limit", "measured", "verdict"],
        [[t["target"], t["limit"], t["measured"], VERDICT[t["met"]]] for t in targets],
    )


def plot_note(results: dict[str, Any]) -> str:
    plot = results.get("plot") or {}
    return f"Plot: `{plot['path']}`." if plot.get("path") else f"No plot: {plot.get('reason', 'not drawn')}."


def _http_paragraph(results: dict[str, Any]) -> str:
    http, stats = results["http"], results["latency"]["http_api"]
    return f"""`http_api` is what a client of the device sees, not transport cost: it posts the PNG
({http["png_bytes"]:,} bytes; a {http["request_bytes"]:,}-byte multipart body, field `image`) to `POST /api/predict`
of the device web UI (Flask under waitress, in the device's process, over one keep-alive loopback connection) and
reads the whole answer. That time includes the HTTP server and multipart parsing, PNG decoding, the manifest's
pre-processing (`system.preprocessing.preprocess`), Predict over the agent (`byte_data`, as the device sends it),
post-processing (the class label and a PNG thumbnail of the image), and the JSON answer ({http["answer_bytes"]:,}
bytes, the thumbnail as a data URI). The device has no segmentation model deployed, so each upload runs the
classifier only. Its p50 is {stats["p50_ms"] / results["latency"][results["baseline"]]["p50_ms"]:.1f}× the baseline's;
its scores agree with the direct output to {results["max_abs_diff_http_vs_direct"]:.1e} (the device rounds them to
6 decimals)."""


def render_section(results: dict[str, Any]) -> str:
    """The `agent-overhead` section of BENCHMARKS.md."""
    run, model = results["latency_run"], results["model"]
    floor = results["latency"]["grpc_health_check"]["p50_ms"]
    beyond = ", ".join(
        f"{label} {results['overhead'][key]['added_p50_ms'] - floor:+.3f} ms" for key, label in TARGET_LABELS.items()
    )
    cpu = run["cpu_seconds"]
    return f"""## Agent overhead (issues 3 and 8)

Predict through the Edge Agent (`edgesim agent serve` in its own process, unix socket), and the device's HTTP API
(a device web UI in another process over that agent), against the same model called directly in one process, same
input ({model["inputs"][0]}, {model["input_bytes"]:,} bytes): one PNG, and the tensor the device's pre-processing
makes of it. Model: {model["builder"]}, {model["parameters"]:,} parameters, served from a {model["package"]}
package. The baseline is the SavedModel's `serving_default` signature called directly, which is what the agent runs.
Throughput under concurrent callers is in the concurrency sweep's section.

- Machine: {summary_line(results["machine"])}
- Command: `{results["command"]}`
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{results["json_path"]}`

### Latency, one caller

{run["iterations"]} calls per path after {results["options"]["warmup"]} warm-up calls, interleaved round robin
(the order rotates each iteration), stopped by {run["stopped_by"]}. Agent and direct outputs differ by at most
{results["max_abs_diff_agent_vs_direct"]:.1e}. CPU time over the run, all paths together: agent process
{cpu["agent_process"]:.1f} s, device process (web UI) {cpu["device_process"]:.1f} s, benchmark process
{cpu["benchmark_process"]:.1f} s, in {run["seconds"]:.0f} s.

{_latency_table(results)}

Added p50 beyond the gRPC floor ({floor:.3f} ms, a Health.Check round trip): {beyond}.

{_http_paragraph(results)}

### Targets

{targets_table(results["targets"])}

{plot_note(results)}
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """Draw p50/p95/p99 latency per path; skipped without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": NO_MATPLOTLIB}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["latency"])[::-1]  # the table's order, top to bottom
    fig, axes = plt.subplots(figsize=(9, 4.5))
    height = 0.27
    for offset, stat in zip((height, 0.0, -height), ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        positions = [i + offset for i in range(len(keys))]
        axes.barh(positions, [results["latency"][k][stat] for k in keys], height=height, label=stat[:3])
    axes.set_yticks(range(len(keys)), keys)
    axes.set_xlabel("latency, one caller (ms)")
    axes.set_title("Agent overhead: latency per path")
    axes.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}
