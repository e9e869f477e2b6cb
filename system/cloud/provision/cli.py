"""`edgesim provision`: create, check or destroy the AWS resources of a project and one device."""

from __future__ import annotations

import argparse
from pathlib import Path

from system.config import Settings
from system.errors import ConfigError

DESCRIPTION = (
    "Create in your AWS account what a project and one device need: a versioned, SSE-S3 encrypted bucket; a thing "
    "in the project's thing group; an active certificate and key attached to the thing; an IoT policy that lets a "
    "device connect only as its own thing name and use only its own IoT Jobs topics and telemetry topics; an IAM "
    "role and IoT role alias so the certificate can get temporary S3 credentials (read models/, write the data "
    "capture prefix); the two model package groups. Each resource is looked up first: a second run creates "
    "nothing and reuses the certificate. The device bundle (device.json, certificate, private key, all owner-only) "
    "goes to --out, with the public half of the project's Ed25519 package signing key (--signing-key: made once, "
    "kept off devices). Uses boto3's usual credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID...). --cloudformation "
    "prints the equivalent CloudFormation template instead. See docs/provisioning.md."
)


def _run(args: argparse.Namespace, _settings: Settings) -> int:
    from system.cloud.provision.bundle import default_out
    from system.cloud.provision.plan import build_plan, validate_project
    from system.cloud.provision.report import StepLog
    from system.cloud.provision.session import open_clients

    if args.cloudformation:
        from system.cloud.provision.cloudformation import render

        print(render(), end="")
        return 0
    if not args.project:
        raise ConfigError("--project is required (except with --cloudformation)")
    validate_project(args.project)
    if args.account and not args.dry_run:
        raise ConfigError("--account is only for --dry-run; provisioning uses the credentials' own account")
    if args.dry_run and args.account:  # a plan for a given account needs no AWS call at all
        plan = build_plan(args.project, region=args.region or "us-east-1", account_id=args.account, thing=args.thing)
        print(plan.render())
        return 0
    clients = open_clients(args.region, args.endpoint_url)
    plan = build_plan(
        args.project,
        region=clients.region,
        account_id=clients.account_id(),
        partition=clients.partition,
        thing=args.thing,
    )
    if args.dry_run:
        print(plan.render())
        return 0
    out = Path(args.out) if args.out else default_out(plan.project, plan.thing_name)
    log = StepLog(lambda step: print(step.line(), flush=True))
    if args.destroy:
        from system.cloud.provision.destroy import Destroyer

        Destroyer(clients, plan, out, log).destroy()
        return 0
    from system.cloud.provision.apply import Provisioner
    from system.cloud.provision.signing_key import default_signing_key

    signing_key = Path(args.signing_key) if args.signing_key else default_signing_key(plan.project)
    provisioner = Provisioner(clients, plan, out, log, signing_key=signing_key)
    notes = provisioner.apply(Path(args.root_ca) if args.root_ca else None)
    print(f"device bundle: {out}")
    print(f"package signing key: {signing_key} (keep it off devices; edgesim pipeline run --sign-key {signing_key})")
    for note in notes:
        print(f"note: {note}")
    return 1 if log.with_status("warning") or any("private key" in note for note in notes) else 0


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    provision = commands.add_parser(
        "provision", help="create (or --destroy) a project's AWS resources and a device bundle", description=DESCRIPTION
    )
    provision.add_argument("--project", help="project name: 1-24 lowercase letters, digits, hyphens (required)")
    provision.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the profile's)")
    provision.add_argument("--thing", help="the device's thing name (default edge-device-<project>)")
    action = provision.add_mutually_exclusive_group()
    action.add_argument(
        "--dry-run", action="store_true", help="print the plan (names and policy documents) and change nothing"
    )
    action.add_argument(
        "--destroy",
        action="store_true",
        help="delete the device's certificate, thing and bundle files, then the project's resources unless "
        "other things remain in its thing group (the bucket with every object version)",
    )
    action.add_argument(
        "--cloudformation",
        action="store_true",
        help="print the equivalent CloudFormation template (JSON; the project is a stack parameter) and exit",
    )
    provision.add_argument("--out", help="device bundle folder (default ./edgesim-<project>-<thing>/)")
    provision.add_argument(
        "--signing-key",
        help="the project's Ed25519 package signing key: reused if it exists, else made (mode 0600); devices "
        "get its public key (default ./edgesim-<project>-signing.key; never put inside --out)",
    )
    provision.add_argument("--root-ca", help="copy this AmazonRootCA1.pem into the bundle (never downloaded)")
    provision.add_argument("--endpoint-url", help="send every AWS call here (e.g. a moto server for tests)")
    provision.add_argument(
        "--account",
        help="with --dry-run: plan for this 12-digit account without calling AWS (region default us-east-1)",
    )
    provision.set_defaults(handler=_run)
