"""The locust benchmark's verdicts and report: ratios to the baseline, targets, the BENCHMARKS.md section, the plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

_VERDICT = {True: "met", False: "**not met**", None: "not measured"}
MET_MEANS = (
    "A path's row is met when its locust run exited 0 within its time limit, its final stats hold the path's request "
    "entry with more than 0 requests and 0 failures, and so p50/p95/p99 and req/s are reported. The baseline's row is "
    "met when every baseline window made calls. The DESIGN.md row is met when the baseline, gRPC Predict with "
    "`byte_data` and the HTTP API rows are met and no run failed; it is not measured when one of them was left out "
    "(`--runs`). The targets ask for the numbers to be reported, not for any speed."
)


def versus_direct(stats: dict[str, Any] | None, base: dict[str, Any]) -> dict[str, float] | None:
    """p50 and p99 as multiples of the baseline's, and req/s as a fraction of its calls/s."""
    if not stats or not base["calls"] or not base["p50_ms"] or not base["p99_ms"]:
        return None
    return {
        "p50_ratio": round(stats["p50_ms"] / base["p50_ms"], 3),
        "p99_ratio": round(stats["p99_ms"] / base["p99_ms"], 3),
        "req_per_s_ratio": round(stats["req_per_s"] / base["calls_per_s"], 3),
    }


def _path_row(label: str, run: dict[str, Any] | None) -> dict[str, Any]:
    measured = "not run (--runs)"
    if run is not None and run["ok"]:
        measured = f"{run['stats']['requests']:,} requests, 0 failed"
    elif run is not None:
        measured = "failed: " + "; ".join(run["problems"])
    met = None if run is None else bool(run["ok"])
    return {"target": f"{label}: p50/p95/p99, req/s", "limit": "reported, 0 failed", "measured": measured, "met": met}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The baseline's row, one row per path (run or not), then DESIGN.md's locust target (MET_MEANS)."""
    base, windows = results["baseline"], results["baseline"]["windows"]
    rows = [
        {
            "target": f"direct-call baseline ({base['threads']} threads) measured in the same run",
            "limit": "calls in every window",
            "measured": f"{base['calls']:,} calls in {len(windows)} windows, {base['calls_per_s']:.1f}/s",
            "met": bool(windows) and all(w["calls"] > 0 for w in windows),
        }
    ]
    runs = {run["name"]: run for run in results["runs"]}
    required = [rows[0]]
    for name, path in results["paths"].items():
        rows.append(_path_row(path["label"], runs.get(name)))
        if path["required"]:
            required.append(rows[-1])
    failed = [row for row in rows if row["met"] is False]
    overall = False if failed else (None if any(row["met"] is None for row in required) else True)
    labels = " and ".join(path["label"] for path in results["paths"].values() if path["required"])
    rows.append(
        {
            "target": f"DESIGN.md section 5: {labels}, against the same-run baseline",
            "limit": "their rows and the baseline's met, no run failed",
            "measured": f"{len(failed)} row(s) not met" if failed else "all measured rows met",
            "met": overall,
        }
    )
    return rows


def run_line(run: dict[str, Any]) -> str:
    """One line for the console: requests, failures, p50/p99, req/s, and the problems of a failed run."""
    stats = run["stats"] or {}
    line = f"{stats.get('requests', 0)} requests, {stats.get('failures', 0)} failed, p50 {_ms(stats.get('p50_ms'))} ms"
    line += f", p99 {_ms(stats.get('p99_ms'))} ms, {stats.get('req_per_s', 0):.1f} req/s"
    return line if run["ok"] else f"{line} -> FAILED: {'; '.join(run['problems'])}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


def _ratio(ratios: dict[str, float] | None, key: str) -> str:
    return "n/a" if not ratios else f"×{ratios[key]:.2f}"


def runs_table(results: dict[str, Any]) -> str:
    base = results["baseline"]
    spread = ", ".join(f"{w['calls_per_s']:.0f}" for w in base["windows"])
    rows = [
        [
            f"direct: `serving_default` in-process, {base['threads']} threads",
            f"{base['calls']:,}",
            0,
            *(_ms(base[k]) for k in ("p50_ms", "p95_ms", "p99_ms")),
            f"{base['calls_per_s']:.1f}",
            "×1",
            "×1",
            "×1",
            f"baseline; calls/s per window: {spread}",
        ]
    ]
    for run in results["runs"]:
        stats, ratios = run["stats"] or {}, run["vs_direct"]
        verdict = "ok" if run["ok"] else "**failed**: " + "; ".join(run["problems"])
        if run["locust_cpu_warning"]:
            verdict += " (locust warned its CPU use was above 90 %)"
        rows.append(
            [
                f"locust: {run['label']}",
                f"{stats.get('requests', 0):,}",
                stats.get("failures", "n/a"),
                *(_ms(stats.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms")),
                f"{stats['req_per_s']:.1f}" if stats else "n/a",
                _ratio(ratios, "p50_ratio"),
                _ratio(ratios, "p99_ratio"),
                _ratio(ratios, "req_per_s_ratio"),
                verdict,
            ]
        )
    header = ["path", "requests", "failures", "p50 ms", "p95 ms", "p99 ms", "req/s"]
    return table([*header, "p50 vs direct", "p99 vs direct", "req/s vs direct", "result"], rows)


def _csv_note(results: dict[str, Any]) -> str:
    pairs = [(r["stats"]["requests"], r["csv_requests"]) for r in results["runs"] if r["stats"] and r["csv_requests"]]
    if not pairs:
        return ""
    missed = max(1 - csv / final for final, csv in pairs)
    return f" In this run the CSVs lacked up to {missed:.0%} of a run's requests."


def render_section(results: dict[str, Any]) -> str:
    """The `locust` section of BENCHMARKS.md."""
    options, target, base = results["options"], results["target"], results["baseline"]
    targets = table(
        ["target", "limit", "measured", "verdict"],
        [[t["target"], t["limit"], t["measured"], _VERDICT[t["met"]]] for t in results["targets"]],
    )
    plot = results.get("plot") or {}
    plot_note = f"Plot: `{plot['path']}`." if plot.get("path") else f"No plot: {plot.get('reason', 'not drawn')}."
    commands = "\n".join(run["command"] for run in results["runs"])
    load = results["load_average_1min"]
    window_s = options["seconds"] / max(len(base["windows"]), 1)
    return f"""## Locust load test (issue 8)

Load on the Edge Agent's gRPC Predict and on the device web UI's HTTP inference API (`POST /api/predict`), made by
locust (`benchmarks/locustfile.py`, headless, one run per path) against a target started for this run
(`benchmarks/locust_target.py`): `edgesim agent serve` in its own process on a unix socket, serving the classifier
({", ".join(target["model_inputs"])}), and a device web UI over it on 127.0.0.1. Every locust user sends one fixed
random image back to back (a closed loop). gRPC Predict sends the tensor; the HTTP API gets it as a PNG upload,
decodes it, runs the device's inference engine (preprocessing, Predict through the agent, post-processing) and
answers JSON with images.

The baseline is the same SavedModel's `serving_default` signature (the agent's package: what the agent runs), called
back to back in the benchmark's own process by as many threads as locust has users, one image each. It runs in
windows, one before each locust run and one after the last, so that drift on this shared machine hits both sides.
Locust, the target and the agent share the machine's cores; they were idle while the baseline ran.

- Machine: {summary_line(results["machine"])}, locust {results["locust_version"]}
- Command: `{results["command"]}`
- Each locust run: {options["users"]} users at {options["spawn_rate"]:g}/s, `-t {options["seconds"]}s`, `--reset-stats`
- Baseline: {base["threads"]} threads, input {base["input"]}, {len(base["windows"])} windows of {window_s:.1f} s
- Load average (1 min) before and after: {load["before"]} / {load["after"]}
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{results["json_path"]}`

{runs_table(results)}

The locust numbers are its final stats (`--json-file`, written at shutdown once the users stopped); locust rounds
each response time into a bucket (1 ms below 100 ms, 10 ms below 1 s) before taking percentiles, and req/s counts
from the stats reset (once all users were spawned) to the last request. The baseline's percentiles are exact (every
call timed). "vs direct" is the path's p50 or p99 over the baseline's, and its req/s over the baseline's calls/s.
locust's own CSVs (`--csv`, kept in the results folder) are rewritten once a second and not at exit, so they miss the
last second of a run and are not used for the table.{_csv_note(results)}

The locust command lines, run from the repository root (the agent socket and the web UI port were this run's):

```
{commands}
```

### Targets

{targets}

{MET_MEANS}

{plot_note}
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """p50/p95/p99 per path (direct included, log scale) and req/s per path; skipped without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": "matplotlib is not installed in this environment (the plot was skipped)"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    base = results["baseline"]
    series = [("direct", base, base["calls_per_s"])]
    series += [(run["name"], run["stats"], run["stats"]["req_per_s"]) for run in results["runs"] if run["stats"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.27
    for offset, key in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        xs = [i + (offset - 1) * width for i in range(len(series))]
        left.bar(xs, [max(stats[key] or 0, 0.1) for _, stats, _ in series], width, label=key.removesuffix("_ms"))
    left.set_yscale("log")
    left.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 20, not 2×10^1
    left.set_ylabel("latency (ms, log scale)")
    left.legend()
    right.bar(range(len(series)), [rate for _, _, rate in series])
    right.set_ylabel("requests (calls) per second")
    for axis in (left, right):
        axis.set_xticks(range(len(series)), [name for name, _, _ in series], rotation=15)
    fig.suptitle(f"{results['options']['users']} users / threads per path")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}
