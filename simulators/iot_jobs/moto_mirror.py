"""MotoMirror: the plane -> moto half of `MotoJobsBridge` (moto_bridge.py).

As the data plane's observer it writes every StateChange into moto's IoT objects
(moto_objects.py says which fields moto can show): the newest attempt of each (job, thing)
execution, and the job's status, counts and dates. It keeps the records the bridge's sync compares
moto against (what it wrote, object by object), under one lock that guards them and every change
it makes to moto's backend. The plane is never called while that lock is held.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from simulators.iot_jobs.dataplane import JobsDataPlane
from simulators.iot_jobs.moto_objects import (
    ExecutionFields,
    apply_execution,
    apply_job,
    new_execution,
    new_job,
    shows,
    snapshot,
)
from simulators.iot_jobs.records import JOB_IN_PROGRESS, StateChange
from system.errors import JobsError

log = logging.getLogger(__name__)

MAX_ERRORS = 1000


@dataclass
class Written:
    """One execution as the mirror put it into moto."""

    obj: Any  # the moto FakeJobExecution the mirror put in place
    fields: ExecutionFields  # what it wrote into it last


@dataclass
class BridgedJob:
    """A job both sides know: moto's object and what the mirror wrote of it."""

    job: Any  # the moto FakeJob
    status: str  # the status moto showed when the bridge last looked or wrote
    force: bool = False  # likewise its forceCanceled (a forced CancelJob of a CANCELED job)
    executions: dict[str, Written] = field(default_factory=dict)  # thing -> newest attempt
    refused: bool = False  # the plane refused the job: moto shows it CANCELED, nothing else


class MotoMirror:
    """Writes the plane's state into moto's IoT backend of `account_id` and `region`."""

    def __init__(self, plane: JobsDataPlane, *, account_id: str, region: str) -> None:
        self.plane = plane
        self.account_id = account_id
        self.region = region
        self.lock = threading.RLock()  # moto's backend objects and `jobs`
        self.jobs: dict[str, BridgedJob] = {}
        self.errors: list[str] = []  # what could not be applied (each also logged)

    def backend(self) -> Any:
        """moto's IoT backend, looked up each time: a moto reset replaces it."""
        from moto.iot.models import iot_backends

        return iot_backends[self.account_id][self.region]

    def thing_arn(self, thing: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thing/{thing}"

    def report(self, message: str) -> None:
        log.warning("moto jobs bridge: %s", message)
        with self.lock:
            if len(self.errors) >= MAX_ERRORS:
                del self.errors[: MAX_ERRORS // 2]
            self.errors.append(message)

    def observe(self, change: StateChange) -> None:
        """The plane's observer: write one change into moto."""
        try:
            if change.thing_name is None or change.execution is None:
                self._observe_job(change)
            else:
                self._observe_execution(change)
        except Exception as exc:  # never break the plane's delivery loop; keep the error visible
            log.exception("moto jobs bridge: writing a change into moto failed")
            self.report(f"writing {change.job_id} into moto failed: {exc!r}")

    def _observe_job(self, change: StateChange) -> None:
        if change.job_status == "DELETED":
            with self.lock:
                bridged = self.jobs.pop(change.job_id, None)
                if bridged is None:
                    return
                backend = self.backend()
                if backend.jobs.get(change.job_id) is bridged.job:
                    del backend.jobs[change.job_id]
                for key in [k for k, _ in snapshot(backend.job_executions) if k[0] == change.job_id]:
                    backend.job_executions.pop(key, None)
            return
        if change.job_status == JOB_IN_PROGRESS:  # only a creation reports a job IN_PROGRESS
            self._adopt(change.job_id)
        self.refresh_job(change.job_id)

    def _adopt(self, job_id: str) -> None:
        """A job the plane created without boto3: give it a moto job (or adopt moto's of that id)."""
        with self.lock:
            if job_id in self.jobs:
                return
        try:
            described = self.plane.describe_job(job_id)["job"]
            document = self.plane.get_job_document(job_id)["document"]
        except JobsError:
            return  # deleted meanwhile
        with self.lock:
            if job_id in self.jobs:
                return
            backend = self.backend()
            job = backend.jobs.get(job_id)
            if job is None:
                job = new_job(described, document, account_id=self.account_id, region=self.region)
                backend.jobs[job_id] = job
            self.jobs[job_id] = BridgedJob(job, job.status, bool(job.force))

    def _observe_execution(self, change: StateChange) -> None:
        view, thing = change.execution, change.thing_name
        assert view is not None and thing is not None
        fields = ExecutionFields.from_view(view, self.plane.clock.now())
        refill = False
        with self.lock:
            bridged = self.jobs.get(change.job_id)
            if bridged is None or bridged.refused:
                return
            backend = self.backend()
            key = (change.job_id, thing)
            written = bridged.executions.get(thing)
            current = backend.job_executions.get(key)
            if change.deleted:
                if written is not None and written.fields.execution_number == view.execution_number:
                    del bridged.executions[thing]
                    if current is written.obj:
                        del backend.job_executions[key]
                    refill = True  # an older attempt may remain
            elif written is None or view.execution_number > written.fields.execution_number:
                execution = new_execution(change.job_id, self.thing_arn(thing), fields)
                backend.job_executions[key] = execution
                bridged.executions[thing] = Written(execution, fields)
            elif (
                view.execution_number == written.fields.execution_number
                and view.version_number >= written.fields.version_number
                and current is written.obj
                and shows(current, written.fields)  # else a boto3 change waits for the next sync
            ):
                apply_execution(current, fields)
                written.fields = fields
        if refill:
            self.restore_execution(change.job_id, thing)
        self.refresh_job(change.job_id)

    def restore_execution(self, job_id: str, thing: str) -> None:
        """Make moto show the plane's current state of one execution (or none)."""
        try:
            fields: ExecutionFields | None = ExecutionFields.from_description(
                self.plane.describe_job_execution(job_id, thing)["execution"]
            )
        except JobsError:
            fields = None
        with self.lock:
            bridged = self.jobs.get(job_id)
            if bridged is None or bridged.refused:
                return
            backend = self.backend()
            key = (job_id, thing)
            if fields is None:
                bridged.executions.pop(thing, None)
                backend.job_executions.pop(key, None)
                return
            written = bridged.executions.get(thing)
            if written is not None and backend.job_executions.get(key) is written.obj:
                apply_execution(written.obj, fields)
                written.fields = fields
            else:
                execution = new_execution(job_id, self.thing_arn(thing), fields)
                backend.job_executions[key] = execution
                bridged.executions[thing] = Written(execution, fields)

    def refresh_job(self, job_id: str, *, force: bool = False) -> None:
        """Copy the plane's job status, counts and dates into moto's job.

        Without `force`, a job whose status boto3 changed since the last write is left for the next
        sync to handle (a CancelJob must not be overwritten before the plane has seen it).
        """
        try:
            described = self.plane.describe_job(job_id)["job"]
        except JobsError:
            return
        with self.lock:
            bridged = self.jobs.get(job_id)
            if bridged is None or bridged.refused or self.backend().jobs.get(job_id) is not bridged.job:
                return
            if not force and (bridged.job.status != bridged.status or bool(bridged.job.force) != bridged.force):
                return
            apply_job(bridged.job, described)
            bridged.status, bridged.force = bridged.job.status, bool(bridged.job.force)
