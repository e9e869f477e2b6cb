"""moto 5.2.5's IoT job objects, read and written by `MotoJobsBridge` (moto_bridge.py).

moto keeps a job as a `moto.iot.models.FakeJob` in `backend.jobs[job_id]` and one
`FakeJobExecution` per `backend.job_executions[(job_id, thing_name)]`; its responses serialise
their attributes as they are (a None attribute is left out of the response). This module only
reads and sets those attributes and builds new objects with the public constructors; it never
replaces moto code.

What moto can represent: an execution's status, statusDetails, versionNumber, executionNumber,
forceCanceled, queuedAt / startedAt / lastUpdatedAt, approximateSecondsBeforeTimedOut; a job's
status, forceCanceled, comment, reasonCode, lastUpdatedAt, completedAt and jobProcessDetails.
What it cannot: one execution per (job, thing), so only the newest attempt of a retried execution
is visible (DescribeJobExecution of an older executionNumber answers ResourceNotFound); no
`retryAttempt` in execution summaries (moto's summary has no such field); the seconds before a
timeout are as of the last write, they do not count down.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from simulators.iot_jobs.records import ExecutionView
from system.errors import JobsError
from system.ports import JobSpec

K = TypeVar("K")
V = TypeVar("V")


def snapshot(mapping: Mapping[K, V]) -> list[tuple[K, V]]:
    """The items of a dict moto's request threads may be changing (retried if it changed mid-copy)."""
    for _ in range(5):
        try:
            return list(mapping.items())
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return list(dict(mapping).items())


def moto_time(seconds: float) -> datetime:
    """Epoch seconds as moto keeps times: a naive UTC datetime (moto.core.utils.utcnow)."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).replace(tzinfo=None)


def _naive(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


@dataclass(frozen=True)
class ExecutionFields:
    """What moto shows of one execution, as the data plane last reported it."""

    status: str
    execution_number: int
    version_number: int
    queued_at: datetime
    last_updated_at: datetime
    started_at: datetime | None = None
    force_canceled: bool = False
    status_details: dict[str, str] = field(default_factory=dict)
    seconds_before_timed_out: int | None = None

    @classmethod
    def from_view(cls, view: ExecutionView, now: float) -> ExecutionFields:
        """From a StateChange's execution; `now` (the plane's clock) dates the timeout countdown."""
        remaining = None
        if view.timeout_at is not None and view.status in ("QUEUED", "IN_PROGRESS"):
            remaining = max(0, int(view.timeout_at - now))
        return cls(
            status=view.status,
            execution_number=view.execution_number,
            version_number=view.version_number,
            queued_at=moto_time(view.queued_at),
            last_updated_at=moto_time(view.last_updated_at),
            started_at=moto_time(view.started_at) if view.started_at is not None else None,
            force_canceled=view.force_canceled,
            status_details=dict(view.status_details),
            seconds_before_timed_out=remaining,
        )

    @classmethod
    def from_description(cls, execution: Mapping[str, Any]) -> ExecutionFields:
        """From the plane's DescribeJobExecution `execution` (boto3's shape)."""
        queued = _naive(execution.get("queuedAt")) or moto_time(0)
        return cls(
            status=str(execution["status"]),
            execution_number=int(execution["executionNumber"]),
            version_number=int(execution["versionNumber"]),
            queued_at=queued,
            last_updated_at=_naive(execution.get("lastUpdatedAt")) or queued,
            started_at=_naive(execution.get("startedAt")),
            force_canceled=bool(execution.get("forceCanceled", False)),
            status_details=dict(execution.get("statusDetails", {}).get("detailsMap", {})),
            seconds_before_timed_out=execution.get("approximateSecondsBeforeTimedOut"),
        )


def new_execution(job_id: str, thing_arn: str, fields: ExecutionFields) -> Any:
    """A moto `FakeJobExecution` showing `fields`."""
    from moto.iot.models import FakeJobExecution

    execution = FakeJobExecution(job_id, thing_arn)
    apply_execution(execution, fields)
    return execution


def apply_execution(execution: Any, fields: ExecutionFields) -> None:
    """Set a `FakeJobExecution`'s attributes (the ones its to_get_dict/to_dict serialise)."""
    execution.status = fields.status
    execution.force_canceled = fields.force_canceled
    execution.status_details_map = dict(fields.status_details)
    execution.queued_at = fields.queued_at
    execution.started_at = fields.started_at
    execution.last_updated_at = fields.last_updated_at
    execution.execution_number = fields.execution_number
    execution.version_number = fields.version_number
    execution.approximate_seconds_before_time_out = fields.seconds_before_timed_out


def shows(execution: Any, fields: ExecutionFields) -> bool:
    """Whether a moto execution still shows exactly what was written (no boto3 call changed it)."""
    return bool(
        execution.status == fields.status
        and execution.force_canceled == fields.force_canceled
        and execution.execution_number == fields.execution_number
        and execution.version_number == fields.version_number
    )


def apply_job(job: Any, described: Mapping[str, Any]) -> None:
    """Set a `FakeJob`'s state from the plane's DescribeJob `job` (status, counts, dates, cancel)."""
    job.status = described["status"]
    job.force = bool(described.get("forceCanceled", False))
    job.comment = described.get("comment")
    job.reason_code = described.get("reasonCode")
    job.last_updated_at = _naive(described.get("lastUpdatedAt")) or job.last_updated_at
    job.completed_at = _naive(described.get("completedAt"))
    job.job_process_details = dict(described.get("jobProcessDetails", {}))


def new_job(described: Mapping[str, Any], document: str, *, account_id: str, region: str) -> Any:
    """A moto `FakeJob` for a job created in the plane directly (not through boto3)."""
    from moto.iot.models import FakeJob

    job = FakeJob(
        job_id=described["jobId"],
        targets=list(described.get("targets", [])),
        document_source=None,  # type: ignore[arg-type]  # moto stores None when there is none
        document=document,
        description=described.get("description", ""),
        presigned_url_config=None,  # type: ignore[arg-type]
        target_selection=described.get("targetSelection", "SNAPSHOT"),
        job_executions_rollout_config=described.get("jobExecutionsRolloutConfig"),  # type: ignore[arg-type]
        document_parameters=None,  # type: ignore[arg-type]
        abort_config=described.get("abortConfig"),  # type: ignore[arg-type]
        job_execution_retry_config=described.get("jobExecutionsRetryConfig"),  # type: ignore[arg-type]
        scheduling_config=None,  # type: ignore[arg-type]
        timeout_config=described.get("timeoutConfig"),  # type: ignore[arg-type]
        account_id=account_id,
        region_name=region,
    )
    job.created_at = _naive(described.get("createdAt")) or job.created_at
    apply_job(job, described)
    return job


def spec_of(job: Any) -> JobSpec:
    """The JobSpec of a job created through boto3, from what moto stored of the CreateJob request.

    moto keeps each config exactly as the request carried it (boto3's names), and the document as
    the JSON string. A job given by `documentSource` (an S3 URL) is refused: moto never fetches it.
    """
    if not job.document:
        raise JobsError(
            f"job {job.job_id}: only an inline `document` is supported, not documentSource {job.document_source!r}",
            code="InvalidRequestException",
        )
    try:
        document = json.loads(job.document)
    except ValueError as exc:
        raise JobsError(f"job {job.job_id}: the document is not JSON: {exc}", "InvalidRequestException") from exc
    return JobSpec(
        job_id=job.job_id,
        targets=list(job.targets or []),
        document=document,
        target_selection=job.target_selection or "SNAPSHOT",
        description=job.description or "",
        rollout=job.job_executions_rollout_config or None,
        abort=job.abort_config or None,
        timeout=job.timeout_config or None,
        retry=job.job_execution_retry_config or None,
    )
