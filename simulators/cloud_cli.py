"""`edgesim cloud up`: a local fake AWS cloud that clients outside this process can use.

It starts the moto server (real HTTP on 127.0.0.1) and a Mosquitto of its own (mutual TLS, the
per-thing ACL) or uses the broker it is given, attaches the AWS IoT Jobs data plane to the broker as
a client, seeds the project's resources, prints the endpoints, the fake credentials, the seeded
resources and example commands, writes the certificates, a device config and a `cloud.json` summary
to the state folder, and runs until Ctrl-C or SIGTERM.

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

from simulators.cloud import JOBS_IDENTITY, BrokerAddress, SimulatedCloud
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
  - without --broker, a Mosquitto of its own on a free 127.0.0.1 port (the `mosquitto` binary must
    be installed): mutual TLS only (a client without a certificate of the local CA is refused), and
    a per-thing ACL (the certificate's CN is the thing: it reads and writes its own
    $aws/things/<thing>/... and edgesim/<thing>/... topics, nothing else); a fresh local CA in
    DIR/broker/pki issues the data plane's certificate and the seeded thing's;
  - the AWS IoT Jobs data plane ($aws/things/<thing>/jobs/...), attached as an MQTT client
    (identity "{JOBS_IDENTITY}") to that broker; jobs created through the moto endpoint reach devices
    within a second (the bridge polls moto every 0.2 s), and what devices report shows in
    describe-job-execution, list-job-executions-for-job and describe-job;
  - the project's seed resources: bucket sm-edge-workshop-<project>-<account>, thing
    edge-device-<project> in thing group defect-detection-<project>-group, an active IoT
    certificate and a least-privilege IoT policy, two SageMaker model package groups.

Outside clients need a real broker (the fake profile's simulated one is in-process: it has
no network listener), hence Mosquitto on both profiles. --broker URL uses a broker of yours instead.
Over TLS (mqtts://) the data plane verifies it with --ca and, if it wants client certificates,
presents --cert and --key (it needs read and write rights on $aws/things/+/jobs/#). A plain
mqtt:// broker is for debugging only: everything crosses it unencrypted, anyone can connect as any
thing, and the data plane's replies reach every subscriber of the reply topic, not only the
requester.

In --state DIR (mode 0700) it writes cloud.json (endpoints, names, ARNs, file paths), the seeded
thing's IoT certificate (<thing>.cert.pem, <thing>.public.key, and <thing>.private.key with mode
0600; signed by moto's own CA, as the original sample's stack gave one to its device), and
device.json, a config for `edgesim --profile local device run --config` as the seeded thing: on its
own broker with the thing's broker certificate (DIR/broker/pki/client-<thing>.crt/.key); on a plain
--broker with mqtt.allow_plaintext (the device refuses plain MQTT otherwise); on an mqtts:// --broker
none (the device needs a certificate of your broker's CA). The local CA's key is in DIR/broker/pki,
unencrypted: this is a development cloud.

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
        metavar="URL",
        help="a broker of yours: mqtts://HOST:PORT (TLS) or mqtt://HOST:PORT (plain, debugging only) "
        "(default: start a Mosquitto of its own, mutual TLS and per-thing ACL)",
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
    given = [name for name in ("ca", "cert", "key") if getattr(args, name) is not None]
    if args.broker is None:
        if given:
            raise ConfigError("--ca, --cert and --key are for an mqtts:// --broker of yours")
        return None
    address = BrokerAddress.parse(args.broker)
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
    args.state.mkdir(parents=True, exist_ok=True)
    args.state.chmod(0o700)
    own_broker = {"broker_folder": args.state / "broker"} if args.broker is None else {}
    cloud = SimulatedCloud(
        "local", mqtt_url=args.broker, tls=tls, project=args.project, moto_port=args.moto_port, **own_broker
    )
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
    mqtt = _device_mqtt(cloud, thing)
    if mqtt is not None:
        if "tls" in mqtt:
            summary["files"].update({f"broker_{name}": path for name, path in mqtt["tls"].items()})
        summary["files"]["device_config"] = str(_write_device_config(folder, summary, mqtt).resolve())
    (folder / "cloud.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _device_mqtt(cloud: SimulatedCloud, thing: str) -> dict[str, Any] | None:
    """The device config's `mqtt` section, or None on an mqtts:// broker of the user's (whose CA we
    do not hold: moto's certificate of the thing is not one that broker trusts)."""
    if cloud.owns_broker or not BrokerAddress.parse(cloud.mqtt_url or "").tls:
        return cloud.device_mqtt_config(thing)
    return None


def _write_device_config(folder: Path, summary: dict[str, Any], mqtt: dict[str, Any]) -> Path:
    """A ready `edgesim device run` config for the seeded thing (docs/edge-app.md)."""
    config = {
        "thing_name": summary["thing_name"],
        "root": "device",
        "mqtt": mqtt,
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
    files = s["files"]
    sub = f"mosquitto_sub -h {broker.host} -p {broker.port} -v -t {shlex.quote(f'$aws/things/{thing}/jobs/#')}"
    if "broker_cert" in files:  # its own broker: as the thing, with the thing's broker certificate
        sub += f" -i {thing}-watch --cafile {files['broker_ca']}"
        sub += f" --cert {files['broker_cert']} --key {files['broker_key']}"
    elif broker.tls:
        sub += " --cafile CA --cert DEVICE_CERT --key DEVICE_KEY"
    cred = s["credentials"]
    lines = [
        "edgesim cloud (moto server + AWS IoT Jobs data plane)",
        f"  moto endpoint     {endpoint}",
        f"  region            {region}   account {s['account_id']}",
        f"  credentials       AWS_ACCESS_KEY_ID={cred['aws_access_key_id']} "
        f"AWS_SECRET_ACCESS_KEY={cred['aws_secret_access_key']} (any non-empty values work)",
        f"  MQTT broker       {s['broker']}   (jobs topics: $aws/things/<thing>/jobs/...)",
        *_broker_notes(files, broker, thing),
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


def _broker_notes(files: dict[str, str], broker: BrokerAddress, thing: str) -> list[str]:
    if "broker_cert" in files:
        return [
            "    mutual TLS, per-thing ACL",
            f"    broker CA       {files['broker_ca']}",
            f"    {thing}'s broker certificate {files['broker_cert']} (key {files['broker_key']})",
        ]
    if not broker.tls:
        return ["    plain MQTT: unencrypted, anyone may connect as any thing (debugging only)"]
    return []


def _boto3_example(endpoint: str, region: str) -> str:
    return (
        f'import boto3; iot = boto3.client("iot", endpoint_url="{endpoint}", region_name="{region}", '
        f'aws_access_key_id="{FAKE_ACCESS_KEY_ID}", aws_secret_access_key="{FAKE_SECRET_ACCESS_KEY}"); '
        'print([j["jobId"] for j in iot.list_jobs()["jobs"]])'
    )
