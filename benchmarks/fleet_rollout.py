"""Fleet rollout (issue 7): wall time and peak memory of one OTA rollout to N light devices.

For each fleet size (default 10, 100, 1,000, 10,000) one rollout runs in a fresh child process,
so that its peak RSS is that size's own and moto's process-global state starts empty: a fake
`SimulatedCloud` on a `VirtualClock`, a `Fleet` of light devices in a thing group of their own
(their folders on tmpfs when the machine has one), a light img-classification package version "1"
in the object store, and one IoT job for the whole group with the DEFAULT rollout (no
jobExecutionsRolloutConfig: the service notifies 1,000 things a minute, so the last of 10,000 devices
hears of the job nine minutes in). Measured separately, in wall time: provisioning (things in moto,
devices started) and the rollout (CreateJob until `fleet.finished(job)`); then the fleet time the
rollout took (1 s resolution: `Fleet.run_until` advances the clock a second at a time), the
callbacks the clock fired and the time the garbage collector took meanwhile, peak RSS at the end of
the child and the RSS it grew by per device. A size counts only if every execution SUCCEEDED, every
device serves version 1 and the drivers caught no exception; otherwise, or when the child outlives
its wall-time limit (then it is killed), the size is reported as failed.

Targets (issue 7), reported, never asserted: 1,000 devices roll out in under 60 s, and wall time and
peak RSS grow no worse than linearly: at most GROWTH_TOLERANCE times per 10x devices (12x: linear
plus room for run-to-run noise, which is 10-20 % on a 2-core machine). JSON and PNG go to `<out>/`.

    python -m benchmarks.fleet_rollout [--sizes 10,100,1000,10000 | --quick] [--limit-seconds S]
        [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.fleet_report import MODEL, TARGET_DEVICES, TARGET_SECONDS, VERSION, plot, render_section, sizes_table
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish
from simulators.clock import VirtualClock

SECTION = "fleet-rollout"
JOB_ID = "fleet-rollout-1"
GROWTH_TOLERANCE = 12.0  # per 10x devices; 10x is linear
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...] = (10, 100, 1000, 10000)
    limit_seconds: float | None = None  # per size; None: max(MIN_LIMIT, SECONDS_PER_DEVICE * devices)
    fleet_seconds: float = 4 * 3600.0  # fleet-time cap of a rollout
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None

    def limit(self, devices: int) -> float:
        """The wall-time limit of one size's child: 20 minutes for 10,000 devices by default."""
        return self.limit_seconds if self.limit_seconds is not None else max(180.0, 0.12 * devices)


def parse_args(argv: Sequence[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet_rollout",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", default="10,100,1000,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (3,10): a check that it runs")
    parser.add_argument(
        "--limit-seconds", type=float, help="wall-time limit per size (default max(180 s, 0.12 s per device))"
    )
    parser.add_argument("--fleet-seconds", type=float, default=Options.fleet_seconds, help="fleet-time cap")
    parser.add_argument("--out", type=Path, default=Options.out, help="folder for fleet_rollout.json and .png")
    parser.add_argument("--write-markdown", type=Path, metavar="PATH", help="rewrite this file's fleet-rollout section")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = (3, 10) if args.quick else tuple(sorted({int(s) for s in args.sizes.split(",") if s.strip()}))
    if not sizes or min(sizes) < 1 or (args.limit_seconds is not None and args.limit_seconds <= 0):
        parser.error("sizes must be at least 1 and --limit-seconds positive")
    return Options(sizes, args.limit_seconds, args.fleet_seconds, args.out, args.write_markdown), args


# The child: one rollout, measured --------------------------------------------------------------
class CountingClock(VirtualClock):
    """A VirtualClock that counts the callbacks it fires (each advance counts its own, nested or not)."""

    fired = 0

    def advance(self, seconds: float, *, max_callbacks: int = 1_000_000) -> int:
        fired = super().advance(seconds, max_callbacks=max_callbacks)
        self.fired += fired
        return fired


class GcTimer:
    """Wall time the cyclic garbage collector takes (a full collection walks the whole heap)."""

    def __init__(self) -> None:
        self.seconds, self._started = 0.0, 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def peak_rss_mb() -> float:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _tmpfs() -> str | None:
    shm = Path("/dev/shm")  # every OTA step fsyncs the journal: see simulators/fleet/fleet.py
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def measure_rollout(devices: int, fleet_seconds: float) -> dict[str, Any]:
    """Provision `devices` light devices and roll version 1 out to all of them; see the module docstring."""
    from simulators.cloud import SimulatedCloud
    from simulators.fleet.fleet import Fleet
    from simulators.fleet.packages import light_archive
    from simulators.fleet.progress import Progress
    from system.ports import JobSpec

    clock, collector = CountingClock(), GcTimer()
    t0 = time.perf_counter()
    with (
        SimulatedCloud("fake", clock=clock, project="fleet-bench") as cloud,
        tempfile.TemporaryDirectory(prefix="es-fleet-bench-", dir=_tmpfs()) as scratch,
    ):
        out: dict[str, Any] = {"cloud_start_s": time.perf_counter() - t0, "baseline_rss_mb": peak_rss_mb()}
        start = clock.now()
        fleet = Fleet(cloud, Path(scratch) / "devices", progress=Progress(lambda: clock.now() - start, interval=30))
        try:
            t0 = time.perf_counter()
            fleet.provision(devices)
            out["provision_s"] = time.perf_counter() - t0
            archive = light_archive(Path(scratch) / "packages", MODEL, VERSION)
            cloud.object_store().put_bytes(f"models/{MODEL}-{VERSION}.tar.gz", archive)
            document = {
                "type": "new_model",
                "model_name": MODEL,
                "model_version": VERSION,
                "model_package_bucket": cloud.project.bucket,
                "model_package_key": f"models/{MODEL}-{VERSION}.tar.gz",
                "sha256": hashlib.sha256(archive).hexdigest(),
                "size": len(archive),
            }
            fired, began, collected, t0 = clock.fired, clock.now(), collector.seconds, time.perf_counter()
            cloud.jobs_control().create_job(JobSpec(JOB_ID, targets=[fleet.group_arn], document=document))
            out["finished"] = fleet.run_until(lambda: fleet.finished(JOB_ID), fleet_seconds)
            out["rollout_s"] = time.perf_counter() - t0
            out["fleet_seconds"], out["callbacks"] = clock.now() - began, clock.fired - fired
            out["rollout_gc_s"] = collector.seconds - collected
            out["executions"] = dict(fleet.counts(JOB_ID))
            out["serving_version"] = fleet.served()[f"{MODEL} {VERSION}"]
            out["driver_errors"], out["job_status"] = fleet.errors(), fleet.job_status(JOB_ID)
        finally:
            fleet.close()
    return out


def run_child(devices: int, fleet_seconds: float, out: Path) -> int:
    """One size in this (fresh) process; the result, or the error, goes to `out` as JSON."""
    try:
        result = measure_rollout(devices, fleet_seconds)
        result["peak_rss_mb"] = peak_rss_mb()
        times = os.times()
        result["cpu_s"] = times.user + times.system
    except Exception as exc:  # noqa: BLE001 - any error is this size's failure: reported, traceback on stderr
        traceback.print_exc()
        result = {"failure": f"{type(exc).__name__}: {exc}"}
    out.write_text(json.dumps(result))
    return 0 if "failure" not in result else 1


# The parent: one child per size ------------------------------------------------------------------
def verify(devices: int, outcome: dict[str, Any]) -> str | None:
    """Why this size's rollout does not count (None when it does)."""
    if "failure" in outcome:
        return str(outcome["failure"])
    problems = []
    if not outcome["finished"]:
        problems.append(f"job not finished within {outcome['fleet_seconds']:.0f} s of fleet time")
    if outcome["executions"] != {"SUCCEEDED": devices}:
        problems.append(f"executions {outcome['executions']}")
    if outcome["serving_version"] != devices:
        problems.append(f"{outcome['serving_version']} of {devices} devices serve version {VERSION}")
    if outcome["driver_errors"]:
        problems.append(f"{outcome['driver_errors']} driver errors")
    if outcome["job_status"] != "COMPLETED":
        problems.append(f"job {outcome['job_status']}")
    return "; ".join(problems) or None


def run_size(devices: int, options: Options) -> dict[str, Any]:
    """One size in a fresh child process, killed at its wall-time limit."""
    limit = options.limit(devices)
    with tempfile.TemporaryDirectory(prefix="es-fleet-bench-") as folder:
        out = Path(folder) / "size.json"
        command = [sys.executable, "-m", "benchmarks.fleet_rollout", "--child", str(devices)]
        command += ["--child-out", str(out), "--fleet-seconds", str(options.fleet_seconds)]
        started, load = time.monotonic(), os.getloadavg()[0]  # other work on the machine skews the times
        try:
            code = subprocess.run(command, cwd=ROOT, timeout=limit, check=False).returncode
        except subprocess.TimeoutExpired:  # subprocess.run has killed the child
            killed = f"killed at its wall-time limit of {limit:.0f} s"
            timed_out = {"timed_out": True, "failure": killed, "load_before": load, "load_after": os.getloadavg()[0]}
            return {"devices": devices, "ok": False, "limit_s": limit, **timed_out}
        wall = time.monotonic() - started
        missing = {"failure": f"child exited with code {code}"}
        outcome: dict[str, Any] = json.loads(out.read_text()) if out.exists() else missing
    failure = verify(devices, outcome)
    result: dict[str, Any] = {"devices": devices, "ok": failure is None, "timed_out": False, "limit_s": limit}
    result.update(child_wall_s=wall, load_before=load, load_after=os.getloadavg()[0], **outcome)
    if failure is not None:
        result["failure"] = failure
    else:
        result["rss_per_device_kb"] = (outcome["peak_rss_mb"] - outcome["baseline_rss_mb"]) * 1024 / devices
    return result


def growth(sizes: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Between consecutive successful sizes: the ratios, and what they come to per 10x devices."""
    done = [s for s in sizes if s["ok"]]
    rows = []
    for small, large in itertools.pairwise(done):
        decades = math.log10(large["devices"] / small["devices"])
        row: dict[str, Any] = {"from": small["devices"], "to": large["devices"]}
        for key in ("rollout_s", "peak_rss_mb"):
            ratio = large[key] / small[key] if small[key] > 0 else math.inf
            row[f"{key}_ratio"] = ratio
            row[f"{key}_per_10x"] = ratio ** (1 / decades) if decades > 0 else math.nan
        rows.append(row)
    return rows


def evaluate_targets(sizes: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    at_target = next((s for s in sizes if s["devices"] == TARGET_DEVICES), None)
    if at_target is None:
        speed: dict[str, Any] = {"measured": "not measured", "met": None}
    elif not at_target["ok"]:
        speed = {"measured": f"failed: {at_target['failure']}", "met": False}
    else:
        speed = {"measured": f"{at_target['rollout_s']:.1f} s", "met": at_target["rollout_s"] < TARGET_SECONDS}
    targets = [
        {"target": f"{TARGET_DEVICES:,} devices: rollout wall time", "limit": f"< {TARGET_SECONDS:g} s", **speed}
    ]
    killed = [s["devices"] for s in sizes if s.get("timed_out")]
    for key, label in (("rollout_s", "rollout wall time"), ("peak_rss_mb", "peak RSS")):
        worst = max((p[f"{key}_per_10x"] for p in pairs), default=None)
        met = None if worst is None else worst <= GROWTH_TOLERANCE
        measured = "not measured" if worst is None else f"worst {worst:.1f}x"
        if killed:  # a size past its wall-time limit grew worse than any measured ratio shows
            met, measured = False, f"{measured}; killed at the limit: {', '.join(f'{n:,}' for n in killed)} devices"
        elif len(pairs) < len(sizes) - 1:
            met, measured = None, f"{measured}; incomplete: a size failed"
        limit = f"<= {GROWTH_TOLERANCE:g}x per 10x devices"
        targets.append({"target": f"growth of {label}", "limit": limit, "measured": measured, "met": met})
    return targets


def run(options: Options, command: str) -> dict[str, Any]:
    started = time.monotonic()
    sizes = []
    for devices in options.sizes:
        print(f"{devices:,} devices (wall-time limit {options.limit(devices):.0f} s) ...", flush=True)
        sizes.append(size := run_size(devices, options))
        if size["ok"]:
            print(
                f"  provision {size['provision_s']:.1f} s, rollout {size['rollout_s']:.1f} s "
                f"({size['fleet_seconds']:.0f} s of fleet time), peak RSS {size['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        else:
            print(f"  FAILED: {size['failure']}", flush=True)
    pairs = growth(sizes)
    return {
        "benchmark": "fleet_rollout",
        "issue": 7,
        "command": command,
        "machine": machine_description(),
        "libraries": {name: _version(name) for name in ("moto", "boto3")},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "job": {"model": MODEL, "version": VERSION, "rollout": "default (1,000 things notified a minute)"},
        "sizes": sizes,
        "growth": pairs,
        "targets": evaluate_targets(sizes, pairs),
        "runtime_seconds": round(time.monotonic() - started, 1),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options, args = parse_args(argv)
    if args.child is not None:
        return run_child(args.child, options.fleet_seconds, args.child_out)
    results = run(options, command_line("benchmarks.fleet_rollout", argv))
    results["plot"] = plot(results, options.out / "fleet_rollout.png")
    print(sizes_table(results))
    publish(
        results, options.out / "fleet_rollout.json", markdown=options.markdown, section=SECTION, render=render_section
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
