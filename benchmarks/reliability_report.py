"""RELIABILITY.md: the figures of issue 9's promises, from what the reliability runs wrote.

It measures nothing itself. `make reliability` first runs tests/reliability with every kill point
(EDGESIM_KILL_MATRIX=all), which writes `benchmarks/results/kill_points.json`; this script then writes
RELIABILITY.md from it: the command, the machine, how many kill points were covered of how many, and
each point with the state it leaves behind. A figure without a result says "not measured" and how to
get it, never a number from an older run.

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


def _read(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SystemExit(f"reliability_report: {path} is unreadable: {exc}") from exc
    return loaded


def render(kill: dict[str, Any] | None, machine: dict[str, Any]) -> str:
    covered = set(kill["covered"]) if kill else set()
    lines = [
        "# Reliability",
        "",
        f"Written by `{COMMAND}` on {time.strftime('%Y-%m-%d')} (benchmarks/reliability_report.py; not by hand).",
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
                ["kill-point run time", f"{kill['seconds']:.0f} s" if kill else "not measured"],
                ["fuzz examples run", "not measured yet (issue 9)"],
                ["malicious archives refused", "not measured yet (issue 9)"],
                ["soak minutes, memory growth, leaks", "not measured yet (issue 9: `make soak`)"],
                ["authorization denials", "not measured yet (issue 9)"],
            ],
        ),
        "",
        "## Kill points",
        "",
        "After each kill the device restarts and must: end the job as it should (SUCCEEDED, or FAILED for a",
        "package that fails its health check), answer a Predict through the agent, have a models_config.json",
        "that parses and names exactly what the agent holds, and a journal with no job left in progress",
        "(`tests/reliability/test_kill_points.py`; `make test` runs a sample, this run all of them).",
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
    text = render(_read(Path(args.results) / KILL_RESULTS), machine_description())
    Path(args.write).write_text(text)
    print(f"reliability_report: wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
