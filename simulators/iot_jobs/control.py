"""Control-plane operations of the IoT Jobs simulator: registry, jobs, cancel, delete, the clock.

Errors are `JobsError` with the AWS exception name as `code` (InvalidRequestException,
ResourceNotFoundException, ResourceAlreadyExistsException, InvalidStateTransitionException,
VersionConflictException), as boto3 would raise them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from simulators.iot_jobs.configs import JOB_ID, THING_NAME, invalid, parse_config, parse_target, validate_document
from simulators.iot_jobs.device import check_status_details
from simulators.iot_jobs.records import (
    CANCELED,
    IN_PROGRESS,
    JOB_COMPLETED,
    JOB_IN_PROGRESS,
    QUEUED,
    REMOVED,
    Execution,
    Job,
    Outcome,
    RequestRejected,
)
from simulators.iot_jobs.state import ROLLOUT_PERIOD, JobsState
from system.errors import JobsError
from system.ports import JobSpec


def not_found(message: str) -> JobsError:
    return JobsError(message, code="ResourceNotFoundException")


def bad_state(message: str) -> JobsError:
    return JobsError(message, code="InvalidStateTransitionException")


class ControlOperations(JobsState):
    """Things, groups, CreateJob, CancelJob, CancelJobExecution, DeleteJob(Execution), clock ticks."""

    # -- registry ------------------------------------------------------------------------------

    def create_thing(self, thing: str) -> None:
        if not isinstance(thing, str) or not THING_NAME.fullmatch(thing):
            raise invalid(f"invalid thing name {thing!r}")
        self.things.setdefault(thing, None)

    def create_thing_group(self, group: str) -> None:
        if not isinstance(group, str) or not THING_NAME.fullmatch(group):
            raise invalid(f"invalid thing group name {group!r}")
        self.groups.setdefault(group, {})

    def add_thing_to_group(self, thing: str, group: str) -> Outcome:
        """Membership; a CONTINUOUS job targeting the group reaches the thing now, outside the rate."""
        self.create_thing(thing)
        self.create_thing_group(group)
        self.begin()
        members = self.groups[group]
        if thing in members:
            return self.finish()
        joining = [j for j in self._continuous_jobs(group) if not self.is_target(j, thing)]
        members[thing] = None
        for job in joining:
            latest = self.latest(job.job_id, thing)
            if latest is not None and latest.status in (QUEUED, IN_PROGRESS):
                continue
            if thing in job.rollout_queue:
                job.rollout_queue.remove(thing)
            self.retries_used.pop((job.job_id, thing), None)  # the retry count resets (§6)
            self._queue(job, thing)
            job.notified += 1
        return self.finish()

    def remove_thing_from_group(self, thing: str, group: str) -> Outcome:
        """A thing leaving every target of a CONTINUOUS job: its QUEUED execution becomes REMOVED."""
        self.begin()
        members = self.groups.get(group, {})
        if thing not in members:
            return self.finish()
        del members[thing]
        for job in self._continuous_jobs(group):
            if self.is_target(job, thing):
                continue
            if thing in job.rollout_queue:
                job.rollout_queue.remove(thing)
            latest = self.latest(job.job_id, thing)
            if latest is not None and latest.status == QUEUED:
                self._transition(latest, REMOVED)
        return self.finish()

    def _continuous_jobs(self, group: str) -> list[Job]:
        return [
            j for j in self.jobs.values() if j.continuous and j.status == JOB_IN_PROGRESS and group in j.target_groups
        ]

    # -- jobs ----------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec) -> Outcome:
        """CreateJob: validate, expand groups to member things, notify the first minute's batch."""
        if not isinstance(spec.job_id, str) or not JOB_ID.fullmatch(spec.job_id):
            raise invalid(f"invalid jobId {spec.job_id!r}: 1-64 of [a-zA-Z0-9_-]")
        if spec.job_id in self.jobs:
            raise JobsError(f"job {spec.job_id} already exists", code="ResourceAlreadyExistsException")
        if spec.target_selection not in ("SNAPSHOT", "CONTINUOUS"):
            raise invalid(f"targetSelection must be SNAPSHOT or CONTINUOUS, got {spec.target_selection!r}")
        if isinstance(spec.targets, str) or not spec.targets:
            raise invalid("targets must be a non-empty list of thing or thing-group ARNs")
        parsed = [parse_target(arn) for arn in spec.targets]
        document = validate_document(spec.document)
        config = parse_config(spec)
        now = self.now()
        job = Job(
            job_id=spec.job_id,
            arn=self.job_arn(spec.job_id),
            targets=tuple(spec.targets),
            target_things=tuple(name for kind, name in parsed if kind == "thing"),
            target_groups=tuple(name for kind, name in parsed if kind == "thinggroup"),
            document=document,
            target_selection=spec.target_selection,
            description=spec.description,
            config=config,
            created_at=now,
            last_updated_at=now,
            spec=spec,
        )
        for thing in job.target_things:
            self.create_thing(thing)
        for group in job.target_groups:
            self.create_thing_group(group)
        things = dict.fromkeys(job.target_things)
        for group in job.target_groups:
            things.update(self.groups[group])
        job.rollout_queue = deque(things)
        self.begin()
        self.jobs[job.job_id] = job
        self._record_job(job)
        job.next_tick_at = now
        self._tick(job)
        return self.finish(self._job_reply(job))

    def cancel_job(
        self, job_id: str, *, force: bool = False, comment: str | None = None, reason_code: str | None = None
    ) -> Outcome:
        """CancelJob: QUEUED -> CANCELED, with `force` IN_PROGRESS too; a COMPLETED job refuses."""
        job = self._job(job_id)
        if job.status == JOB_COMPLETED:
            raise bad_state(f"job {job_id} is COMPLETED and cannot be canceled")
        self.begin()
        self._cancel_job(job, force=force, reason_code=reason_code, comment=comment)
        return self.finish(self._job_reply(job))

    def cancel_job_execution(
        self,
        job_id: str,
        thing: str,
        *,
        force: bool = False,
        expected_version: int | None = None,
        status_details: Mapping[str, str] | None = None,
    ) -> Outcome:
        """CancelJobExecution: QUEUED, or IN_PROGRESS with `force`; terminal ones refuse."""
        self._job(job_id)
        execution = self._execution(job_id, thing, None)
        if execution.status not in (QUEUED, IN_PROGRESS) or (execution.status == IN_PROGRESS and not force):
            raise bad_state(f"execution of {job_id} on {thing} is {execution.status}; cannot cancel")
        if expected_version is not None and expected_version != execution.version_number:
            raise JobsError(
                f"expected version {expected_version}, current {execution.version_number}",
                code="VersionConflictException",
            )
        details = self._control_details(status_details)
        self.begin()
        if details is not None:
            execution.status_details = details
        execution.force_canceled = force and execution.status == IN_PROGRESS
        self._transition(execution, CANCELED)
        return self.finish()

    def delete_job_execution(self, job_id: str, thing: str, execution_number: int, *, force: bool = False) -> Outcome:
        """DeleteJobExecution: IN_PROGRESS needs `force`; the device then gets ResourceNotFound."""
        job = self._job(job_id)
        execution = self._execution(job_id, thing, execution_number)
        if execution.status == IN_PROGRESS and not force:
            raise bad_state(f"execution {execution_number} of {job_id} on {thing} is IN_PROGRESS; use force")
        self.begin()
        self._delete(execution)
        self._check_completed(job)
        return self.finish()

    def delete_job(self, job_id: str, *, force: bool = False) -> Outcome:
        """DeleteJob: immediate; without `force` the job must be COMPLETED or CANCELED."""
        job = self._job(job_id)
        if job.status == JOB_IN_PROGRESS and not force:
            raise bad_state(f"job {job_id} is IN_PROGRESS; cancel it first or use force")
        self.begin()
        job.rollout_queue.clear()
        job.next_tick_at = None
        for runs in list(self.runs.get(job_id, {}).values()):
            for execution in list(runs):
                self._delete(execution)
        self.runs.pop(job_id, None)
        for key in [k for k in self.retries_used if k[0] == job_id]:
            del self.retries_used[key]
        self._record_job(job, "DELETED")
        outcome = self.finish()
        del self.jobs[job_id]
        return outcome

    # -- the clock -----------------------------------------------------------------------------

    def advance(self) -> Outcome:
        """Process everything due by the clock's now, in time order: timer expiries, rollout ticks."""
        self.begin()
        now = self.now()
        while True:
            due = self.next_wakeup()
            if due is None or due > now:
                break
            self._expire_timers(due)
            for job in list(self.jobs.values()):
                if job.next_tick_at is not None and job.next_tick_at <= due:
                    self._tick(job)
        return self.finish()

    def _tick(self, job: Job) -> None:
        assert job.next_tick_at is not None
        job.next_tick_at += ROLLOUT_PERIOD
        self._roll_out(job)

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _job_reply(job: Job) -> dict[str, Any]:
        """CreateJob's and CancelJob's response: jobArn, jobId, and description when there is one."""
        reply: dict[str, Any] = {"jobArn": job.arn, "jobId": job.job_id}
        if job.description:
            reply["description"] = job.description
        return reply

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"job {job_id} does not exist")
        return job

    def _execution(self, job_id: str, thing: str, number: int | None) -> Execution:
        execution = self.find(job_id, thing, number)
        if execution is None:
            raise not_found(f"no execution of job {job_id} for thing {thing}")
        return execution

    @staticmethod
    def _control_details(details: Mapping[str, Any] | None) -> dict[str, str] | None:
        if details is None:
            return None
        try:
            return check_status_details(details)
        except RequestRejected as error:
            raise invalid(error.message) from error
