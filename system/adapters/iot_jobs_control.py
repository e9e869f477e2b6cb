"""IotJobsControl: the JobsControl port on the AWS IoT control plane (CreateJob & co.), through boto3.

Each method returns the structure boto3 returns for its operation, without `ResponseMetadata`:
CreateJob's response, DescribeJob's `job`, ListJobExecutionsForJob's `executionSummaries` (all
pages), DescribeJobExecution's `execution`. Every failure is a `JobsError` whose `code` is the
AWS error code (`ResourceNotFoundException`, `InvalidStateTransitionException`...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NoReturn

from botocore.exceptions import BotoCoreError, ClientError

from system.errors import JobsError
from system.ports import JobSpec

# The code AWS IoT gives its own internal failures (HTTP 500).
INTERNAL_FAILURE = "InternalFailureException"


class IotJobsControl:
    """Jobs and their executions: create, describe, list, cancel.

    `page_size` is ListJobExecutionsForJob's maxResults (AWS IoT caps it at 250).
    """

    def __init__(self, client: Any, *, page_size: int = 250) -> None:
        self.client = client
        self.page_size = page_size

    @staticmethod
    def _fail(operation: str, subject: str, exc: ClientError | BotoCoreError | KeyError) -> NoReturn:
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = f"IoT {operation} {subject} failed: {code} {error.get('Message', '')}".rstrip()
            raise JobsError(message, code) from exc
        if isinstance(exc, KeyError):
            # moto 5.2.5 run in-process lets its backend's KeyError through boto3 for an unknown
            # job or execution (the same bug is an HTTP 500 in server mode); AWS itself never
            # raises one. Report it as the internal failure it is rather than guess a code.
            message = f"IoT {operation} {subject} failed inside the service: KeyError {exc}"
            raise JobsError(message, INTERNAL_FAILURE) from exc
        raise JobsError(f"IoT {operation} {subject} failed: {exc}") from exc

    def create_job(self, spec: JobSpec) -> dict[str, Any]:
        request: dict[str, Any] = {
            "jobId": spec.job_id,
            "targets": list(spec.targets),
            "document": json.dumps(dict(spec.document), separators=(",", ":")),
            "targetSelection": spec.target_selection,
        }
        optional = {
            "description": spec.description or None,
            "jobExecutionsRolloutConfig": spec.rollout,
            "abortConfig": spec.abort,
            "timeoutConfig": spec.timeout,
            "jobExecutionsRetryConfig": spec.retry,
        }
        request.update({name: _plain(value) for name, value in optional.items() if value is not None})
        try:
            response = self.client.create_job(**request)
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("CreateJob", spec.job_id, exc)
        return _without_metadata(response)

    def describe_job(self, job_id: str) -> dict[str, Any]:
        try:
            response = self.client.describe_job(jobId=job_id)
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("DescribeJob", job_id, exc)
        return dict(response["job"])

    def list_job_executions_for_job(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        request: dict[str, Any] = {"jobId": job_id, "PaginationConfig": {"PageSize": self.page_size}}
        if status is not None:
            request["status"] = status
        try:
            pages = self.client.get_paginator("list_job_executions_for_job").paginate(**request)
            return [dict(summary) for page in pages for summary in page.get("executionSummaries", [])]
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("ListJobExecutionsForJob", job_id, exc)

    def describe_job_execution(self, job_id: str, thing_name: str) -> dict[str, Any]:
        try:
            response = self.client.describe_job_execution(jobId=job_id, thingName=thing_name)
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("DescribeJobExecution", f"{job_id} on {thing_name}", exc)
        return dict(response["execution"])

    def cancel_job(self, job_id: str, *, force: bool = False, comment: str = "") -> None:
        request: dict[str, Any] = {"jobId": job_id, "force": force}
        if comment:
            request["comment"] = comment
        try:
            self.client.cancel_job(**request)
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("CancelJob", job_id, exc)

    def cancel_job_execution(self, job_id: str, thing_name: str, *, force: bool = False) -> None:
        try:
            self.client.cancel_job_execution(jobId=job_id, thingName=thing_name, force=force)
        except (ClientError, BotoCoreError, KeyError) as exc:
            self._fail("CancelJobExecution", f"{job_id} on {thing_name}", exc)


def _plain(value: Any) -> Any:
    """Mappings and sequences as plain dicts and lists (botocore's validator wants exactly those)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _without_metadata(response: Any) -> dict[str, Any]:
    return {key: value for key, value in dict(response).items() if key != "ResponseMetadata"}
