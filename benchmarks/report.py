"""The summary at the top of BENCHMARKS.md: every benchmark's targets and headline figures in one place.

It runs last in `make bench` and measures nothing itself: it reads the JSON result of each benchmark
script from the results folder (agent overhead, concurrency sweep, swap under load, locust, the
simulated broker and the fleet rollout), and writes

- `<out>/summary.json`: per benchmark its command, runtime and targets;
- `<out>/summary.png`: the rollout and broker figures side by side (rollout wall time per fleet size;
  message rate of the simulated broker and of paho through Mosquitto, per QoS);
- with `--write-markdown`, the `summary` section: the machine, the commands, and the targets of
  DESIGN.md section 5 (and the issues) with met / not met, linking to each benchmark's own section.

A missing result is reported as not measured, with the command that produces it.

    python -m benchmarks.report [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_description, summary_line
from benchmarks.markdown import table, write_section

SECTION = "summary"
_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


@dataclass(frozen=True)
class Source:
    """One benchmark script: its result file, its BENCHMARKS.md section, and how to run it."""

    name: str
    title: str
    json_name: str
    anchor: str
    module: str


SOURCES = (
    Source(
        "agent_overhead", "Agent overhead", "agent_overhead.json", "agent-overhead-issues-3-and-8", "agent_overhead"
    ),
    Source(
        "concurrency_sweep",
        "Concurrency sweep",
        "concurrency_sweep.json",
        "concurrency-sweep-issue-8",
        "concurrency_sweep",
    ),
    Source("swap_under_load", "Swap under load", "swap_under_load.json", "swap-under-load-issue-8", "swap_under_load"),
    Source("locust", "Locust load test", "locust.json", "locust-load-test-issue-8", "locust_bench"),
    Source(
        "broker",
        "Simulated broker vs. Mosquitto",
        "broker.json",
        "simulated-broker-vs-mosquitto-issue-4",
        "broker_compare",
    ),
    Source(
        "fleet_rollout",
        "Fleet rollout",
        "fleet_rollout.json",
        "fleet-rollout-on-the-virtual-clock-issue-7",
        "fleet_rollout",
    ),
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="the results folder (read, written)"
    )
    parser.add_argument("--write-markdown", type=Path, metavar="PATH", help="rewrite this file's summary section")
    return parser.parse_args(argv)


def gather(out: Path) -> dict[str, Any]:
    """Each benchmark's command, runtime, date and targets, from its JSON result (None when missing)."""
    found: dict[str, Any] = {}
    for source in SOURCES:
        path = out / source.json_name
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            found[source.name] = None
            continue
        found[source.name] = {
            "command": result.get("command", ""),
            "runtime_seconds": result.get("runtime_seconds"),
            "targets": result.get("targets", []),
            "plot": (result.get("plot") or {}).get("path"),
        }
    return found


def _targets_table(found: dict[str, Any]) -> str:
    rows = []
    for source in SOURCES:
        result = found[source.name]
        link = f"[{source.title}](#{source.anchor})"
        if result is None:
            rows.append([link, "(no result)", "", f"not measured: `python -m benchmarks.{source.module}`", ""])
            continue
        for target in result["targets"]:
            rows.append([link, target["target"], target["limit"], target["measured"], _VERDICT[target["met"]]])
    return table(["benchmark", "target", "limit", "measured", "verdict"], rows)


def _runs_table(found: dict[str, Any]) -> str:
    rows = []
    for source in SOURCES:
        result = found[source.name]
        if result is None:
            rows.append([source.title, f"`python -m benchmarks.{source.module}`", "not run"])
            continue
        runtime = result["runtime_seconds"]
        rows.append([source.title, f"`{result['command']}`", f"{runtime:.0f} s" if runtime else ""])
    return table(["benchmark", "command", "runtime"], rows)


def render_section(summary: dict[str, Any]) -> str:
    found = summary["benchmarks"]
    targets = [t for result in found.values() if result for t in result["targets"]]
    counts = {verdict: sum(1 for t in targets if t["met"] is verdict) for verdict in (True, False, None)}
    missing = [source.title for source in SOURCES if found[source.name] is None]
    plot = summary["plot"]
    plot_note = f"Plot: `{plot['path']}`." if plot.get("path") else f"No plot: {plot.get('reason')}."
    return f"""## Summary

`make bench` runs every benchmark below (about 8 minutes on the machine below) and rewrites this file; each
section is owned by its script, and this summary by `python -m benchmarks.report`, which reads their JSON results
in `benchmarks/results/`. Every figure comes with a baseline measured in the same run (these machines are noisy).

- Machine: {summary_line(summary["machine"])}
- Targets: {counts[True]} met, {counts[False]} not met, {counts[None]} not measured{
        "; no result yet for " + ", ".join(missing) if missing else ""
    }

{_targets_table(found)}

{_runs_table(found)}

{plot_note}
"""


def plot(out: Path, path: Path) -> dict[str, str | None]:
    """Rollout wall time per fleet size, and broker message rates per path and QoS."""
    if importlib.util.find_spec("matplotlib") is None:
        return {"path": None, "reason": "matplotlib is not installed in this environment (the plot was skipped)"}
    fleet, broker = _load(out / "fleet_rollout.json"), _load(out / "broker.json")
    if fleet is None and broker is None:
        return {"path": None, "reason": "neither the fleet rollout nor the broker result exists yet"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    if fleet is not None:
        sizes = fleet["sizes"]
        left.loglog([s["devices"] for s in sizes], [s["rollout_s"] for s in sizes], marker="o")
        left.set_xlabel("devices")
        left.set_ylabel("rollout wall time (s)")
        left.set_title("Fleet rollout (fake profile, virtual clock)")
    if broker is not None:
        _broker_bars(right, broker)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return {"path": str(path), "reason": None}


def _broker_bars(ax: Any, broker: dict[str, Any]) -> None:
    rows = [
        (f"{path} QoS {qos[-1]}", figures["rate"]["rate_per_s"])
        for path, by_qos in broker["results"].items()
        for qos, figures in by_qos.items()
        if "rate" in figures
    ]
    ax.barh([label for label, _ in rows], [rate for _, rate in rows])
    ax.set_xscale("log")
    ax.set_xlabel("messages/s")
    ax.set_title("Simulated broker vs. paho + Mosquitto")
    ax.tick_params(axis="y", labelsize="small")


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "benchmark": "report",
        "issue": 8,
        "machine": machine_description(),
        "benchmarks": gather(args.out),
        "plot": plot(args.out, args.out / "summary.png"),
    }
    summary["runtime_seconds"] = round(time.monotonic() - started, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"results: {args.out / 'summary.json'}; plot: {summary['plot']['path'] or summary['plot']['reason']}")
    if args.write_markdown is not None:
        write_section(args.write_markdown, SECTION, render_section(summary))
        print(f"markdown: section {SECTION} of {args.write_markdown}")
    for source in SOURCES:
        result = summary["benchmarks"][source.name]
        for target in result["targets"] if result else []:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
            print(f"{source.name}: {target['target']} {target['limit']}: {target['measured']} -> {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
