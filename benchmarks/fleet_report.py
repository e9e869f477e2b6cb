"""The fleet rollout benchmark's report: the BENCHMARKS.md section, its tables and the PNG plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

MODEL, VERSION = "img-classification", "1"
TARGET_DEVICES, TARGET_SECONDS = 1000, 60.0
_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


def sizes_table(results: dict[str, Any]) -> str:
    by_to = {p["to"]: p for p in results["growth"]}
    rows = []
    for s in results["sizes"]:
        if not s["ok"]:
            rows.append([f"{s['devices']:,}", *["n/a"] * 10, f"**failed**: {s['failure']}"])
            continue
        pair = by_to.get(s["devices"])
        rows.append(
            [
                f"{s['devices']:,}",
                f"{s['provision_s']:.2f}",
                f"{s['rollout_s']:.2f}",
                f"{s['rollout_gc_s']:.2f}",
                f"{s['fleet_seconds']:.0f}",
                f"{s['callbacks']:,}",
                f"{1e6 * s['rollout_s'] / max(s['callbacks'], 1):.0f}",
                f"{s['peak_rss_mb']:.0f}",
                f"{s['rss_per_device_kb']:.1f}",
                f"{pair['rollout_s_per_10x']:.2f}x" if pair else "",
                f"{pair['peak_rss_mb_per_10x']:.2f}x" if pair else "",
                f"ok ({s['executions']['SUCCEEDED']:,} SUCCEEDED)",
            ]
        )
    header = ["devices", "provision s", "rollout s", "of which GC s", "fleet time s", "callbacks", "µs per callback"]
    header += ["peak RSS MB"]
    header += ["RSS KB/device", "rollout growth per 10x", "RSS growth per 10x", "result"]
    return table(header, rows)


def render_section(results: dict[str, Any]) -> str:
    """The `fleet-rollout` section of BENCHMARKS.md."""
    libraries = ", ".join(f"{k} {v}" for k, v in results["libraries"].items() if v)
    targets = table(
        ["target (issue 7)", "limit", "measured", "verdict"],
        [[t["target"], t["limit"], t["measured"], _VERDICT[t["met"]]] for t in results["targets"]],
    )
    plot = results.get("plot") or {}
    plot_note = f"Plot: `{plot['path']}`." if plot.get("path") else f"No plot: {plot.get('reason', 'not drawn')}."
    baseline = results["sizes"][0].get("baseline_rss_mb", 0.0)
    loads = ", ".join(f"{s['devices']:,}: {s['load_before']:.2f} / {s['load_after']:.2f}" for s in results["sizes"])
    return f"""## Fleet rollout on the virtual clock (issue 7)

One OTA rollout per fleet size, each in a fresh process: light devices (the device's OTA code on a simulated
model runtime, `simulators/fleet/`) in a thing group of their own on the fake profile (moto, the simulated broker,
the jobs data plane) with a `VirtualClock`; one job for the group, light {MODEL} package version {VERSION}, default
rollout (1,000 things notified a minute). Provisioning is the things in moto and the devices started; the rollout runs
from CreateJob until the job is done and no device works on it (fleet time at 1 s resolution).

Peak RSS is the child process's: it includes Python, moto and boto3 (about {baseline:.0f} MB before the fleet was
built). RSS per device is its growth over that baseline; at 10 and 100 devices one-time costs (modules and caches
first used by the rollout) dominate it, so read it at 1,000 and up. "Of which GC" is the wall time the cyclic garbage
collector took during the rollout (`gc.callbacks`). A size counts only if every execution SUCCEEDED, every device
serves version {VERSION} and no driver caught an error. The machine may be shared: the load average shows how busy it
was (on 2 cores, above 1 the rollout competed for CPU).

- Machine: {summary_line(results["machine"])}, {libraries}
- Command: `{results["command"]}`
- Load average (1 min) before and after each size: {loads}
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{results.get("json_path", "fleet_rollout.json")}`

{sizes_table(results)}

Growth per 10x devices is the ratio between a size and the one before it (scaled to a factor of 10 when they are
not 10x apart); linear growth is 10x. The rollout rate (1,000 a minute) makes the 10,000-device rollout last nine
minutes of fleet time where the smaller ones take seconds, so its idle devices also make their 5-minute safety-net
polls: about 12 % more clock callbacks per device, which is most of its growth above 10x; the cost per callback
(the "µs per callback" column) grows by the garbage collector's share. Light devices collect less often while a
fleet runs (`Fleet.run_until`: a young-generation threshold of 50,000 and the heap frozen); before that, 10,000
devices spent 40 s of a 149 s rollout in the collector.

{targets}

{plot_note}
"""


def plot(results: dict[str, Any], path: Path) -> dict[str, str | None]:
    """Wall times and peak RSS against devices, log-log; skipped without matplotlib."""
    done = [s for s in results["sizes"] if s["ok"]]
    if importlib.util.find_spec("matplotlib") is None or not done:
        return {"path": None, "reason": "matplotlib is not installed" if done else "no size succeeded"}
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), layout="constrained")
    times, memory = figure.subplots(1, 2)
    devices = [s["devices"] for s in done]
    for key, label in (("rollout_s", "rollout"), ("provision_s", "provisioning")):
        times.plot(devices, [s[key] for s in done], marker="o", label=label)
    # linear through the largest size up to the target's: small fleets are all fixed costs
    anchor = max((s for s in done if s["devices"] <= TARGET_DEVICES), key=lambda s: s["devices"], default=done[0])
    linear = [anchor["rollout_s"] * n / anchor["devices"] for n in devices]
    times.plot(devices, linear, ls=":", c="grey", label=f"linear from {anchor['devices']:,}")
    times.plot([TARGET_DEVICES], [TARGET_SECONDS], "rv", label=f"target: {TARGET_DEVICES:,} under {TARGET_SECONDS:g} s")
    times.set(xscale="log", yscale="log", xlabel="devices", ylabel="wall time (s)")
    times.legend()
    memory.plot(devices, [s["peak_rss_mb"] for s in done], marker="o", label="peak RSS")
    grown = [max(s["peak_rss_mb"] - s["baseline_rss_mb"], 0.1) for s in done]
    memory.plot(devices, grown, marker="o", label="peak RSS over the baseline before the fleet")
    memory.set(xscale="log", yscale="log", xlabel="devices", ylabel="MB (child process)")
    memory.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=100)
    return {"path": str(path), "reason": None}
