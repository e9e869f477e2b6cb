"""Locust load test against a direct-call baseline measured in the same run (issue 8).

1. `python -m benchmarks.locust_target` in a child process, in a session of its own: an Edge Agent
   process serving the 224x224 classifier and a device web UI over it, on loopback. Its
   target.json is awaited (bounded; its log is quoted if it fails), and it is stopped whatever
   happens: SIGTERM, then SIGKILL to its whole process group (the agent process included).
2. The baseline, in this process: the SavedModel `serving_default` signature of the target's
   package_dir (the very model the agent serves), called back to back by --users threads, each with
   its own random image. One window before each locust run and one after the last, --seconds in
   all, so that drift on a shared machine hits both sides.
3. One headless locust run per path (benchmarks/locustfile.py): gRPC Predict with `byte_data`,
   gRPC Predict through shared memory, HTTP `POST /api/predict`. Each has --users users spawned at
   --spawn-rate for --seconds, its stats reset once all users run, and is bounded: past its run
   time plus a margin it gets SIGTERM, then SIGKILL. A run that fails, overruns or counts a failed
   request is reported as failed, never dropped.

locust's numbers are its final stats from `--json-file`, written at shutdown after the users
stopped; its `--csv` files (<out>/locust_<run>_*.csv) miss the last second (locust_summary.py).
Results: <out>/locust.json, <out>/locust.png and, with --write-markdown, that file's `locust`
section. Exit status 1 when the baseline or a locust run failed (after writing all of that), or
when the target did not start (nothing written).

    python -m benchmarks.locust_bench [--users N] [--seconds S] [--runs grpc_byte_data,http] [--write-markdown PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from benchmarks.locust_report import evaluate_targets, plot, render_section, run_line, versus_direct
from benchmarks.locust_summary import first_failures, read_final_stats, request_count
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish

ROOT = Path(__file__).resolve().parents[1]  # the subprocesses' working directory
LOCUSTFILE = ROOT / "benchmarks" / "locustfile.py"
SECTION = "locust"
TARGET_START_TIMEOUT_S = 180.0  # as make bench-locust: the target imports TensorFlow and exports the model
STOP_TIMEOUT_S = 30.0  # from SIGTERM to SIGKILL, for the target and locust alike
LOCUST_SLACK_S = 30.0  # a locust run's limit beyond its -t: start-up, DescribeModel, shutdown
LOG_TAIL_LINES = 30
WARMUP_S = 2.0  # of the baseline's threads, unmeasured, before its first window


@dataclass(frozen=True)
class RunSpec:
    """One locust run: the locustfile's tag and options, and the stats entry (type, name) it reports."""

    label: str
    tags: tuple[str, ...]
    extra: tuple[str, ...]
    request: tuple[str, str]


RUNS = {
    "grpc_byte_data": RunSpec("gRPC Predict, byte_data", ("grpc",), ("--transport", "byte_data"), ("grpc", "Predict")),
    "grpc_shared_memory": RunSpec(
        "gRPC Predict, shared memory", ("grpc",), ("--transport", "shared_memory"), ("grpc", "Predict")
    ),
    "http": RunSpec("HTTP POST /api/predict", ("http",), (), ("POST", "/api/predict")),
}
REQUIRED = ("grpc_byte_data", "http")  # what DESIGN.md section 5 names: gRPC Predict and the HTTP inference API


@dataclass(frozen=True)
class Options:
    users: int = 8
    spawn_rate: float = 8.0
    seconds: int = 20  # per locust run; the baseline's windows add up to as much
    runs: tuple[str, ...] = tuple(RUNS)
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None
    seed: int = 0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.locust_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--users", type=int, default=Options.users, help="users per locust run, baseline threads (8)")
    parser.add_argument("--spawn-rate", type=float, help="users started per second (default: --users: all at once)")
    parser.add_argument(
        "--seconds", type=int, default=Options.seconds, help="-t of each run; the baseline's total (20)"
    )
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {','.join(RUNS)} (all)")
    parser.add_argument("--out", type=Path, default=Options.out, help="results folder (benchmarks/results)")
    parser.add_argument("--write-markdown", type=Path, metavar="PATH", help="rewrite this file's `locust` section")
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the baseline's images (default 0)")
    args = parser.parse_args(argv)
    runs = tuple(dict.fromkeys(name.strip() for name in args.runs.split(",") if name.strip()))
    if not runs or set(runs) - set(RUNS):
        parser.error(f"--runs takes names from {', '.join(RUNS)}")
    spawn_rate = float(args.users) if args.spawn_rate is None else args.spawn_rate
    if args.users < 1 or args.seconds < 1 or spawn_rate <= 0:
        parser.error("--users and --seconds must be at least 1, --spawn-rate positive")
    return Options(args.users, spawn_rate, args.seconds, runs, args.out, args.write_markdown, args.seed)


# Child processes -------------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def display(path: Path) -> str:
    """`path` as the subprocesses (working directory ROOT) see it: relative when inside ROOT."""
    absolute = path.resolve()
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else str(absolute)


def read_log(path: Path, *, tail: bool = False) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:]) if tail else text


def stop_process(process: subprocess.Popen[bytes], *, group: bool = False) -> int:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S (to its whole process group when `group`); its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
    if group:  # what the child started and left behind (its agent process, if it was killed)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # an empty group: all stopped by itself
            os.killpg(process.pid, signal.SIGKILL)
    return process.returncode


class TargetProcess:
    """`python -m benchmarks.locust_target` in a session of its own, so that its process group is its own."""

    def __init__(self, folder: Path, lifetime_s: float) -> None:
        self.folder = folder
        self.log_path = folder.parent / "target.log"
        self.lifetime_s = lifetime_s  # its own --seconds: a last resort should this process die unclean
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> TargetProcess:
        command = [sys.executable, "-m", "benchmarks.locust_target", "--out", str(self.folder)]
        command += ["--seconds", f"{self.lifetime_s:.0f}"]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """target.json once written; RuntimeError with the target's log if it exits or takes too long."""
        ready, deadline = self.folder / "target.json", time.monotonic() + timeout
        while not ready.exists():
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise RuntimeError(f"the locust target exited ({code}):\n{read_log(self.log_path, tail=True)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no target.json after {timeout:.0f} s:\n{read_log(self.log_path, tail=True)}")
            time.sleep(0.2)
        return dict(json.loads(ready.read_text()))

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __exit__(self, *_exc: object) -> None:
        if self._process is not None:
            self.exit_code = stop_process(self._process, group=True)


# The direct-call baseline ----------------------------------------------------------------------
def run_threads(call: Callable[[np.ndarray], object], images: Sequence[np.ndarray], seconds: float) -> dict[str, Any]:
    """One thread per image, released together, each calling back to back for `seconds`: latencies (ms) and time."""
    clock: dict[str, float] = {}
    start = threading.Barrier(len(images), action=lambda: clock.update(t0=time.perf_counter()))
    per_thread: list[list[float]] = [[] for _ in images]

    def worker(image: np.ndarray, out: list[float]) -> None:
        start.wait()
        deadline = clock["t0"] + seconds
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            call(image)
            out.append((time.perf_counter() - t0) * 1000)

    with ThreadPoolExecutor(max_workers=len(images)) as pool:
        for future in [pool.submit(worker, image, out) for image, out in zip(images, per_thread, strict=True)]:
            future.result()
    return {"latencies_ms": [ms for out in per_thread for ms in out], "seconds": time.perf_counter() - clock["t0"]}


class DirectBaseline:
    """The target's SavedModel `serving_default` called in this process: what the agent runs, without the agent."""

    def __init__(self, package_dir: Path, threads: int, seed: int) -> None:
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(package_dir / "saved_model"))  # owns the signature's variables
        signature = self._loaded.signatures["serving_default"]
        ((input_name, spec),) = signature.structured_input_signature[1].items()
        (output_name,) = signature.structured_outputs
        shape = [side or 1 for side in spec.shape.as_list()]
        self.input = f"{spec.dtype.name}{shape}"
        rng = np.random.default_rng(seed)
        self.images = [rng.random(shape, dtype=np.float32) for _ in range(threads)]  # one each, as locust's users
        self.call: Callable[[np.ndarray], object] = lambda x: signature(**{input_name: x})[output_name].numpy()
        run_threads(self.call, self.images, WARMUP_S)  # traced, thread pools up, the target's start-up over
        self.latencies_ms: list[float] = []
        self.windows: list[dict[str, Any]] = []

    def window(self, seconds: float, before: str) -> None:
        done = run_threads(self.call, self.images, seconds)
        self.latencies_ms += done["latencies_ms"]
        calls, elapsed = len(done["latencies_ms"]), done["seconds"]
        self.windows.append({"before": before, "calls": calls, "seconds": round(elapsed, 3)})
        self.windows[-1]["calls_per_s"] = round(calls / elapsed, 2) if elapsed > 0 else 0.0
        print(f"  direct baseline before {before}: {calls} calls, {self.windows[-1]['calls_per_s']:.1f}/s", flush=True)

    def summary(self) -> dict[str, Any]:
        lat, seconds = self.latencies_ms, sum(w["seconds"] for w in self.windows)
        p50, p95, p99 = (round(float(v), 3) for v in np.percentile(lat, [50, 95, 99])) if lat else (None,) * 3
        return {
            "description": "SavedModel serving_default signature of the target's package, called in-process",
            "threads": len(self.images),
            "input": self.input,
            "calls": len(lat),
            "seconds": round(seconds, 3),
            "calls_per_s": round(len(lat) / seconds, 2) if seconds > 0 else 0.0,
            **{"p50_ms": p50, "p95_ms": p95, "p99_ms": p99},
            "mean_ms": round(float(np.mean(lat)), 3) if lat else None,
            "windows": self.windows,
        }


# Locust runs -----------------------------------------------------------------------------------
def locust_executable() -> list[str]:
    script = Path(sys.executable).with_name("locust")  # the venv's, beside this interpreter
    return [display(script)] if script.exists() else [sys.executable, "-m", "locust"]


def locust_command(name: str, options: Options, target: dict[str, Any], json_prefix: Path) -> list[str]:
    spec = RUNS[name]
    command = [*locust_executable(), "-f", display(LOCUSTFILE), "--headless", "--only-summary"]
    command += ["-u", str(options.users), "-r", f"{options.spawn_rate:g}", "-t", f"{options.seconds}s"]
    command += ["--reset-stats", "--host", target["host"], "--agent", target["agent"], "--model", target["model"]]
    command += ["--tags", *spec.tags, *spec.extra]
    return [*command, "--csv", display(options.out / f"locust_{name}"), "--json-file", display(json_prefix)]


def run_bounded(command: list[str], log_path: Path, limit: float) -> tuple[int, bool]:
    """`command` with its output in `log_path`, stopped past `limit` s (SIGTERM, then SIGKILL): (exit code, overran)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        return process.wait(timeout=limit), False
    except subprocess.TimeoutExpired:
        return stop_process(process), True  # on SIGTERM locust shuts down and still writes its --json-file
    finally:
        stop_process(process)  # also on KeyboardInterrupt or SystemExit; nothing to do once it has ended


def final_stats(request: tuple[str, str], json_path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The request's entry in locust's final stats (`--json-file`); what is wrong is appended to `problems`."""
    try:
        rows = read_final_stats(json_path)
    except (OSError, ValueError) as exc:
        problems.append(f"no final stats from locust: {exc}")
        return None
    stats = next((row for row in rows if (row["type"], row["name"]) == request), None)
    if stats is None:
        problems.append(f"no {' '.join(request)} entry in locust's final stats")
    elif stats["requests"] == 0 or stats["failures"]:
        problems.append(f"{stats['requests']} requests, {stats['failures']} failed")
    return stats


def run_locust(name: str, options: Options, target: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """One bounded locust run and what it reported; a failure is listed in `problems`, never raised."""
    command = locust_command(name, options, target, scratch / name)
    log_path, limit, started = scratch / f"{name}.log", options.seconds + LOCUST_SLACK_S, time.monotonic()
    for stale in options.out.glob(f"locust_{name}_*.csv"):  # an earlier run's, read below as this one's otherwise
        stale.unlink()
    returncode, overran = run_bounded(command, log_path, limit)
    problems = [f"locust exited with {returncode}"] if returncode else []
    if overran:
        problems.append(f"overran its {limit:.0f} s limit and was stopped")
    stats = final_stats(RUNS[name].request, scratch / f"{name}.json", problems)
    if stats and stats["failures"]:  # locust prints no error report with --json-file; its failures CSV has them
        problems += first_failures(options.out / f"locust_{name}_failures.csv")
    csv_path, log = options.out / f"locust_{name}_stats.csv", read_log(log_path)
    return {
        "name": name,
        "label": RUNS[name].label,
        "command": shlex.join(command),
        **{"returncode": returncode, "overran": overran, "limit_seconds": limit},
        "wall_seconds": round(time.monotonic() - started, 2),
        **{"ok": not problems, "problems": problems, "stats": stats},
        "csv": display(csv_path),
        "csv_requests": request_count(csv_path, *RUNS[name].request),  # to show what the CSV misses
        "locust_cpu_warning": "CPU usage above" in log,  # locust's own warning: the load generator was CPU-bound
        "log_tail": read_log(log_path, tail=True) if problems else None,
    }


# The run ---------------------------------------------------------------------------------------
def target_lifetime(options: Options) -> float:
    """A bound on how long the target may be needed: it stops by itself after it, should this process vanish."""
    per_run = options.seconds + LOCUST_SLACK_S + 2 * STOP_TIMEOUT_S
    return TARGET_START_TIMEOUT_S + len(options.runs) * per_run + options.seconds + 120.0


def measure(options: Options, target: dict[str, Any], baseline: DirectBaseline, scratch: Path) -> list[dict[str, Any]]:
    """Baseline windows interleaved with the locust runs: one before each run, one after the last."""
    share = options.seconds / (len(options.runs) + 1)
    runs = []
    for name in options.runs:
        baseline.window(share, before=name)
        runs.append(run_locust(name, options, target, scratch))
        print(f"  locust {name}: {run_line(runs[-1])}", flush=True)
    baseline.window(share, before="the end")
    return runs


def run(options: Options, command: str) -> dict[str, Any]:
    """The whole benchmark; the target and every locust process are stopped whatever happens."""
    from system.agent.malloc import keep_large_buffers_on_heap

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keep_large_buffers_on_heap()  # the tuning the agent gives itself: the baseline runs the model the same way
    started, load_before = time.monotonic(), os.getloadavg()[0]
    options.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="es-locust-bench-"))
    try:
        with TargetProcess(scratch / "target", target_lifetime(options)) as target:
            import tensorflow  # noqa: F401  # imported (about 4 s) while the target starts

            info = target.wait_ready(TARGET_START_TIMEOUT_S)
            info["ready_seconds"] = round(time.monotonic() - started, 1)
            print(f"target ready in {info['ready_seconds']} s: agent {info['agent']}, web UI {info['host']}")
            baseline = DirectBaseline(Path(info["package_dir"]), options.users, options.seed)
            runs = measure(options, info, baseline, scratch)
            info["alive_until_the_end"] = target.running()
        info["exit_code"] = target.exit_code
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = collect(options, command, info, baseline.summary(), runs)
    results["load_average_1min"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    results["runtime_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = evaluate_targets(results)
    return results


def collect(
    options: Options, command: str, target: dict[str, Any], base: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The results document, each run with its ratios to the baseline."""
    for entry in runs:
        entry["vs_direct"] = versus_direct(entry["stats"], base)
    kept = ("agent", "model", "model_inputs", "host", "ready_seconds", "alive_until_the_end", "exit_code")
    return {
        "benchmark": "locust",
        "issue": 8,
        "command": command,
        "machine": machine_description(),
        "locust_version": metadata.version("locust"),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "paths": {name: {"label": spec.label, "required": name in REQUIRED} for name, spec in RUNS.items()},
        "target": {key: target[key] for key in kept},
        "baseline": base,
        "runs": runs,
    }


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally`s that stop locust and the target


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        results = run(options, command_line("benchmarks.locust_bench", argv))
    except RuntimeError as exc:  # the target did not start: nothing was measured
        print(f"locust_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    results["plot"] = plot(results, options.out / "locust.png")
    print(f"plot: {results['plot']['path'] or results['plot']['reason']}")
    publish(results, options.out / "locust.json", markdown=options.markdown, section=SECTION, render=render_section)
    return 1 if any(target["met"] is False for target in results["targets"]) else 0


if __name__ == "__main__":
    sys.exit(main())
