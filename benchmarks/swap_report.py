"""The swap-under-load benchmark's figures: statistics per phase and step, its BENCHMARKS.md section, its plot."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import summary_line
from benchmarks.markdown import table
from benchmarks.swap_traffic import Sample

PHASES = ("before", "during", "between", "after", "steady", "all")
_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


def latency_summary(samples: Sequence[Sample]) -> dict[str, Any]:
    """Requests, failures, retries and latency percentiles (ms, from when each request was due)."""
    ok = [s.latency_ms for s in samples if not s.error]
    stats: dict[str, Any] = {
        "requests": len(samples),
        "failed": sum(1 for s in samples if s.error),
        "retried": sum(1 for s in samples if s.retried),
    }
    if ok:
        p50, p95, p99 = np.percentile(ok, [50, 95, 99])
        stats.update(p50_ms=round(float(p50), 3), p95_ms=round(float(p95), 3), p99_ms=round(float(p99), 3))
        stats.update(max_ms=round(max(ok), 3), mean_ms=round(float(np.mean(ok)), 3))
    else:
        stats.update(p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None, mean_ms=None)
    return stats


def phase_of(sample: Sample, swaps: Sequence[dict[str, Any]]) -> str:
    """`before`, `during`, `between` or `after`, by when the request was due."""
    if sample.due_s < swaps[0]["start_s"]:
        return "before"
    if sample.due_s > swaps[-1]["end_s"]:
        return "after"
    if any(s["start_s"] <= sample.due_s <= s["end_s"] for s in swaps):
        return "during"
    return "between"


def phase_statistics(samples: Sequence[Sample], swaps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Statistics per phase, `steady` (all but during), `all`, and the p99 ratio during / steady."""
    groups: dict[str, list[Sample]] = {name: [] for name in PHASES}
    for sample in samples:
        phase = phase_of(sample, swaps)
        groups[phase].append(sample)
        groups["all"].append(sample)
        if phase != "during":
            groups["steady"].append(sample)
    phases: dict[str, Any] = {name: {"name": name, **latency_summary(group)} for name, group in groups.items()}
    during, steady = phases["during"]["p99_ms"], phases["steady"]["p99_ms"]
    phases["ratio_p99_during_vs_steady"] = round(during / steady, 3) if during and steady else float("nan")
    phases["errors"] = sorted({s.error for s in samples if s.error})[:10]
    return phases


def step_statistics(samples: Sequence[Sample], swaps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per swap step: its duration over all swaps and the latency of the requests due while it ran."""
    names = [step["step"] for step in swaps[0]["steps"]]
    rows = []
    for name in names:
        windows = [(step["start_s"], step["end_s"]) for s in swaps for step in s["steps"] if step["step"] == name]
        inside = [s for s in samples if any(a <= s.due_s <= b for a, b in windows)]
        durations = [(b - a) * 1000 for a, b in windows]
        rows.append(
            {
                "step": name,
                "duration_ms_mean": round(float(np.mean(durations)), 1),
                "duration_ms_max": round(max(durations), 1),
                **latency_summary(inside),
            }
        )
    return rows


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _phase_table(phases: dict[str, Any]) -> str:
    rows = [
        [
            name,
            f"{phases[name]['requests']:,}",
            phases[name]["failed"],
            phases[name]["retried"],
            _ms(phases[name]["p50_ms"]),
            _ms(phases[name]["p95_ms"]),
            _ms(phases[name]["p99_ms"]),
            _ms(phases[name]["max_ms"]),
        ]
        for name in PHASES
    ]
    return table(["phase", "requests", "failed", "retried", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows)


def _step_table(steps: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            f"`{s['step']}`",
            f"{s['duration_ms_mean']:.0f}",
            f"{s['duration_ms_max']:.0f}",
            s["requests"],
            _ms(s["p50_ms"]),
            _ms(s["p99_ms"]),
            _ms(s["max_ms"]),
        ]
        for s in steps
    ]
    return table(["step", "mean ms", "max ms", "requests due", "p50 ms", "p99 ms", "max ms (requests)"], rows)


def _config_table(configs: dict[str, Any]) -> str:
    rows = []
    for key, config in configs.items():
        phases = config["phases"]
        load = next(step for step in config["steps"] if step["step"] == "load")
        rows.append(
            [
                f"`{key}`",
                f"{phases['all']['requests']:,}",
                phases["all"]["failed"],
                phases["all"]["retried"],
                _ms(phases["steady"]["p50_ms"]),
                _ms(phases["steady"]["p99_ms"]),
                _ms(phases["during"]["p50_ms"]),
                _ms(phases["during"]["p99_ms"]),
                _ms(phases["during"]["max_ms"]),
                f"**{phases['ratio_p99_during_vs_steady']:.2f}x**",
                f"{load['duration_ms_mean']:.0f}",
            ]
        )
    header = ["agent", "requests", "failed", "retried", "steady p50", "steady p99", "during p50", "during p99"]
    return table([*header, "during max", "p99 during / steady", "load step ms"], rows)


def render_section(results: dict[str, Any]) -> str:
    """The `swap-under-load` section of BENCHMARKS.md."""
    options, configs = results["options"], results["configs"]
    targets = table(
        ["target", "limit", "measured", "verdict"],
        [[t["target"], t["limit"], t["measured"], _VERDICT[t["met"]]] for t in results["targets"]],
    )
    drawn = results.get("plot") or {}
    plot_note = f"Plot: `{drawn['path']}`." if drawn.get("path") else f"No plot: {drawn.get('reason', 'not drawn')}."
    described = "\n".join(f"- `{key}`: {config['description']}" for key, config in configs.items())
    details = "\n\n".join(
        f"`{key}` by phase (errors: {'; '.join(config['phases']['errors']) or 'none'}):\n\n"
        f"{_phase_table(config['phases'])}\n\n`{key}` by swap step:\n\n{_step_table(config['steps'])}"
        for key, config in configs.items()
    )
    return f"""## Swap under load (issue 8)

Steady Predict traffic against an Edge Agent in its own process (unix socket, `byte_data`, FLOAT32[1,224,224,3])
while the device's OTA steps (`OtaSteps`: load, health check, switch, unload the old version) swap in a new
version of the classifier {options["swaps"]} times, {options["gap_seconds"]:g} s apart, with
{options["steady_seconds"]:g} s of steady traffic before the first swap and after the last.
Traffic: {options["rate"]:g} Predicts/s from {options["clients"]} client threads, an open loop (latency counts from
when a request was due, so a stall is charged to every request it delays); each request goes to the model the
device's roster says is serving, and a NOT_FOUND raced by a swap is retried once with the new model, as the
device's inference engine does ("retried"). A request belongs to a phase by when it was due; "during" is from the
start of a load to the end of the old version's unload, "steady" every request outside a swap. Latencies in ms.
Agent configurations, measured one after the other in this run:

{described}

- Machine: {summary_line(results["machine"])}
- Command: `{results["command"]}`
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers (every request) in `{results["json_path"]}`

{_config_table(configs)}

{targets}

{plot_note}

<details><summary>Per phase and per step</summary>

{details}

</details>
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """Latency of every request over time, one panel per configuration, the swaps shaded."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": "matplotlib is not installed in this environment (the plot was skipped)"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = results["configs"]
    fig, axes = plt.subplots(len(configs), 1, figsize=(11, 3 * len(configs)), sharey=True, squeeze=False)
    for ax, (key, config) in zip(axes[:, 0], configs.items(), strict=True):
        _plot_config(ax, key, config)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}


def _plot_config(ax: Any, key: str, config: dict[str, Any]) -> None:
    samples = config["samples"]
    ax.scatter(samples["due_s"], samples["latency_ms"], s=3, label="Predict latency")
    failed = config["failed_samples"]
    if failed:
        ax.scatter([s["due_s"] for s in failed], [s["latency_ms"] for s in failed], s=12, c="red", label="failed")
    for index, swap in enumerate(config["swaps"]):
        ax.axvspan(swap["start_s"], swap["end_s"], color="orange", alpha=0.3, label="swap" if index == 0 else None)
    steady = config["phases"]["steady"]["p99_ms"]
    if steady:
        ax.axhline(steady, color="gray", linestyle="--", label=f"steady p99 {steady:.1f} ms")
    ax.set_yscale("log")
    ax.set_ylabel("ms from due time")
    ax.set_title(f"{key}: p99 during swaps / steady {config['phases']['ratio_p99_during_vs_steady']:.2f}x")
    ax.legend(loc="upper right", fontsize="small")
