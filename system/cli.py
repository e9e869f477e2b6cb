"""The `edgesim` command line.

Subcommands of the product live here (`edgesim agent ...`). Commands that need the fakes or the
scenarios (`edgesim demo`, later `edgesim scenario ...`) are registered by those packages through
the `edgesim.commands` entry-point group, so that `system` never imports `simulators`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from importlib.metadata import entry_points

from system.config import DEFAULT_AGENT_SOCKET, PROFILES, AgentSettings, Settings, load_settings
from system.errors import EdgesimError
from system.logs import configure_logging

Handler = Callable[[argparse.Namespace, Settings], int]


def _agent_settings(args: argparse.Namespace, settings: Settings) -> AgentSettings:
    agent = settings.agent
    if args.config:
        agent = AgentSettings.from_agent_config_file(args.config, agent)
    changes: dict[str, object] = {}
    if args.socket:
        changes["socket_path"] = args.socket
    if args.address:
        changes["address"] = args.address
    if args.max_models is not None:
        changes["max_models"] = args.max_models
    if args.memory_budget_mb is not None:
        changes["memory_budget_mb"] = args.memory_budget_mb
    if args.workers is not None:
        changes["workers"] = args.workers
    if args.strict_dtypes:
        changes["accept_float32_payloads"] = False
    agent = replace(agent, **changes)  # type: ignore[arg-type]
    if args.capture_dir:
        agent = replace(agent, capture=replace(agent.capture, destination="Disk", disk_path=args.capture_dir))
    agent.validate()
    return agent


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from system.agent.server import EdgeAgent

    EdgeAgent(_agent_settings(args, settings)).serve_until_signal()
    return 0


def _client(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    from system.adapters.agent_client import GrpcEdgeAgentClient

    return GrpcEdgeAgentClient(args.target or settings.agent.target)


def _models(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        for model in client.list_models():
            print(
                json.dumps(
                    {
                        "name": model.name,
                        "url": model.url,
                        "inputs": [s.describe() for s in model.inputs],
                        "outputs": [s.describe() for s in model.outputs],
                    }
                )
            )
    return 0


def _load(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        model = client.load_model(args.name, args.url)
        print(
            f"loaded {model.name}: inputs {[s.describe() for s in model.inputs]}, "
            f"outputs {[s.describe() for s in model.outputs]}"
        )
    return 0


def _unload(args: argparse.Namespace, settings: Settings) -> int:
    with _client(args, settings) as client:
        client.unload_model(args.name)
        print(f"unloaded {args.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgesim",
        description="Cloud-to-edge defect detection: the Edge Agent, OTA and the fakes to run it offline.",
    )
    parser.add_argument("--profile", choices=PROFILES, help="backends to use (default: $EDGESIM_PROFILE or fake)")
    parser.add_argument("--log-level", default=None, help="debug, info, warning or error (default info)")
    parser.add_argument("--log-format", choices=("json", "text"), default="json", help="log line format")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    agent = commands.add_parser("agent", help="the Edge Agent (SageMaker Edge Agent API over gRPC)")
    agent_commands = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    serve = agent_commands.add_parser(
        "serve",
        help="run the agent until SIGTERM/SIGINT",
        description="Serve the AWS.SageMaker.Edge.Agent gRPC API on a unix socket (owner-only) or a TCP address, "
        "with the grpc.health.v1 service. SIGTERM or SIGINT stops it gracefully: in-flight calls finish, "
        "buffered captures are written.",
    )
    where = serve.add_mutually_exclusive_group()
    where.add_argument("--socket", "-a", help=f"unix socket path (default {DEFAULT_AGENT_SOCKET}, like the original)")
    where.add_argument("--address", help="listen on HOST:PORT instead, e.g. 127.0.0.1:50051 (port 0 picks one)")
    serve.add_argument("--config", "-c", help="the original agent's JSON config (sagemaker_edge_* capture keys)")
    serve.add_argument("--max-models", type=int, help="refuse loads beyond this many models (default 8)")
    serve.add_argument("--memory-budget-mb", type=int, help="refuse loads beyond this total package size")
    serve.add_argument("--workers", type=int, help="concurrent RPC threads (default 16)")
    serve.add_argument("--capture-dir", help="write captures to this folder (the Disk destination)")
    serve.add_argument(
        "--strict-dtypes",
        action="store_true",
        help="refuse float32 payloads for non-float32 inputs instead of converting them exactly",
    )
    serve.set_defaults(handler=_serve)

    for name, handler, help_text in (
        ("models", _models, "list the loaded models (JSON lines)"),
        ("load", _load, "load a model package folder under a name"),
        ("unload", _unload, "unload a model"),
    ):
        sub = agent_commands.add_parser(name, help=help_text)
        sub.add_argument("--target", help="agent to call (default unix:///tmp/edge_agent or $EDGESIM_AGENT_*)")
        if name in ("load", "unload"):
            sub.add_argument("name", help="model name, e.g. img-classification-1")
        if name == "load":
            sub.add_argument("url", help="path of the unpacked model package folder")
        sub.set_defaults(handler=handler)

    from system.edge.device_cli import add_command as add_device_command

    add_device_command(commands)
    from system.cloud.pipeline.cli import add_command as add_pipeline_command

    add_pipeline_command(commands)
    from system.cloud.provision.cli import add_command as add_provision_command

    add_provision_command(commands)
    for entry in sorted(entry_points(group="edgesim.commands"), key=lambda e: e.name):
        entry.load()(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.profile:
            settings = replace(settings, profile=args.profile)
        configure_logging(args.log_level or settings.log_level, json_lines=args.log_format == "json")
        if settings.kill_at:  # crash testing only: this process will SIGKILL itself at that point
            from system.killpoints import arm

            arm(settings.kill_at)
            logging.getLogger(__name__).warning("armed to die at kill point %s", settings.kill_at)
        handler: Handler = args.handler
        return handler(args, settings)
    except EdgesimError as exc:
        print(f"edgesim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
