"""`edgesim device run --config FILE`: the agent and the edge app of one device, until SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

from system.config import PROFILES, Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from system.edge.backends import build_backends
    from system.edge.device import DeviceApp
    from system.edge.device_config import load_device_config

    config = load_device_config(Path(args.config))
    if args.web_port is not None:
        config = replace(config, web_port=args.web_port)
    profile = args.device_profile or settings.profile
    backends = build_backends(config, settings, profile)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    try:
        device = DeviceApp(config, backends, profile=profile)
    except BaseException:
        for closer in reversed(backends.closers):  # e.g. the in-process agent and, on fake, the cloud
            closer()
        raise
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        device.start()
        print(f"edgesim device {config.thing_name} running ({profile}); web UI: {device.web_url}", flush=True)
        # Waits in slices: a signal the kernel hands to another thread (TensorFlow's, gRPC's) only sets a
        # flag the main thread checks when it runs Python, so an endless wait could miss SIGTERM.
        while not stop.wait(0.5):
            pass
    finally:
        device.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    device = commands.add_parser("device", help="the edge app of one device (OTA, inference, web UI)")
    actions = device.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run one device until SIGTERM/SIGINT",
        description="Run one edge device: restore the models of models_config.json into the agent (in-process, "
        "or an external one), take OTA jobs over the AWS IoT Jobs MQTT API, run inference continuously with data "
        "capture, publish telemetry, and serve the web UI. --profile picks the backends (fake: everything "
        "in-process; local: a broker and S3 endpoint of yours, e.g. edgesim cloud up; aws: AWS IoT Core and S3). "
        "On local and aws MQTT goes over TLS with the client certificate of mqtt.tls; a plain mqtt:// broker is "
        "refused unless the config says mqtt.allow_plaintext (local only). SIGTERM stops gracefully; after a "
        "SIGKILL the next start resumes the OTA job in progress.",
    )
    run.add_argument("--config", required=True, help="the device config (JSON; see docs/edge-app.md)")
    run.add_argument(
        "--profile",
        dest="device_profile",
        choices=PROFILES,
        help="backends: fake, local or aws (default: edgesim --profile, $EDGESIM_PROFILE, or fake)",
    )
    run.add_argument("--web-port", type=int, help="override web.port (0 picks a free port)")
    run.set_defaults(handler=_run)
