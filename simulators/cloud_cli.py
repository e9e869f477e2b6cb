"""`edgesim cloud up`: a local fake AWS cloud that clients outside this process can use.

It starts the moto server (real HTTP on 127.0.0.1) and attaches the AWS IoT Jobs data plane to a
real MQTT broker as a client, seeds the project's resources, prints the endpoints, the fake
credentials, the seeded resources and example commands, writes the device certificate and a
`cloud.json` summary to the state folder, and runs until Ctrl-C or SIGTERM.

Registered as a command of `edgesim` through the `edgesim.commands` entry point (pyproject.toml).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from simulators.cloud import DEFAULT_MQTT_URL, JOBS_IDENTITY, BrokerAddress, SimulatedCloud
from simulators.moto_env import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
from simulators.moto_seed import SeededProject
from system.adapters.tls import TlsFiles
from system.config import Settings
from system.errors import ConfigError

READY = "edgesim cloud is up; Ctrl-C or SIGTERM stops it."
DEFAULT_STATE = ".edgesim/cloud"

DESCRIPTION = f"""\
Start a local fake AWS cloud for clients outside this process: boto3 or the AWS CLI pointed at the
printed endpoint, a device or the AWS IoT Device SDK samples on the MQTT broker.

What runs, in this process, until Ctrl-C or SIGTERM (then it stops cleanly, exit code 0):
  - the moto server (S3, IoT control plane, SageMaker model registry) on 127.0.0.1, over plain
    HTTP, on --moto-port (default: a free port); any non-empty credentials work (it prints some);
  - the AWS IoT Jobs data plane ($aws/things/<thing>/jobs/...), attached as an MQTT client
    (identity "{JOBS_IDENTITY}") to the broker given by --broker; jobs created through the moto endpoint
    reach devices within a second (the bridge polls moto every 0.2 s), and what devices report
    shows in describe-job-execution, list-job-executions-for-job and describe-job;
  - the project's seed resources: bucket sm-edge-workshop-<project>-<account>, thing
    edge-device-<project> in thing group defect-detection-<project>-group, an active IoT
    certificate and a least-privilege IoT policy, two SageMaker model package groups.

It needs a real broker: the simulated in-process broker of the fake profile has no network
listener. Without --broker it uses Mosquitto at {DEFAULT_MQTT_URL}. Over TLS (mqtts://) it
verifies the broker with --ca and, if the broker wants client certificates, presents --cert and
--key (the data plane needs read and write rights on $aws/things/+/jobs/#). On a plain broker the
data plane's replies reach every subscriber of the reply topic, not only the requester.

In --state DIR it writes cloud.json (endpoints, names, ARNs, file paths) and the seeded thing's
certificate (<thing>.cert.pem, <thing>.public.key, and <thing>.private.key with mode 0600; the
folder is 0700). That certificate is signed by moto's own CA, as the original sample's stack gave
one to its device; a TLS broker trusts it only if it trusts moto's CA. On a plain broker it also
writes device.json, a config for `edgesim --profile local device run --config` as the seeded thing.

Profiles: fake and local both run the servers above (outside clients need real endpoints);
the aws profile is refused (there is nothing to start). The moto state lives in memory only and
is lost when the command stops."""


def add_command(commands: Any) -> None:
    """Register `edgesim cloud up` (entry point `edgesim.commands`)."""
    cloud = commands.add_parser(
        "cloud",
        help="a local fake AWS cloud for outside clients (moto server + IoT Jobs data plane on MQTT)",
        description="The fake cloud as servers other processes can use.",
    )
    actions = cloud.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)
    up = actions.add_parser(
        "up",
        help="start moto server and the IoT Jobs data plane on a broker; run until Ctrl-C/SIGTERM",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument(
        "--profile",
        dest="cloud_profile",
        choices=("fake", "local"),
        help="accepted for symmetry: both run moto server + a real broker (default: edgesim's --profile)",
    )
    up.add_argument(
        "--broker",
        default=DEFAULT_MQTT_URL,
        metavar="URL",
        help=f"the MQTT broker: mqtt://HOST:PORT (TCP) or mqtts://HOST:PORT (TLS) (default {DEFAULT_MQTT_URL})",
    )
    up.add_argument("--ca", type=Path, metavar="FILE", help="CA certificate (PEM) that signed the broker's (mqtts)")
    up.add_argument("--cert", type=Path, metavar="FILE", help="the data plane's client certificate (PEM, mqtts)")
    up.add_argument("--key", type=Path, metavar="FILE", help="the data plane's client private key (PEM, mqtts)")
    up.add_argument("--moto-port", type=int, default=0, metavar="N", help="moto server port (default 0: a free one)")
    up.add_argument(
        "--state",
        type=Path,
        default=Path(DEFAULT_STATE),
        metavar="DIR",
        help=f"folder for cloud.json and the device certificate files (default {DEFAULT_STATE})",
    )
    up.add_argument("--project", default="edgesim", metavar="NAME", help="project name of the seeded resources")
    up.set_defaults(handler=_up)


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    address = BrokerAddress.parse(args.broker)
    given = [name for name in ("ca", "cert", "key") if getattr(args, name) is not None]
    if not address.tls:
        if given:
            raise ConfigError("--ca, --cert and --key are for an mqtts:// broker")
        return None
    if args.ca is None:
        raise ConfigError("an mqtts:// broker needs --ca (the CA certificate that signed the broker's)")
    for path in (args.ca, args.cert, args.key):
        if path is not None and not path.is_file():
            raise ConfigError(f"{path} is not a file")
    return TlsFiles(args.ca, args.cert, args.key)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    profile = args.cloud_profile or settings.profile
    if profile == "aws":
        raise ConfigError("`edgesim cloud up` starts the fake cloud; with the aws profile there is nothing to start")
    if not 0 <= args.moto_port <= 65535:
        raise ConfigError(f"--moto-port must be 0-65535, not {args.moto_port}")
    tls = _tls(args)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto request otherwise
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cloud = SimulatedCloud("local", mqtt_url=args.broker, tls=tls, project=args.project, moto_port=args.moto_port)
    try:
        cloud.start()
        summary = _write_state(args.state, cloud)
        print(_describe(summary, args.state), flush=True)
        print(READY, flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        cloud.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("edgesim cloud stopped", flush=True)
    return 0


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # also when the file existed with a wider mode
        out.write(text)


def _write_state(folder: Path, cloud: SimulatedCloud) -> dict[str, Any]:
    """Write the certificate files and cloud.json; returns what cloud.json holds."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    project: SeededProject = cloud.project
    thing = project.thing_name
    files = {
        "certificate": folder / f"{thing}.cert.pem",
        "public_key": folder / f"{thing}.public.key",
        "private_key": folder / f"{thing}.private.key",
    }
    files["certificate"].write_text(project.certificate_pem)
    files["public_key"].write_text(project.public_key_pem)
    _write_private(files["private_key"], project.private_key_pem)
    summary: dict[str, Any] = {
        "moto_endpoint": cloud.endpoint_url,
        "region": project.region,
        "account_id": project.account_id,
        "credentials": {"aws_access_key_id": FAKE_ACCESS_KEY_ID, "aws_secret_access_key": FAKE_SECRET_ACCESS_KEY},
        "broker": cloud.mqtt_url,
        "project": project.project,
        "bucket": project.bucket,
        "thing_name": thing,
        "thing_arn": project.thing_arn,
        "thing_group_name": project.thing_group_name,
        "thing_group_arn": project.thing_group_arn,
        "policy_name": project.policy_name,
        "certificate_id": project.certificate_id,
        "certificate_arn": project.certificate_arn,
        "registry_groups": list(project.registry_groups),
        "files": {name: str(path.resolve()) for name, path in files.items()},
    }
    device = _write_device_config(folder, summary)
    if device is not None:
        summary["files"]["device_config"] = str(device.resolve())
    (folder / "cloud.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _write_device_config(folder: Path, summary: dict[str, Any]) -> Path | None:
    """A ready `edgesim device run` config for the seeded thing on a plain broker (docs/edge-app.md).

    Over TLS there is none: the device would need a certificate the broker trusts, which moto's
    CA-signed one is not.
    """
    if BrokerAddress.parse(summary["broker"]).tls:
        return None
    config = {
        "thing_name": summary["thing_name"],
        "root": "device",
        "mqtt": {"url": summary["broker"]},
        "object_store": {"endpoint_url": summary["moto_endpoint"], "region": summary["region"]},
        "inference": {"source": {"type": "camera", "seed": 0}, "rate_hz": 2.0},
    }
    path = folder / "device.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _describe(s: dict[str, Any], folder: Path) -> str:
    endpoint, region, thing = s["moto_endpoint"], s["region"], s["thing_name"]
    broker = BrokerAddress.parse(s["broker"])
    document = json.dumps(
        {
            "type": "new_model",
            "model_name": "img-classification",
            "model_version": "2",
            "model_package_bucket": s["bucket"],
            "model_package_key": "models/img-classification-2.tar.gz",
        },
        separators=(",", ":"),
    )
    sub = f"mosquitto_sub -h {broker.host} -p {broker.port} -v -t {shlex.quote(f'$aws/things/{thing}/jobs/#')}"
    if broker.tls:
        sub += " --cafile CA --cert DEVICE_CERT --key DEVICE_KEY"
    cred = s["credentials"]
    lines = [
        "edgesim cloud (moto server + AWS IoT Jobs data plane)",
        f"  moto endpoint     {endpoint}",
        f"  region            {region}   account {s['account_id']}",
        f"  credentials       AWS_ACCESS_KEY_ID={cred['aws_access_key_id']} "
        f"AWS_SECRET_ACCESS_KEY={cred['aws_secret_access_key']} (any non-empty values work)",
        f"  MQTT broker       {s['broker']}   (jobs topics: $aws/things/<thing>/jobs/...)",
        f"seeded project {s['project']}:",
        f"  bucket            {s['bucket']}",
        f"  thing             {thing}   {s['thing_arn']}",
        f"  thing group       {s['thing_group_name']}   {s['thing_group_arn']}",
        f"  IoT policy        {s['policy_name']}",
        f"  certificate       {s['certificate_id']} (signed by moto's CA)",
        f"    certificate     {s['files']['certificate']}",
        f"    private key     {s['files']['private_key']} (mode 0600)",
        f"    public key      {s['files']['public_key']}",
        f"  model packages    {', '.join(s['registry_groups'])}",
        f"  summary           {(folder / 'cloud.json').resolve()}",
        *([f"  device config     {s['files']['device_config']}"] if "device_config" in s["files"] else []),
        "try:",
        f"  export AWS_ACCESS_KEY_ID={cred['aws_access_key_id']} "
        f"AWS_SECRET_ACCESS_KEY={cred['aws_secret_access_key']} AWS_DEFAULT_REGION={region}",
        f"  {sub}",
        f"  aws --endpoint-url {endpoint} iot create-job --job-id ota-1 "
        f"--targets {s['thing_group_arn']} --document {shlex.quote(document)}",
        f"  aws --endpoint-url {endpoint} iot describe-job-execution --job-id ota-1 --thing-name {thing}",
        *(
            [f"  edgesim --profile local device run --config {s['files']['device_config']}"]
            if "device_config" in s["files"]
            else []
        ),
        f"  python3 -c {shlex.quote(_boto3_example(endpoint, region))}",
    ]
    return "\n".join(lines)


def _boto3_example(endpoint: str, region: str) -> str:
    return (
        f'import boto3; iot = boto3.client("iot", endpoint_url="{endpoint}", region_name="{region}", '
        f'aws_access_key_id="{FAKE_ACCESS_KEY_ID}", aws_secret_access_key="{FAKE_SECRET_ACCESS_KEY}"); '
        'print([j["jobId"] for j in iot.list_jobs()["jobs"]])'
    )
