"""`edgesim scenario list|run`: registered through the `edgesim.commands` entry point."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from system.config import PROFILES, Settings


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.runner import discover

    for scenario in discover().values():
        print(f"{scenario.name:32} {scenario.summary}  [{', '.join(scenario.profiles)}]")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.runner import run_scenario

    profile = args.scenario_profile or settings.profile
    report = run_scenario(args.name, profile=profile, seed=args.seed, out=Path(args.out), mqtt_url=args.mqtt_url)
    return 0 if report.passed else 1


def add_command(commands: Any) -> None:
    scenario = commands.add_parser("scenario", help="run scripted scenarios (OTA flows, faults) and report")
    actions = scenario.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the scenarios, with the profiles each supports")
    listing.set_defaults(handler=_list)
    run = actions.add_parser(
        "run",
        help="run one scenario; exit code 1 when a check fails",
        description="Run a scenario against a simulated cloud and real devices (real agent, small real models), "
        "print its narrative and checks, and write a JSON and Markdown report. On the fake profile the same seed "
        "gives the same report (times aside).",
    )
    run.add_argument("name")
    run.add_argument("--profile", dest="scenario_profile", choices=PROFILES, help="default: edgesim --profile or fake")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", default="out/scenarios", help="report folder (default out/scenarios)")
    run.add_argument("--mqtt-url", help="the broker of the local profile (default mqtt://127.0.0.1:1883)")
    run.set_defaults(handler=_run)
