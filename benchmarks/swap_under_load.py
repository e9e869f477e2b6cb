"""Swap under load (issue 8): steady Predict traffic while new model versions are swapped in.

An Edge Agent runs in its own process (`edgesim agent serve`, unix socket), serving the classifier
of the agent-overhead benchmark (224x224x3) as `img-classification` version 1. Threads send
Predicts at a fixed rate (an open loop, `benchmarks/swap_traffic.py`), each to whatever model
the device's `ModelRoster` says serves classification. Meanwhile the device's own OTA code
(`OtaSteps`: LOAD, HEALTH_CHECK, SWITCH, UNLOAD_OLD, as a job runs them once its package is
extracted) swaps in version 2, then 3, and so on, with steady gaps between swaps.

Each request belongs to a phase by when it was due: `before` the first swap, `during` a swap
(from the start of LOAD to the end of UNLOAD_OLD), `after` the last one, or `between` swaps;
`steady` is every request outside the swaps. Reported: failed requests (the target is none),
p50/p95/p99 per phase and per step, and p99 during / p99 steady (the issue's limit is 1.5x).
The new versions are copies of version 1's package (the weights do not matter; the load does).

Three agent configurations, one after the other in one run (`--configs`): `before` (the agent's
load tuning turned off), `after` (the agent as shipped) and `isolated` (the same swaps run by a
second agent process while the traffic goes to the first: what loading costs the traffic on this
machine through CPU contention alone, the floor for any change inside the agent).

    python -m benchmarks.swap_under_load [--rate R] [--clients N] [--swaps K] [--configs before,after,isolated]
        [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.agent_process import AgentProcess
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish
from benchmarks.swap_report import phase_statistics, plot, render_section, step_statistics
from benchmarks.swap_traffic import Sample, SteadyTraffic

SECTION = "swap-under-load"
MODEL = "img-classification"
SHAPE = (1, 224, 224, 3)
SWAP_STEPS = ("load", "health_check", "switch", "unload_old")
RATIO_LIMIT = 1.5  # p99 during a swap vs. steady (issue 8)


@dataclass(frozen=True)
class AgentConfig:
    """An agent set-up to measure: its settings (as environment variables) and where the swaps run."""

    key: str
    description: str
    env: dict[str, str]
    isolated: bool = False  # the swaps run in a second agent process, the traffic goes to the first


_TUNED = {"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "0.5", "EDGESIM_AGENT_GC_FREEZE": "true"}  # the defaults
CONFIGS = {
    config.key: config
    for config in (
        AgentConfig(
            "before",
            "the agent without its load tuning: GIL switch interval left at 5 ms while loading, no gc freeze",
            {"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "0", "EDGESIM_AGENT_GC_FREEZE": "false"},
        ),
        AgentConfig("after", "the agent as shipped: 0.5 ms switch interval while loading, gc freeze", _TUNED),
        AgentConfig(
            "isolated",
            "the floor: the same swaps in a second agent process while the traffic goes to the first "
            "(what loading costs the traffic through CPU contention alone)",
            _TUNED,
            isolated=True,
        ),
    )
}
TARGET_CONFIG = "after"


@dataclass(frozen=True)
class Options:
    rate: float = 100.0  # Predicts per second, all clients together
    clients: int = 4
    swaps: int = 10
    steady_seconds: float = 3.0  # before the first swap, and after the last
    gap_seconds: float = 1.0  # between swaps
    configs: tuple[str, ...] = tuple(CONFIGS)
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None
    seed: int = 0


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.swap_under_load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Options()
    parser.add_argument("--rate", type=float, default=defaults.rate, help="Predicts per second in all (default 100)")
    parser.add_argument("--clients", type=int, default=defaults.clients, help="client threads (default 4)")
    parser.add_argument("--swaps", type=int, default=defaults.swaps, help="version swaps per configuration (10)")
    parser.add_argument(
        "--steady-seconds", type=float, default=defaults.steady_seconds, help="steady traffic before and after (3)"
    )
    parser.add_argument("--gap-seconds", type=float, default=defaults.gap_seconds, help="steady gap between swaps (1)")
    parser.add_argument(
        "--configs",
        default=",".join(defaults.configs),
        help=f"agent configurations to measure, comma-separated (default {','.join(defaults.configs)})",
    )
    parser.add_argument("--out", type=Path, default=defaults.out, help="folder for the JSON and PNG results")
    parser.add_argument("--write-markdown", type=Path, metavar="PATH", help="rewrite this file's swap section")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the model weights and the input")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.clients < 1 or args.swaps < 1 or args.steady_seconds <= 0 or args.gap_seconds < 0:
        parser.error("--rate, --steady-seconds must be positive, --clients and --swaps at least 1")
    configs = tuple(key.strip() for key in args.configs.split(",") if key.strip())
    unknown = [key for key in configs if key not in CONFIGS]
    if unknown or not configs:
        parser.error(f"--configs: choose from {', '.join(CONFIGS)} (got {args.configs!r})")
    return Options(
        args.rate,
        args.clients,
        args.swaps,
        args.steady_seconds,
        args.gap_seconds,
        configs,
        args.out,
        args.write_markdown,
        args.seed,
    )


# The device side -------------------------------------------------------------------------------
@dataclass
class Device:
    """The parts of an edge app a swap touches: its folder, roster, models_config.json and OTA steps."""

    layout: Any
    roster: Any
    steps: Any
    input_name: str


def prepare_device(root: Path, client: Any, package: Path, versions: int) -> Device:
    """Version 1 serving (loaded, in the roster and models_config.json); 2.. on disk, copies of `package`."""
    from system.agent.package import read_package
    from system.edge.layout import DeviceLayout
    from system.edge.models_config import ModelsConfigFile
    from system.edge.ota_steps import OtaSteps
    from system.edge.roster import ModelRoster

    layout = DeviceLayout(root)
    for version in range(1, versions + 1):
        shutil.copytree(package, layout.package_dir(MODEL, str(version)))
    roster = ModelRoster()
    steps = OtaSteps(client, _no_store, layout, roster, ModelsConfigFile(layout.models_config))
    device = Device(layout, roster, steps, read_package(str(package)).manifest.inputs[0].name)
    for step in SWAP_STEPS[:3]:  # a first deployment: nothing to unload
        steps.run(replace(_job(1, previous=None), step=_step(step)))
    return device


def _no_store(bucket: str) -> Any:
    raise AssertionError(f"the swap benchmark downloads nothing (asked for bucket {bucket})")


def _step(name: str) -> Any:
    from system.edge.ota_machine import Step

    return Step[name.upper()]


def _job(version: int, previous: int | None) -> Any:
    """The job state OtaSteps needs from LOAD on: which version replaces which."""
    from system.edge.ota_machine import JobState, Serving

    return JobState(
        job_id=f"swap-to-{version}",
        execution_number=1,
        document={},
        step=_step("load"),
        started_at=time.time(),
        model_name=MODEL,
        version=str(version),
        identifier=f"{MODEL}-{version}",
        previous=None if previous is None else Serving(str(previous), f"{MODEL}-{previous}"),
    )


# The run ---------------------------------------------------------------------------------------
def swap(device: Device, traffic: SteadyTraffic, version: int) -> dict[str, Any]:
    """One version swap, step by step, timed on the traffic's clock."""
    state = _job(version, previous=version - 1)
    steps = []
    for name in SWAP_STEPS:
        started = traffic.now()
        detail = device.steps.run(replace(state, step=_step(name)))
        steps.append({"step": name, "start_s": started, "end_s": traffic.now(), "detail": detail})
    serving = device.roster.for_app("image-classification-app")
    return {
        "to_version": version,
        "start_s": steps[0]["start_s"],
        "end_s": steps[-1]["end_s"],
        "steps": steps,
        "serving_after": serving.identifier if serving else None,
    }


def drive(
    served: Device, swapped: Device, target: str, x: np.ndarray, options: Options
) -> tuple[list[Sample], list[Any]]:
    """Steady traffic on `served`; swaps on `swapped` with gaps between them; more steady traffic."""
    from system.adapters.agent_client import GrpcEdgeAgentClient

    traffic = SteadyTraffic(
        lambda: GrpcEdgeAgentClient(target),
        served.roster,
        x,
        rate=options.rate,
        clients=options.clients,
        input_name=served.input_name,
    ).start()
    swaps: list[dict[str, Any]] = []
    try:
        time.sleep(options.steady_seconds)
        for version in range(2, options.swaps + 2):
            if swaps:
                time.sleep(options.gap_seconds)
            swaps.append(swap(swapped, traffic, version))
        time.sleep(options.steady_seconds)
    finally:
        samples = traffic.stop()
    return samples, swaps


def run_config(config: AgentConfig, package: Path, x: np.ndarray, options: Options) -> dict[str, Any]:
    """One agent configuration: its own agent process(es) and device folder(s), stopped whatever happens."""
    from system.adapters.agent_client import GrpcEdgeAgentClient

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="es-swap-")))
        for name in ("a", "b"):
            (scratch / name).mkdir()
        agents = [stack.enter_context(AgentProcess(scratch / "a", env=config.env))]
        if config.isolated:
            agents.append(stack.enter_context(AgentProcess(scratch / "b", env=config.env)))
        controls = [stack.enter_context(GrpcEdgeAgentClient(agent.target)) for agent in agents]
        devices = []
        for index, (agent, control) in enumerate(zip(agents, controls, strict=True)):
            agent.wait_ready()
            devices.append(prepare_device(scratch / f"device-{index}", control, package, options.swaps + 1))
        samples, swaps = drive(devices[0], devices[-1], agents[0].target, x, options)
        loaded = [sorted(m.name for m in control.list_models()) for control in controls]
        exit_codes = [agent.stop() for agent in agents]
    phases = phase_statistics(samples, swaps)
    print(
        f"  {config.key:<9} p99 steady {phases['steady']['p99_ms']:.2f} ms, during swaps "
        f"{phases['during']['p99_ms']:.2f} ms: {phases['ratio_p99_during_vs_steady']:.2f}x; "
        f"failed {phases['all']['failed']} of {phases['all']['requests']}",
        flush=True,
    )
    return {
        "description": config.description,
        "env": config.env,
        "isolated": config.isolated,
        "swaps": swaps,
        "models_loaded_at_end": loaded,
        "phases": phases,
        "steps": step_statistics(samples, swaps),
        # Every request, compactly: due time and latency (for the plot); the failed ones in full.
        "samples": {
            "due_s": [round(s.due_s, 4) for s in samples],
            "latency_ms": [round(s.latency_ms, 3) for s in samples],
        },
        "failed_samples": [asdict(s) for s in samples if s.error],
        "agent_exit_codes": exit_codes,
    }


def run(options: Options, command: str) -> dict[str, Any]:
    """Every configuration in turn, on one exported package and one input."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from benchmarks.agent_overhead import export_classifier
    from system.agent.malloc import keep_large_buffers_on_heap

    keep_large_buffers_on_heap()  # as the agent does for itself and edgesim's clients do
    started = time.monotonic()
    x = np.random.default_rng(options.seed).random(SHAPE, dtype=np.float32)
    print(
        f"traffic: {options.rate:g} Predicts/s from {options.clients} clients; {options.swaps} swaps "
        f"{options.gap_seconds:g} s apart, {options.steady_seconds:g} s steady around; configurations "
        + ", ".join(options.configs),
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="es-swap-package-") as folder:
        package = Path(folder) / "package"
        export_classifier(package, options.seed)
        configs = {key: run_config(CONFIGS[key], package, x, options) for key in options.configs}
    return {
        "benchmark": "swap_under_load",
        "issue": 8,
        "command": command,
        "machine": machine_description(),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "configs": configs,
        "runtime_seconds": round(time.monotonic() - started, 1),
    }


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets, judged on the agent as shipped (or the first configuration measured)."""
    key = TARGET_CONFIG if TARGET_CONFIG in results["configs"] else next(iter(results["configs"]))
    phases = results["configs"][key]["phases"]
    failed = sum(config["phases"]["all"]["failed"] for config in results["configs"].values())
    requests = sum(config["phases"]["all"]["requests"] for config in results["configs"].values())
    ratio = phases["ratio_p99_during_vs_steady"]
    return [
        {
            "target": "failed Predicts in version upgrades under steady load, all configurations (DESIGN.md section 5)",
            "limit": "0",
            "measured": f"{failed} of {requests:,}",
            "met": failed == 0,
        },
        {
            "target": f"p99 during a swap vs. steady p99, `{key}` (issue 8)",
            "limit": f"<= {RATIO_LIMIT}x",
            "measured": f"{ratio:.2f}x",
            "met": ratio <= RATIO_LIMIT,
        },
    ]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    results = run(options, command_line("benchmarks.swap_under_load", argv))
    results["targets"] = evaluate_targets(results)
    options.out.mkdir(parents=True, exist_ok=True)
    results["plot"] = plot(results, options.out / "swap_under_load.png")
    print(f"plot: {results['plot']['path'] or results['plot']['reason']}")
    publish(
        results, options.out / "swap_under_load.json", markdown=options.markdown, section=SECTION, render=render_section
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
