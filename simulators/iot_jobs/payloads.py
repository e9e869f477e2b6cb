"""The JSON shapes devices see (reference/iot-jobs-mqtt.md §2 and §5), built from the records.

Every time value is an integer of epoch seconds; optional fields are omitted, never null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from simulators.iot_jobs.configs import Signer, substitute
from simulators.iot_jobs.records import IN_PROGRESS, QUEUED, TERMINAL, Behaviour, Execution, Job


def document_for_device(job: Job, signer: Signer | None) -> dict[str, Any]:
    """The job document as a JSON object, presigned URL placeholders replaced when a signer is set."""
    if signer is None:
        return dict(job.document)
    result: dict[str, Any] = substitute(job.document, signer)
    return result


def seconds_before_timed_out(execution: Execution, now: float) -> int | None:
    """approximateSecondsBeforeTimedOut: only while a timer runs on a non-terminal execution."""
    deadline = execution.deadline
    if deadline is None or execution.status in TERMINAL:
        return None
    return max(0, math.ceil(deadline - now))


def job_execution(
    execution: Execution,
    job: Job,
    now: float,
    behaviour: Behaviour,
    signer: Signer | None,
    *,
    include_document: bool = True,
) -> dict[str, Any]:
    """JobExecution (§2): no thingName unless the behaviour asks; statusDetails omitted while empty."""
    out: dict[str, Any] = {"jobId": execution.job_id}
    if behaviour.include_thing_name:
        out["thingName"] = execution.thing_name
    if include_document:
        out["jobDocument"] = document_for_device(job, signer)
    out["status"] = execution.status
    if execution.status_details:
        out["statusDetails"] = dict(execution.status_details)
    out["queuedAt"] = execution.queued_at
    if execution.started_at is not None:
        out["startedAt"] = execution.started_at
    out["lastUpdatedAt"] = execution.last_updated_at
    remaining = seconds_before_timed_out(execution, now)
    if remaining is not None:
        out["approximateSecondsBeforeTimedOut"] = remaining
    out["versionNumber"] = execution.version_number
    out["executionNumber"] = execution.execution_number
    return out


def summary(execution: Execution) -> dict[str, Any]:
    """JobExecutionSummary (§2): no status, no document."""
    out: dict[str, Any] = {"jobId": execution.job_id, "queuedAt": execution.queued_at}
    if execution.started_at is not None:
        out["startedAt"] = execution.started_at
    out["lastUpdatedAt"] = execution.last_updated_at
    out["executionNumber"] = execution.execution_number
    out["versionNumber"] = execution.version_number
    return out


def pending_lists(pending: Sequence[Execution], limit: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(IN_PROGRESS summaries, QUEUED summaries) of the first `limit` pending executions."""
    shown = pending[:limit]
    in_progress = [summary(e) for e in shown if e.status == IN_PROGRESS]
    queued = [summary(e) for e in shown if e.status == QUEUED]
    return in_progress, queued


def notify_payload(pending: Sequence[Execution], now: int, limit: int) -> dict[str, Any]:
    """ListNotification (§5.1): a status key only when it has entries; `"jobs": {}` when none."""
    in_progress, queued = pending_lists(pending, limit)
    jobs: dict[str, Any] = {}
    if in_progress:
        jobs[IN_PROGRESS] = in_progress
    if queued:
        jobs[QUEUED] = queued
    return {"timestamp": now, "jobs": jobs}


def get_pending_payload(pending: Sequence[Execution], now: int, limit: int) -> dict[str, Any]:
    """GetPendingJobExecutions accepted (§1.1): both arrays always present."""
    in_progress, queued = pending_lists(pending, limit)
    return {"inProgressJobs": in_progress, "queuedJobs": queued, "timestamp": now}
