"""RELIABILITY.md: the figures of issue 9's promises, from what the reliability runs wrote.

It measures nothing itself. `make reliability` runs tests/reliability with every kill point
(EDGESIM_KILL_MATRIX=all) and more fuzz examples, then the atheris campaign; `make soak` runs the
soak. They write `benchmarks/results/` kill_points.json, fuzz.json, authorization.json,
atheris.json and soak.json; this script writes RELIABILITY.md from them: the command, the machine,
each figure, and each kill point with the state it leaves behind. A figure without a result says
"not measured" and how to get it, never an older run's number.

    python -m benchmarks.reliability_report [--results DIR] [--write RELIABILITY.md]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_description, summary_line
from benchmarks.markdown import table
from system.killpoints import POINTS

COMMAND = "make reliability"
KILL_RESULTS = "kill_points.json"
FUZZ_RESULTS = "fuzz.json"
SOAK_RESULTS = "soak.json"
AUTH_RESULTS = "authorization.json"
ATHERIS_RESULTS = "atheris.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"reliability_report: {path} is unreadable: {exc}") from exc
    return loaded


def _soak_figure(soak: dict[str, Any] | None) -> str:
    if soak is None:
        return "not measured: run `make soak`"
    verdict = (
        "all checks passed"
        if soak["passed"]
        else "FAILED: " + ", ".join(k for k, ok in soak["checks"].items() if not ok)
    )
    return (
        f"{soak['minutes']} min, {soak['predicts']} Predicts ({len(soak['failed'])} failed), "
        f"{len(soak['upgrades'])} upgrades, {len(soak['disconnects'])} broker restarts, memory growth after "
        f"warm-up {soak['rss_growth_mb']['agent']} MB (agent) / {soak['rss_growth_mb']['device']} MB (app): {verdict}"
    )


def _auth_figure(auth: dict[str, Any] | None) -> str:
    if auth is None:
        return f"not measured: run `{COMMAND}`"
    refused = sum(v for k, v in auth.items() if k.startswith("refused"))
    dropped = sum(v for k, v in auth.items() if k.startswith("dropped"))
    return (
        f"{auth['attempts']} attempts, none got through "
        f"({refused} refused by the simulated broker, {dropped} dropped by Mosquitto's ACL)"
    )


def _atheris_figure(atheris: dict[str, Any] | None) -> str:
    if atheris is None:
        return f"not measured: run `{COMMAND}` on Linux x86_64 (atheris has no other wheels)"
    crashed = [t["target"] for t in atheris["targets"] if t["crashed"]]
    per_target = ", ".join(f"{t['target']} {t['runs']}" for t in atheris["targets"])
    return f"{atheris['runs']}: {per_target}; " + (f"CRASHED: {', '.join(crashed)}" if crashed else "no crash")


def render(
    kill: dict[str, Any] | None,
    fuzz: dict[str, Any] | None,
    soak: dict[str, Any] | None,
    auth: dict[str, Any] | None,
    atheris: dict[str, Any] | None,
    machine: dict[str, Any],
) -> str:
    covered = set(kill["covered"]) if kill else set()
    per_input = fuzz["per_input"] if fuzz else {}
    inputs = ", ".join(f"{name} {count}" for name, count in per_input.items() if name != "archives refused")
    lines = [
        "# Reliability",
        "",
        f"Written by `{COMMAND}` and `make soak` on {time.strftime('%Y-%m-%d')} (benchmarks/reliability_report.py;"
        " not by hand).",
        f"Machine: {summary_line(machine)}.",
        "",
        "## Figures",
        "",
        table(
            ["promise", "figure"],
            [
                [
                    "kill points covered (SIGKILL of agent and app together, restart, checks)",
                    f"{len(covered)} of {len(POINTS)}" if kill else f"not measured: run `{COMMAND}`",
                ],
                ["kill-point cases' run time", f"{kill['seconds']:.0f} s" if kill else "not measured"],
                [
                    "fuzz examples run (hypothesis; no crash, no hang, only documented errors)",
                    f"{fuzz['examples']}: {inputs}" if fuzz else f"not measured: run `{COMMAND}`",
                ],
                [
                    "coverage-guided inputs run (atheris from valid seeds; same properties)",
                    _atheris_figure(atheris),
                ],
                [
                    "generated archives refused (traversal, links out or to links, devices, sizes, corrupt)",
                    f"{per_input.get('archives refused', 0)} of {per_input.get('archives', 0)}, none wrote outside"
                    if fuzz
                    else "not measured",
                ],
                [
                    "soak (Predict load, upgrades, broker restarts; memory, threads, descriptors, shared memory)",
                    _soak_figure(soak),
                ],
                ["cross-thing jobs topic attempts (subscribe, publish; 4 things on 3 brokers)", _auth_figure(auth)],
            ],
        ),
        "",
        "Fuzzed inputs (tests/reliability/test_fuzz.py): job documents, IoT Jobs requests to the data plane,",
        "every reply and notification the device's jobs client receives, package manifests, archives, uploaded",
        "images (decoder and web API). The agent's Predict (tensors, metadata, shared-memory handles) and",
        "CaptureData requests are fuzzed in tests/agent/test_predict_fuzz.py (360 examples in every `make test`).",
        "atheris (benchmarks/atheris_campaign.py, tests/reliability/atheris_targets.py) mutates raw bytes of",
        "archives, images, job documents, manifests and IoT Jobs requests, guided by the branches they reach in",
        "our code, tarfile, gzip and Pillow's decoders.",
        "",
        "## Kill points",
        "",
        "After each kill the device restarts and must: end the job as it should (SUCCEEDED, or FAILED for a",
        "package that fails its health check), answer a Predict through the agent, have a models_config.json",
        "that parses and names exactly what the agent holds, a journal with no job left in progress, and no",
        "temp file of an interrupted atomic write left (`tests/reliability/test_kill_points.py`; `make test`",
        "runs a sample, this run all of them). The local cloud's broker is Mosquitto with mutual TLS and the",
        "per-thing ACL, and the device connects with its certificate, as `edgesim cloud up` runs it.",
        "",
        table(
            ["point", "state it leaves", "covered"],
            [[f"`{point}`", text, "yes" if point in covered else "no"] for point, text in POINTS.items()],
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="benchmarks/results", help="where the reliability runs wrote")
    parser.add_argument("--write", default="RELIABILITY.md", help="the file to write")
    args = parser.parse_args(argv)
    results = Path(args.results)
    text = render(
        _read(results / KILL_RESULTS),
        _read(results / FUZZ_RESULTS),
        _read(results / SOAK_RESULTS),
        _read(results / AUTH_RESULTS),
        _read(results / ATHERIS_RESULTS),
        machine_description(),
    )
    Path(args.write).write_text(text)
    print(f"reliability_report: wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
