"""CreateJob input validation: targets, document, rollout, abort, timeout and retry configs.

Shapes and ranges are boto3's (botocore `iot` model) and reference/iot-jobs-mqtt.md §6. A refused
input raises `JobsError` with code `InvalidRequestException`, as the service does; unknown keys are
refused too, as boto3's parameter validation would.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from system.errors import JobsError
from system.ports import JobSpec

JOB_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
TARGET_ARN = re.compile(r"arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:(thing|thinggroup)/([a-zA-Z0-9:_-]{1,128})")
PRESIGNED = re.compile(r"\$\{aws:iot:s3-presigned-url:([^}]+)\}")
MAX_DOCUMENT_BYTES = 32768
MAX_PRESIGNED = 10
MAX_MINUTES = 10080
FAILURE_TYPES = ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
RETRYABLE_TYPES = ("FAILED", "TIMED_OUT", "ALL")

Signer = Callable[[str], str]
"""Turns an `s3://`/`https://` object URL of a `${aws:iot:s3-presigned-url:...}` placeholder into a URL."""


def invalid(message: str) -> JobsError:
    return JobsError(message, code="InvalidRequestException")


@dataclass(frozen=True)
class RolloutConfig:
    """jobExecutionsRolloutConfig; without one the service rolls out 1000 things a minute."""

    maximum_per_minute: int = 1000
    base_rate: int | None = None
    increment_factor: float = 1.0
    notified_step: int | None = None
    succeeded_step: int | None = None

    def rate(self, notified: int, succeeded: int) -> int:
        """Things to notify this minute: the base rate times the factor once per multiple reached."""
        if self.base_rate is None:
            return self.maximum_per_minute
        if self.notified_step is not None:
            steps = notified // self.notified_step
        else:
            steps = succeeded // (self.succeeded_step or 1)
        rate = float(self.base_rate)
        for _ in range(steps):
            if rate >= self.maximum_per_minute:
                break
            rate *= self.increment_factor
        return min(self.maximum_per_minute, int(rate + 1e-9))


@dataclass(frozen=True)
class AbortCriterion:
    failure_type: str
    threshold_percentage: float
    min_executed: int


@dataclass(frozen=True)
class RetryCriterion:
    failure_type: str
    retries: int


@dataclass(frozen=True)
class JobConfig:
    rollout: RolloutConfig = RolloutConfig()
    abort: tuple[AbortCriterion, ...] = ()
    in_progress_minutes: int | None = None
    retry: tuple[RetryCriterion, ...] = ()


def _mapping(value: Any, what: str, allowed: Collection[str], required: Collection[str] = ()) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid(f"{what} must be an object")
    unknown = set(value) - set(allowed)
    if unknown:
        raise invalid(f"{what}: unknown field(s) {sorted(unknown)}")
    missing = set(required) - set(value)
    if missing:
        raise invalid(f"{what}: missing {sorted(missing)}")
    return value


def _int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"{low}-{high}" if high is not None else f">= {low}"
        raise invalid(f"{what} must be an integer {bound}, got {value!r}")
    return value


def _number(value: Any, what: str, low: float, high: float, decimals: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(f"{what} must be a number")
    if not low <= value <= high:
        raise invalid(f"{what} must be within {low}-{high}, got {value}")
    if abs(round(value, decimals) - value) > 1e-9:
        raise invalid(f"{what} supports up to {decimals} digit(s) after the decimal point, got {value}")
    return float(value)


def parse_rollout(raw: Mapping[str, Any] | None) -> RolloutConfig:
    if raw is None:
        return RolloutConfig()
    raw = _mapping(raw, "jobExecutionsRolloutConfig", {"maximumPerMinute", "exponentialRate"})
    maximum = _int(raw.get("maximumPerMinute", 1000), "maximumPerMinute", 1, 1000)
    if "exponentialRate" not in raw:
        return RolloutConfig(maximum_per_minute=maximum)
    rate = _mapping(
        raw["exponentialRate"],
        "exponentialRate",
        {"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"},
        {"baseRatePerMinute", "incrementFactor", "rateIncreaseCriteria"},
    )
    criteria = _mapping(
        rate["rateIncreaseCriteria"], "rateIncreaseCriteria", {"numberOfNotifiedThings", "numberOfSucceededThings"}
    )
    if len(criteria) != 1:
        raise invalid("rateIncreaseCriteria needs exactly one of numberOfNotifiedThings, numberOfSucceededThings")
    ((name, step),) = criteria.items()
    step = _int(step, name, 1)
    return RolloutConfig(
        maximum_per_minute=maximum,
        base_rate=_int(rate["baseRatePerMinute"], "baseRatePerMinute", 1, 1000),
        increment_factor=_number(rate["incrementFactor"], "incrementFactor", 1.1, 5.0, 1),
        notified_step=step if name == "numberOfNotifiedThings" else None,
        succeeded_step=step if name == "numberOfSucceededThings" else None,
    )


def parse_abort(raw: Mapping[str, Any] | None) -> tuple[AbortCriterion, ...]:
    if raw is None:
        return ()
    raw = _mapping(raw, "abortConfig", {"criteriaList"}, {"criteriaList"})
    entries = raw["criteriaList"]
    if not isinstance(entries, list | tuple) or not entries:
        raise invalid("abortConfig.criteriaList needs at least one criterion")
    out = []
    for entry in entries:
        keys = {"failureType", "action", "thresholdPercentage", "minNumberOfExecutedThings"}
        entry = _mapping(entry, "abort criterion", keys, keys)
        if entry["action"] != "CANCEL":
            raise invalid(f"abort action must be CANCEL, got {entry['action']!r}")
        if entry["failureType"] not in FAILURE_TYPES:
            raise invalid(f"abort failureType must be one of {FAILURE_TYPES}, got {entry['failureType']!r}")
        out.append(
            AbortCriterion(
                failure_type=entry["failureType"],
                threshold_percentage=_number(entry["thresholdPercentage"], "thresholdPercentage", 0.0, 100.0, 2),
                min_executed=_int(entry["minNumberOfExecutedThings"], "minNumberOfExecutedThings", 1),
            )
        )
    return tuple(out)


def parse_timeout(raw: Mapping[str, Any] | None) -> int | None:
    if raw is None:
        return None
    raw = _mapping(raw, "timeoutConfig", {"inProgressTimeoutInMinutes"})
    if "inProgressTimeoutInMinutes" not in raw:
        return None
    return _int(raw["inProgressTimeoutInMinutes"], "inProgressTimeoutInMinutes", 1, MAX_MINUTES)


def parse_retry(raw: Mapping[str, Any] | None) -> tuple[RetryCriterion, ...]:
    if raw is None:
        return ()
    raw = _mapping(raw, "jobExecutionsRetryConfig", {"criteriaList"}, {"criteriaList"})
    entries = raw["criteriaList"]
    if not isinstance(entries, list | tuple) or not 1 <= len(entries) <= 2:
        raise invalid("jobExecutionsRetryConfig.criteriaList needs 1 or 2 criteria")
    out = []
    for entry in entries:
        keys = {"failureType", "numberOfRetries"}
        entry = _mapping(entry, "retry criterion", keys, keys)
        if entry["failureType"] not in RETRYABLE_TYPES:
            raise invalid(f"retry failureType must be one of {RETRYABLE_TYPES}, got {entry['failureType']!r}")
        out.append(RetryCriterion(entry["failureType"], _int(entry["numberOfRetries"], "numberOfRetries", 0, 10)))
    if len({c.failure_type for c in out}) != len(out):
        raise invalid("retry criteria must name different failure types")
    if sum(c.retries for c in out) > 10:
        raise invalid("at most 10 retries in total")
    return tuple(out)


def parse_config(spec: JobSpec) -> JobConfig:
    """Validate a JobSpec's configs; raises `JobsError(code="InvalidRequestException")`."""
    return JobConfig(
        rollout=parse_rollout(spec.rollout),
        abort=parse_abort(spec.abort),
        in_progress_minutes=parse_timeout(spec.timeout),
        retry=parse_retry(spec.retry),
    )


def parse_target(arn: str) -> tuple[str, str]:
    """`arn:aws:iot:<region>:<account>:thing/<name>` -> ("thing", name); thinggroup likewise."""
    match = TARGET_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise invalid(f"not a thing or thing-group ARN: {arn!r}")
    return match.group(1), match.group(2)


def validate_document(document: Any) -> dict[str, Any]:
    """A JSON object of at most 32768 bytes (compact UTF-8) with at most 10 presigned placeholders."""
    if not isinstance(document, Mapping):
        raise invalid("the job document must be a JSON object")
    try:
        text = json.dumps(dict(document), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise invalid(f"the job document is not JSON: {error}") from error
    if len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise invalid(f"the job document exceeds {MAX_DOCUMENT_BYTES} bytes")
    if len(PRESIGNED.findall(text)) > MAX_PRESIGNED:
        raise invalid(f"at most {MAX_PRESIGNED} presigned URL placeholders per document")
    result: dict[str, Any] = json.loads(text)
    return result


def substitute(document: Any, signer: Signer) -> Any:
    """The document with every `${aws:iot:s3-presigned-url:URL}` replaced by `signer(URL)`."""
    if isinstance(document, str):
        return PRESIGNED.sub(lambda m: signer(m.group(1)), document)
    if isinstance(document, dict):
        return {key: substitute(value, signer) for key, value in document.items()}
    if isinstance(document, list):
        return [substitute(value, signer) for value in document]
    return document
