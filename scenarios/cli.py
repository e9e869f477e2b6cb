"""`edgesim scenario list|run`: registered through the `edgesim.commands` entry point."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from system.config import PROFILES, Settings


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.runner import discover

    for scenario in discover().values():
        print(f"{scenario.name:34} {scenario.summary}  [{', '.join(scenario.profiles)}]")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from scenarios.runner import run_scenario

    profile = args.scenario_profile or settings.profile
    if getattr(args, "log_level", None) is None:
        # The narrative and the checks are the output; a fleet's per-device info logs would bury them.
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the moto server logs every request at info
    report = run_scenario(
        args.name, profile=profile, seed=args.seed, out=Path(args.out), mqtt_url=args.mqtt_url, devices=args.devices
    )
    return 0 if report.passed else 1


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_command(commands: Any) -> None:
    scenario = commands.add_parser("scenario", help="run scripted scenarios (OTA flows, faults) and report")
    actions = scenario.add_subparsers(dest="scenario_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the scenarios, with the profiles each supports")
    listing.set_defaults(handler=_list)
    run = actions.add_parser(
        "run",
        help="run one scenario; exit code 1 when a check fails",
        description="Run a scenario against a simulated cloud and devices: full ones (real agent, small real "
        "models) and, for the fleet scenarios, light ones (the same OTA code on a simulated model runtime, "
        "thousands per process, on a virtual clock on the fake profile). Prints the narrative, the checks and a "
        "progress line for long runs, and writes a JSON and Markdown report and a PNG timeline. On the fake "
        "profile the same seed gives the same report (times aside). Logs go at warning level unless --log-level "
        "says otherwise.",
    )
    run.add_argument("name")
    run.add_argument("--profile", dest="scenario_profile", choices=PROFILES, help="default: edgesim --profile or fake")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--devices",
        type=_positive,
        metavar="N",
        help="fleet size for the fleet scenarios (light devices; default: the scenario's own, e.g. 1000)",
    )
    run.add_argument("--out", default="out/scenarios", help="report folder (default out/scenarios)")
    run.add_argument(
        "--mqtt-url",
        metavar="URL",
        help="local profile: a plain mqtt://HOST:PORT broker of yours, for debugging with mosquitto_sub "
        "(default: a Mosquitto of its own on a free port, mutual TLS, per-thing ACL)",
    )
    run.set_defaults(handler=_run)
