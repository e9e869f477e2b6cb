"""The four device operations of the IoT Jobs data plane (reference/iot-jobs-mqtt.md §1).

Each takes already type-checked values (the protocol layer checks JSON types), enforces the value
rules, and returns an `Outcome` whose reply is the accepted payload without `clientToken`; a
refusal raises `RequestRejected` and changes nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from simulators.iot_jobs.configs import MAX_MINUTES
from simulators.iot_jobs.payloads import document_for_device, get_pending_payload, job_execution
from simulators.iot_jobs.records import (
    DEVICE_STATUSES,
    IN_PROGRESS,
    QUEUED,
    TERMINAL,
    Execution,
    Outcome,
    RequestRejected,
)
from simulators.iot_jobs.state import JobsState

DETAILS_KEY = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
MAX_DETAILS = 10
MAX_DETAILS_VALUE = 1024
NEXT = "$next"


def check_status_details(details: Mapping[str, Any]) -> dict[str, str]:
    """§2: at most 10 pairs; key 1-128 of [a-zA-Z0-9:_-]; value 1-1024 chars, no \\p{C} characters."""
    if len(details) > MAX_DETAILS:
        raise RequestRejected("InvalidRequest", f"statusDetails has {len(details)} entries, at most {MAX_DETAILS}")
    for key, value in details.items():
        if not isinstance(key, str) or not DETAILS_KEY.fullmatch(key):
            raise RequestRejected("InvalidRequest", f"statusDetails key {key!r} must be 1-128 of [a-zA-Z0-9:_-]")
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_DETAILS_VALUE:
            raise RequestRejected("InvalidRequest", f"statusDetails[{key!r}] must be a string of 1-1024 characters")
        if any(unicodedata.category(ch).startswith("C") for ch in value):
            raise RequestRejected("InvalidRequest", f"statusDetails[{key!r}] contains control characters")
    return dict(details)


def check_step_timeout(minutes: int | None, *, allow_discard: bool) -> None:
    """1-10080 minutes, or -1 (discard the step timer) on update only (§1.2, §1.4)."""
    if minutes is None or 1 <= minutes <= MAX_MINUTES or (allow_discard and minutes == -1):
        return
    allowed = "1-10080 or -1" if allow_discard else "1-10080"
    raise RequestRejected("InvalidRequest", f"stepTimeoutInMinutes must be {allowed}, got {minutes}")


class DeviceOperations(JobsState):
    """GetPendingJobExecutions, StartNextPendingJobExecution, DescribeJobExecution, UpdateJobExecution."""

    def get_pending(self, thing: str) -> Outcome:
        """§1.1: both arrays always present; an unknown thing simply has nothing pending."""
        self.begin()
        return self.finish(get_pending_payload(self.pending(thing), self.now_s(), self.behaviour.list_limit))

    def start_next(
        self, thing: str, *, status_details: Mapping[str, Any] | None = None, step_timeout: int | None = None
    ) -> Outcome:
        """§1.2: the head; QUEUED -> IN_PROGRESS (no notification), IN_PROGRESS returned as is."""
        check_step_timeout(step_timeout, allow_discard=False)
        details = check_status_details(status_details) if status_details is not None else None
        self.begin()
        pending = self.pending(thing)
        reply: dict[str, Any] = {}
        if pending:
            head = pending[0]
            if head.status == QUEUED:
                if details is not None:
                    head.status_details = details
                self._transition(head, IN_PROGRESS, step_minutes=step_timeout)
            reply["execution"] = self._execution_payload(head, include_document=True)
        reply["timestamp"] = self.now_s()
        return self.finish(reply)

    def describe(
        self, thing: str, job_id: str, *, execution_number: int | None = None, include_document: bool = True
    ) -> Outcome:
        """§1.3: read-only; `$next` is the head (its executionNumber is ignored) or no `execution`."""
        self.begin()
        reply: dict[str, Any] = {}
        if job_id == NEXT:
            pending = self.pending(thing)
            execution = pending[0] if pending else None
        else:
            execution = self._existing(thing, job_id, execution_number)
            if self.behaviour.terminal_state_reached and execution.status in TERMINAL:
                raise RequestRejected("TerminalStateReached", f"job execution {job_id} is {execution.status}")
        if execution is not None:
            reply["execution"] = self._execution_payload(execution, include_document=include_document)
        reply["timestamp"] = self.now_s()
        return self.finish(reply)

    def update(
        self,
        thing: str,
        job_id: str,
        *,
        status: str | None,
        status_details: Mapping[str, Any] | None = None,
        expected_version: int | None = None,
        execution_number: int | None = None,
        include_state: bool = False,
        include_document: bool = False,
        step_timeout: int | None = None,
    ) -> Outcome:
        """§1.4; checks in order: fields, existence, expectedVersion, transition."""
        if status not in DEVICE_STATUSES:
            raise RequestRejected("InvalidRequest", f"status must be one of {sorted(DEVICE_STATUSES)}, got {status!r}")
        details = check_status_details(status_details) if status_details is not None else None
        check_step_timeout(step_timeout, allow_discard=True)
        if job_id == NEXT:
            raise RequestRejected("InvalidRequest", "$next cannot be updated; name the jobId")
        execution = self._existing(thing, job_id, execution_number)
        if expected_version is not None and expected_version != execution.version_number:
            raise RequestRejected(
                "VersionMismatch",
                f"expected version {expected_version}, current version {execution.version_number}",
                execution.state(),
            )
        if execution.status in TERMINAL:
            raise RequestRejected(
                "InvalidStateTransition",
                f"job execution {job_id} is {execution.status}; it cannot become {status}",
                execution.state(),
            )
        self.begin()
        if details is not None:
            execution.status_details = details
        self._transition(execution, status, step_minutes=step_timeout)
        reply: dict[str, Any] = {}
        if include_state:
            reply["executionState"] = execution.state()
        if include_document:
            reply["jobDocument"] = document_for_device(self.jobs[job_id], self.signer)
        reply["timestamp"] = self.now_s()
        return self.finish(reply)

    def _existing(self, thing: str, job_id: str, execution_number: int | None) -> Execution:
        execution = self.find(job_id, thing, execution_number)
        if execution is None:
            number = "" if execution_number is None else f" number {execution_number}"
            raise RequestRejected("ResourceNotFound", f"no execution{number} of job {job_id} for thing {thing}")
        return execution

    def _execution_payload(self, execution: Execution, *, include_document: bool) -> dict[str, Any]:
        job = self.jobs[execution.job_id]
        return job_execution(execution, job, self.now(), self.behaviour, self.signer, include_document=include_document)
