"""Deploy a model package to a fleet: one AWS IoT job per model version, to thing groups.

The job document is the seed's (its five string fields, which devices in the field already read)
plus the integrity fields the edge app checks before it installs anything: the archive's `sha256`
and `size`, and its Ed25519 `signature` when the package is signed (docs/edge-app.md, "The job
document"). The rollout, abort and timeout settings are CreateJob's own
(`jobExecutionsRolloutConfig`, `abortConfig`, `timeoutConfig`), taken from the deployment config
and checked here in outline so that a typo fails before the job exists, not in the service.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from system.cloud.edge_package import PackageReport
from system.edge.job_document import JOB_TYPE, parse_job_document
from system.errors import ConfigError
from system.ports import JobsControl, JobSpec

VARIANTS = ("tensorflow", "tflite")
TARGET_SELECTIONS = ("SNAPSHOT", "CONTINUOUS")
FAILURE_TYPES = ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
_ABORT_KEYS = {"failureType", "action", "thresholdPercentage", "minNumberOfExecutedThings"}


@dataclass(frozen=True)
class DeploymentConfig:
    """Which package a fleet gets and how the job rolls out (CreateJob's shapes, boto3's names).

    rollout  {"maximumPerMinute": 1-1000} and/or {"exponentialRate": {"baseRatePerMinute",
             "incrementFactor", "rateIncreaseCriteria": {"numberOfNotifiedThings" | "numberOfSucceededThings"}}}
    abort    {"criteriaList": [{"failureType", "action": "CANCEL", "thresholdPercentage",
             "minNumberOfExecutedThings"}, ...]}
    timeout  {"inProgressTimeoutInMinutes": 1-10080}
    """

    variant: str = "tensorflow"
    rollout: dict[str, Any] | None = None
    abort: dict[str, Any] | None = None
    timeout: dict[str, Any] | None = None
    target_selection: str = "SNAPSHOT"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"deployment variant must be one of {', '.join(VARIANTS)}, not {self.variant!r}")
        if self.target_selection not in TARGET_SELECTIONS:
            raise ConfigError(f"target_selection must be SNAPSHOT or CONTINUOUS, not {self.target_selection!r}")
        if self.rollout is not None:
            _check_rollout(self.rollout)
        if self.abort is not None:
            _check_abort(self.abort)
        if self.timeout is not None:
            _check_timeout(self.timeout)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DeploymentConfig:
        """The config from its JSON form (the same keys as the fields); unknown keys are refused."""
        if not isinstance(raw, Mapping):
            raise ConfigError("the deployment config must be an object")
        _keys(raw, "deployment", set(cls.__dataclass_fields__))
        values = dict(raw)
        for name in ("rollout", "abort", "timeout"):
            if values.get(name) is not None:
                values[name] = dict(_mapping(values[name], name))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "rollout": self.rollout,
            "abort": self.abort,
            "timeout": self.timeout,
            "target_selection": self.target_selection,
        }


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{what} must be an object, not {type(value).__name__}")
    return value


def _keys(raw: Mapping[str, Any], what: str, allowed: Collection[str], required: Collection[str] = ()) -> None:
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {unknown}; known: {sorted(allowed)}")
    missing = sorted(set(required) - set(raw))
    if missing:
        raise ConfigError(f"{what}: missing {missing}")


def _int(value: Any, what: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        raise ConfigError(f"{what} must be an integer from {low}{f' to {high}' if high else ''}, not {value!r}")


def _number(value: Any, what: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(f"{what} must be a number from {low} to {high}, not {value!r}")


def _check_rollout(rollout: Mapping[str, Any]) -> None:
    rollout = _mapping(rollout, "rollout")
    _keys(rollout, "rollout", {"maximumPerMinute", "exponentialRate"})
    if not rollout:
        raise ConfigError("rollout needs maximumPerMinute or exponentialRate")
    if "maximumPerMinute" in rollout:
        _int(rollout["maximumPerMinute"], "rollout.maximumPerMinute", 1, 1000)
    if "exponentialRate" in rollout:
        rate = _mapping(rollout["exponentialRate"], "rollout.exponentialRate")
        fields = {"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"}
        _keys(rate, "rollout.exponentialRate", fields, fields)
        _int(rate["baseRatePerMinute"], "rollout.exponentialRate.baseRatePerMinute", 1, 1000)
        _number(rate["incrementFactor"], "rollout.exponentialRate.incrementFactor", 1.1, 5.0)
        criteria = _mapping(rate["rateIncreaseCriteria"], "rateIncreaseCriteria")
        _keys(criteria, "rateIncreaseCriteria", {"numberOfNotifiedThings", "numberOfSucceededThings"})
        if len(criteria) != 1:
            raise ConfigError("rateIncreaseCriteria needs one of numberOfNotifiedThings, numberOfSucceededThings")
        for name, value in criteria.items():
            _int(value, f"rateIncreaseCriteria.{name}", 1)


def _check_abort(abort: Mapping[str, Any]) -> None:
    abort = _mapping(abort, "abort")
    _keys(abort, "abort", {"criteriaList"}, {"criteriaList"})
    criteria = abort["criteriaList"]
    if not isinstance(criteria, list | tuple) or not criteria:
        raise ConfigError("abort.criteriaList needs at least one criterion")
    for index, raw in enumerate(criteria):
        where = f"abort.criteriaList[{index}]"
        criterion = _mapping(raw, where)
        _keys(criterion, where, _ABORT_KEYS, _ABORT_KEYS)
        if criterion["failureType"] not in FAILURE_TYPES:
            raise ConfigError(f"{where}.failureType must be one of {', '.join(FAILURE_TYPES)}")
        if criterion["action"] != "CANCEL":
            raise ConfigError(f"{where}.action must be CANCEL (the only abort action AWS IoT has)")
        _number(criterion["thresholdPercentage"], f"{where}.thresholdPercentage", 0.0, 100.0)
        _int(criterion["minNumberOfExecutedThings"], f"{where}.minNumberOfExecutedThings", 1)


def _check_timeout(timeout: Mapping[str, Any]) -> None:
    timeout = _mapping(timeout, "timeout")
    _keys(timeout, "timeout", {"inProgressTimeoutInMinutes"}, {"inProgressTimeoutInMinutes"})
    _int(timeout["inProgressTimeoutInMinutes"], "timeout.inProgressTimeoutInMinutes", 1, 10080)


def job_document(
    model_name: str, version: str, bucket: str, key: str, sha256: str, size: int, signature: str | None
) -> dict[str, Any]:
    """The OTA job document: the seed's five string fields, then `sha256`, `size` and `signature` if signed.

    Checked with the device's own parser, so a document a device would REJECT is never sent.
    """
    document: dict[str, Any] = {
        "type": JOB_TYPE,
        "model_name": model_name,
        "model_version": version,
        "model_package_bucket": bucket,
        "model_package_key": key,
        "sha256": sha256,
        "size": size,
    }
    if signature is not None:
        document["signature"] = signature
    parse_job_document(document)
    return document


def job_id_for(model_name: str, version: str) -> str:
    """`<model>-<version with . -> ->-<8 hex>`: the device's identifier plus a suffix, so a redeploy is a new job."""
    return f"{model_name}-{version.replace('.', '-')}-{uuid.uuid4().hex[:8]}"


def deploy(
    jobs: JobsControl,
    *,
    model_name: str,
    version: str,
    bucket: str,
    key: str,
    sha256: str,
    size: int,
    signature: str | None,
    targets: list[str],
    config: DeploymentConfig,
    job_id: str | None = None,
) -> str:
    """Create the IoT job that installs the package at `s3://<bucket>/<key>` on `targets`; returns its id.

    `targets` are thing or thing-group ARNs. The job document is checked first (`JobDocumentError`);
    CreateJob's failures are `JobsError` with the AWS error code.
    """
    if not targets:
        raise ConfigError("a deployment needs at least one target (a thing or thing-group ARN)")
    document = job_document(model_name, version, bucket, key, sha256, size, signature)
    spec = JobSpec(
        job_id=job_id or job_id_for(model_name, version),
        targets=list(targets),
        document=document,
        target_selection=config.target_selection,
        description=f"edgesim: deploy {model_name} {version} ({config.variant})",
        rollout=config.rollout,
        abort=config.abort,
        timeout=config.timeout,
    )
    jobs.create_job(spec)
    return spec.job_id


def deploy_report(
    jobs: JobsControl,
    report: PackageReport,
    *,
    targets: list[str],
    config: DeploymentConfig,
    job_id: str | None = None,
) -> str:
    """Deploy the uploaded package of `config.variant` from `report` (see `upload_packages`)."""
    variant = report.variant(config.variant)
    if variant.key is None or report.bucket is None:
        raise ConfigError(f"{variant.archive} is not uploaded yet: upload the packages before deploying them")
    return deploy(
        jobs,
        model_name=report.name,
        version=report.version,
        bucket=report.bucket,
        key=variant.key,
        sha256=variant.sha256,
        size=variant.size_bytes,
        signature=variant.signature,
        targets=targets,
        config=config,
        job_id=job_id,
    )
