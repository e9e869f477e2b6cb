"""Control-plane views in boto3's response shapes (DescribeJob, ListJobExecutionsForJob, ...).

Dates are timezone-aware datetimes, as boto3 returns them; optional fields are omitted when unset.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from simulators.iot_jobs.payloads import seconds_before_timed_out
from simulators.iot_jobs.records import (
    CANCELED,
    FAILED,
    IN_PROGRESS,
    QUEUED,
    REJECTED,
    REMOVED,
    SUCCEEDED,
    TIMED_OUT,
    Execution,
    Job,
)

PROCESS_DETAILS = {
    "numberOfCanceledThings": CANCELED,
    "numberOfSucceededThings": SUCCEEDED,
    "numberOfFailedThings": FAILED,
    "numberOfRejectedThings": REJECTED,
    "numberOfQueuedThings": QUEUED,
    "numberOfInProgressThings": IN_PROGRESS,
    "numberOfRemovedThings": REMOVED,
    "numberOfTimedOutThings": TIMED_OUT,
}


def when(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC)


def describe_job(job: Job) -> dict[str, Any]:
    """DescribeJob: the job with its configs as given and jobProcessDetails (one count per execution)."""
    out: dict[str, Any] = {
        "jobArn": job.arn,
        "jobId": job.job_id,
        "targetSelection": job.target_selection,
        "status": job.status,
        "forceCanceled": job.force_canceled,
        "targets": list(job.targets),
        "description": job.description,
        "createdAt": when(job.created_at),
        "lastUpdatedAt": when(job.last_updated_at),
        "jobProcessDetails": {name: job.counts[status] for name, status in PROCESS_DETAILS.items()},
        "isConcurrent": False,
    }
    if job.reason_code is not None:
        out["reasonCode"] = job.reason_code
    if job.comment is not None:
        out["comment"] = job.comment
    if job.completed_at is not None:
        out["completedAt"] = when(job.completed_at)
    if job.rollout_queue:
        out["jobProcessDetails"]["processingTargets"] = list(job.targets)
    spec = job.spec
    if spec is not None:
        for key, value in (
            ("jobExecutionsRolloutConfig", spec.rollout),
            ("abortConfig", spec.abort),
            ("timeoutConfig", spec.timeout),
            ("jobExecutionsRetryConfig", spec.retry),
        ):
            if value is not None:
                out[key] = json.loads(json.dumps(value))
    return {"job": out}


def execution_summary(execution: Execution) -> dict[str, Any]:
    """JobExecutionSummary of ListJobExecutionsForJob/ForThing."""
    out: dict[str, Any] = {"status": execution.status, "queuedAt": when(execution.queued_at)}
    if execution.started_at is not None:
        out["startedAt"] = when(execution.started_at)
    out["lastUpdatedAt"] = when(execution.last_updated_at)
    out["executionNumber"] = execution.execution_number
    out["retryAttempt"] = execution.retry_attempt
    return out


def describe_execution(execution: Execution, thing_arn: str, now: float) -> dict[str, Any]:
    """DescribeJobExecution's `execution`."""
    out: dict[str, Any] = {
        "jobId": execution.job_id,
        "status": execution.status,
        "forceCanceled": execution.force_canceled,
        "statusDetails": {"detailsMap": dict(execution.status_details)},
        "thingArn": thing_arn,
        "queuedAt": when(execution.queued_at),
    }
    if execution.started_at is not None:
        out["startedAt"] = when(execution.started_at)
    out["lastUpdatedAt"] = when(execution.last_updated_at)
    out["executionNumber"] = execution.execution_number
    out["versionNumber"] = execution.version_number
    remaining = seconds_before_timed_out(execution, now)
    if remaining is not None:
        out["approximateSecondsBeforeTimedOut"] = remaining
    return out
