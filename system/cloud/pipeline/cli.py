"""`edgesim pipeline run|deploy|definition`: train, gate, package and register a model; deploy it."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from system.config import PROFILES, Settings

RUN_HELP = """\
Run the classification or segmentation pipeline: ingest a KolektorSDD2-layout folder (--data) or
synthetic data (--synthetic N) into the seed's layouts, pre-process (pad to square, resize: the
code the edge uses), split (stratified, seeded) and augment the training split only, train from
scratch (early stopping), evaluate (F1/ROC-AUC or Dice/IoU, with plots), gate, then build the
edge packages (SavedModel + TFLite, optional quantization and signature) under the next registry
version and register it. Steps are cached by input hash (--no-cache runs them all). Reports go
to --out. Exit code 0: registered; 1: the gate refused the model (nothing registered); 2: error."""


def _backends(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    from system.cloud.pipeline.backends import build_cloud_backends

    profile = args.pipeline_profile or settings.profile
    return build_cloud_backends(profile, cloud_file=args.cloud, bucket=args.bucket, project=args.project)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from system.cloud.pipeline.pipelines import PipelineOptions, run_pipeline, save_reports
    from system.cloud.pipeline.progress import Progress
    from system.cloud.pipeline.runner import GateFailed

    gate = json.loads(Path(args.gate).read_text()) if args.gate else {}
    options = PipelineOptions(
        task=args.task,
        data=Path(args.data) if args.data else None,
        synthetic=args.synthetic or 0,
        seed=args.seed,
        epochs=args.epochs,
        image_size=args.image_size,
        quantization=args.quantization,
        gate=gate,
        approval=args.approval,
        signing_key=Path(args.sign_key) if args.sign_key else None,
        use_cache=not args.no_cache,
    )
    options.validate()
    backends = _backends(args, settings)
    out = Path(args.out or f"out/pipeline/{args.task}")
    try:
        with tempfile.TemporaryDirectory(prefix="edgesim-pipeline-") as workdir:
            try:
                result = run_pipeline(options, backends, Path(workdir), Progress())
            except GateFailed as failed:
                save_reports(backends, failed.results, out)
                print(
                    f"gate failed: nothing registered ({'; '.join(failed.reasons)}); reports in {out}", file=sys.stderr
                )
                return 1
            save_reports(backends, result.outcomes, out)
    finally:
        backends.close()
    package = result.outcomes["package"].summary
    print(f"registered {package['model']} version {package['version']} ({package['approval']}); reports in {out}")
    for key in package["archives"]:
        print(f"  s3://{backends.bucket}/{key}")
    return 0


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from system.cloud.deploy import DeploymentConfig, deploy_report
    from system.cloud.edge_package import PackageReport, package_key

    config = DeploymentConfig.from_dict(json.loads(Path(args.config).read_text()) if args.config else {})
    backends = _backends(args, settings)
    try:
        key = package_key("models", args.model, args.version, "package-report.json")
        report = PackageReport.from_dict(json.loads(backends.store.get_bytes(key)))
        targets = [_group_arn(backends, args.group)] if args.group else backends.targets
        job_id = deploy_report(backends.jobs, report, targets=targets, config=config)
    finally:
        backends.close()
    print(f"created IoT job {job_id} for {args.model} {args.version} -> {', '.join(targets)}")
    return 0


def _definition(args: argparse.Namespace, settings: Settings) -> int:
    from system.cloud.pipeline.definition import pipeline_definition

    backends = _backends(args, settings)
    try:
        definition = pipeline_definition(
            args.task,
            backends.session,
            bucket=backends.bucket,
            role_arn=args.role,
            group=backends.groups[args.task],
            endpoint_url=backends.endpoint_url,
            image_uri=args.image,
            instance_type=args.instance_type,
        )
    finally:
        backends.close()
    text = json.dumps(definition, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote the {args.task} pipeline definition ({len(definition['Steps'])} top-level steps) to {args.out}")
    else:
        print(text)
    return 0


def _group_arn(backends: Any, group: str) -> str:
    """A thing group ARN as given, or the ARN of the thing group of that name."""
    if group.startswith("arn:"):
        return group
    from botocore.exceptions import BotoCoreError, ClientError

    from system.errors import ConfigError

    try:
        iot = backends.session.client("iot", endpoint_url=backends.endpoint_url)
        return str(iot.describe_thing_group(thingGroupName=group)["thingGroupArn"])
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"thing group {group!r}: {exc}") from exc


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", dest="pipeline_profile", choices=PROFILES, help="backends (default: fake)")
    parser.add_argument("--cloud", type=Path, help="cloud.json of `edgesim cloud up` (the local profile)")
    parser.add_argument("--bucket", help="artifacts bucket (aws; default: the seeded project's)")
    parser.add_argument("--project", help="the seed stack's project name (aws)")


def add_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pipeline = commands.add_parser("pipeline", help="train, evaluate, gate, package, register and deploy models")
    actions = pipeline.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="run a training pipeline", description=RUN_HELP)
    run.add_argument("task", choices=("classification", "segmentation"))
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="a KolektorSDD2-layout folder (train/, test/, <id>.png + <id>_GT.png)")
    source.add_argument("--synthetic", type=int, help="generate N synthetic training images instead")
    run.add_argument("--epochs", type=int, default=40, help="at most this many (early stopping; default 40)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--image-size", type=int, default=64, help="square model input side in pixels (default 64)")
    run.add_argument(
        "--quantization", choices=("none", "float16", "int8"), default="none", help="of the TFLite package"
    )
    run.add_argument("--gate", help='JSON file of gate thresholds, e.g. {"min_anomalous_f1": 0.6}')
    run.add_argument("--approval", choices=("Approved", "PendingManualApproval"), default="Approved")
    run.add_argument("--sign-key", help="Ed25519 private key (PEM) to sign the package archives")
    run.add_argument("--no-cache", action="store_true", help="run every step even when its inputs are unchanged")
    run.add_argument("--out", help="local folder for the reports and plots (default out/pipeline/<task>)")
    _common(run)
    run.set_defaults(handler=_run)

    deploy = actions.add_parser("deploy", help="create the IoT job that installs a registered version on devices")
    deploy.add_argument("model", help="img-classification or unet")
    deploy.add_argument("version", help="the registry version, e.g. 3")
    deploy.add_argument("--group", help="target thing group, name or ARN (default: the project's thing group)")
    deploy.add_argument("--config", help="JSON deployment config: variant, rollout, abort, timeout")
    _common(deploy)
    deploy.set_defaults(handler=_deploy)

    definition = actions.add_parser(
        "definition",
        help="emit the SageMaker Pipelines definition (JSON) of a pipeline",
        description="Build the pipeline with the SageMaker Python SDK: Preprocess, Train, Evaluate, a Gate on "
        "anomalous F1 or Dice, then Register or Fail. The SDK uploads the entry scripts to the bucket, so this "
        "talks to S3: moto on the fake and local profiles (nothing leaves the machine), AWS on the aws profile.",
    )
    definition.add_argument("task", choices=("classification", "segmentation"))
    definition.add_argument(
        "--role", default="arn:aws:iam::123456789012:role/edgesim-sagemaker", help="execution role ARN"
    )
    definition.add_argument("--image", help="the jobs' container image (needs edgesim installed)")
    definition.add_argument("--instance-type", default="ml.m5.xlarge")
    definition.add_argument("--out", help="write the JSON here instead of standard output")
    _common(definition)
    definition.set_defaults(handler=_definition)
