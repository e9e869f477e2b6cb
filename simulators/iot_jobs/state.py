"""The state of the IoT Jobs simulator and the rules every operation shares.

Holds things, groups, jobs and executions; orders a thing's pending executions (§5.3); performs
every status change (versions, timers, retries, abort criteria, job completion: §3, §6); and works
out the `notify` / `notify-next` messages of an operation by comparing each touched thing's pending
set and head before and after it (§5), so no operation has to decide them by hand.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any

from simulators.iot_jobs.configs import Signer
from simulators.iot_jobs.payloads import job_execution, notify_payload
from simulators.iot_jobs.records import (
    CANCELED,
    EXECUTED,
    FAILED,
    IN_PROGRESS,
    JOB_CANCELED,
    JOB_COMPLETED,
    JOB_IN_PROGRESS,
    PENDING,
    QUEUED,
    SUCCEEDED,
    TERMINAL,
    TIMED_OUT,
    Behaviour,
    Execution,
    Job,
    Notification,
    Outcome,
    StateChange,
)
from system.ports import Clock

ROLLOUT_PERIOD = 60.0


class JobsState:
    """Storage, lookups and the shared transition rules; operations live in the subclasses."""

    def __init__(
        self,
        clock: Clock,
        *,
        behaviour: Behaviour | None = None,
        signer: Signer | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self.clock = clock
        self.behaviour = behaviour or Behaviour()
        self.signer = signer
        self.region = region
        self.account = account
        self.reset()

    def reset(self) -> None:
        """Forget every thing, group, job and execution."""
        self.things: dict[str, None] = {}  # dicts as insertion-ordered sets
        self.groups: dict[str, dict[str, None]] = {}
        self.jobs: dict[str, Job] = {}
        self.runs: dict[str, dict[str, list[Execution]]] = {}  # job -> thing -> executions by number
        self.thing_jobs: dict[str, dict[str, None]] = {}  # thing -> jobs it has executions of
        self.retries_used: dict[tuple[str, str], dict[str, int]] = {}  # (job, thing) -> criterion -> n
        self.timed: dict[tuple[str, str, int], Execution] = {}  # executions with a running timer
        # (deadline, seq, key) of `timed`, lazily pruned: a fleet of thousands must not rescan every
        # timer on every request. An entry is stale once its execution's deadline moved or ended.
        self._deadlines: list[tuple[float, int, tuple[str, str, int]]] = []
        self._seq = 0
        self._before: dict[str, list[tuple[str, int]]] = {}
        self._changes: list[StateChange] = []

    # -- time and names ------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.now()

    def now_s(self) -> int:
        """Epoch seconds as every payload carries them (§0)."""
        return int(self.clock.now())

    def thing_arn(self, thing: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:thing/{thing}"

    def job_arn(self, job_id: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account}:job/{job_id}"

    # -- lookups -------------------------------------------------------------------------------

    def executions_of(self, job_id: str, thing: str) -> list[Execution]:
        return self.runs.get(job_id, {}).get(thing, [])

    def latest(self, job_id: str, thing: str) -> Execution | None:
        runs = self.executions_of(job_id, thing)
        return runs[-1] if runs else None

    def find(self, job_id: str, thing: str, number: int | None) -> Execution | None:
        """The numbered execution, or the newest one when `number` is None."""
        if number is None:
            return self.latest(job_id, thing)
        return next((e for e in self.executions_of(job_id, thing) if e.execution_number == number), None)

    def latest_of_job(self, job: Job) -> Iterator[Execution]:
        for runs in self.runs.get(job.job_id, {}).values():
            if runs:
                yield runs[-1]

    def pending(self, thing: str) -> list[Execution]:
        """§5.3: IN_PROGRESS first, then QUEUED, each by queuedAt, ties by creation order."""
        found = []
        for job_id in self.thing_jobs.get(thing, {}):
            execution = self.latest(job_id, thing)
            if execution is not None and execution.status in PENDING:
                found.append(execution)
        found.sort(key=lambda e: (e.status != IN_PROGRESS, e.queued_at, e.seq))
        return found

    def is_target(self, job: Job, thing: str) -> bool:
        """Whether the thing is a target now: named directly or a member of a target group."""
        return thing in job.target_things or any(thing in self.groups.get(g, {}) for g in job.target_groups)

    # -- operation bracket ---------------------------------------------------------------------

    def begin(self) -> None:
        """Start an operation: forget what an earlier (possibly failed) one left behind."""
        self._before = {}
        self._changes = []

    def finish(self, reply: dict[str, Any] | None = None) -> Outcome:
        """End an operation: its reply, the notifications its changes call for, the changes."""
        outcome = Outcome(reply or {}, self._notifications(), self._changes)
        self._before = {}
        self._changes = []
        return outcome

    def _touch(self, thing: str) -> None:
        """Remember a thing's pending set before the operation first changes it."""
        if thing not in self._before:
            self._before[thing] = [(e.job_id, e.execution_number) for e in self.pending(thing)]

    def _notifications(self) -> list[Notification]:
        now = self.now_s()
        out: list[Notification] = []
        for thing, before in self._before.items():
            pending = self.pending(thing)
            after = [(e.job_id, e.execution_number) for e in pending]
            removed = set(before) - set(after)
            notes: list[Notification] = []
            # §5.1: only membership changes of the pending set, never QUEUED -> IN_PROGRESS.
            if removed or set(after) - set(before):
                notes.append(Notification(thing, "notify", notify_payload(pending, now, self.behaviour.list_limit)))
            # §5.2: only when the head's identity changes.
            if before[:1] != after[:1]:
                payload: dict[str, Any] = {"timestamp": now}
                if pending:
                    head = pending[0]
                    job = self.jobs[head.job_id]
                    payload["execution"] = job_execution(head, job, self.now(), self.behaviour, self.signer)
                # Live order: notify first when something was queued, notify-next first on completion.
                notes.insert(0 if removed else len(notes), Notification(thing, "notify-next", payload))
            out.extend(notes)
        return out

    def _record(self, execution: Execution) -> None:
        job = self.jobs[execution.job_id]
        self._changes.append(StateChange(execution.job_id, execution.thing_name, execution.view(), job.status))

    def _record_job(self, job: Job, status: str | None = None) -> None:
        self._changes.append(StateChange(job.job_id, None, None, status or job.status))

    # -- mutations -----------------------------------------------------------------------------

    def _queue(self, job: Job, thing: str, retry_attempt: int = 0) -> Execution:
        """A new QUEUED execution (creation, rollout, continuous join, retry): number previous+1."""
        self._touch(thing)
        runs = self.runs.setdefault(job.job_id, {}).setdefault(thing, [])
        now = self.now_s()
        self._seq += 1
        execution = Execution(
            job_id=job.job_id,
            thing_name=thing,
            execution_number=runs[-1].execution_number + 1 if runs else 1,
            seq=self._seq,
            queued_at=now,
            last_updated_at=now,
            retry_attempt=retry_attempt,
        )
        runs.append(execution)
        self.thing_jobs.setdefault(thing, {})[job.job_id] = None
        job.counts[QUEUED] += 1
        self._record(execution)
        return execution

    def _transition(self, execution: Execution, status: str, *, step_minutes: int | None = None) -> None:
        """Every status change: version+1 (§3.3), timestamps, timers, then the terminal aftermath."""
        self._touch(execution.thing_name)
        job = self.jobs[execution.job_id]
        previous = execution.status
        now = self.now_s()
        execution.status = status
        execution.version_number += 1
        execution.last_updated_at = now
        job.counts[previous] -= 1
        job.counts[status] += 1
        if status == IN_PROGRESS:
            if previous == QUEUED:
                execution.started_at = now
                self._start_timers(execution, job, step_minutes)
            elif step_minutes is not None:
                execution.step_deadline = None if step_minutes == -1 else self.now() + step_minutes * 60
        if status in TERMINAL:
            execution.in_progress_deadline = execution.step_deadline = None
        self._index_timer(execution)
        self._record(execution)
        if status in TERMINAL:
            self._after_terminal(job, execution)

    def _delete(self, execution: Execution) -> None:
        """Remove an execution for good (DeleteJobExecution, DeleteJob)."""
        self._touch(execution.thing_name)
        job = self.jobs[execution.job_id]
        runs = self.runs[execution.job_id][execution.thing_name]
        runs.remove(execution)
        job.counts[execution.status] -= 1
        self.timed.pop(execution.key, None)
        if not runs:
            del self.runs[execution.job_id][execution.thing_name]
            self.thing_jobs[execution.thing_name].pop(execution.job_id, None)
        self._changes.append(
            StateChange(execution.job_id, execution.thing_name, execution.view(), job.status, deleted=True)
        )

    def _start_timers(self, execution: Execution, job: Job, step_minutes: int | None) -> None:
        """§3.3: the in-progress timer (fixed per execution) and the optional step timer."""
        now = self.now()
        if job.config.in_progress_minutes is not None:
            execution.in_progress_deadline = now + job.config.in_progress_minutes * 60
        if step_minutes is not None and step_minutes != -1:
            execution.step_deadline = now + step_minutes * 60

    def _index_timer(self, execution: Execution) -> None:
        deadline = execution.deadline
        if deadline is not None and execution.status not in TERMINAL:
            self.timed[execution.key] = execution
            heapq.heappush(self._deadlines, (deadline, execution.seq, execution.key))
        else:
            self.timed.pop(execution.key, None)

    # -- what follows a terminal status --------------------------------------------------------

    def _after_terminal(self, job: Job, execution: Execution) -> None:
        if job.status == JOB_IN_PROGRESS and execution.status in (FAILED, TIMED_OUT):
            self._maybe_retry(job, execution)
        if execution.status in EXECUTED:
            self._check_abort(job)
        self._check_completed(job)

    def _maybe_retry(self, job: Job, execution: Execution) -> None:
        """§3.4: re-queue as a new execution while the matching criterion has retries left."""
        if execution.status == TIMED_OUT and job.config.in_progress_minutes is None:
            return  # retrying TIMED_OUT needs a timeoutConfig
        if job.continuous and not self.is_target(job, execution.thing_name):
            return  # pending retries end when the thing leaves a continuous target
        criteria = {c.failure_type: c for c in job.config.retry}
        criterion = criteria.get(execution.status) or criteria.get("ALL")
        if criterion is None:
            return
        used = self.retries_used.setdefault((job.job_id, execution.thing_name), {})
        if used.get(criterion.failure_type, 0) >= criterion.retries:
            return
        used[criterion.failure_type] = used.get(criterion.failure_type, 0) + 1
        self._queue(job, execution.thing_name, retry_attempt=execution.retry_attempt + 1)

    def _check_abort(self, job: Job) -> None:
        """§6: criteria in order; the first met cancels the job (QUEUED executions only)."""
        if job.status != JOB_IN_PROGRESS or not job.config.abort:
            return
        executed = sum(job.counts[s] for s in EXECUTED)
        basis = executed if self.behaviour.abort_basis == "completed" else job.notified
        for criterion in job.config.abort:
            kinds = EXECUTED - {SUCCEEDED} if criterion.failure_type == "ALL" else {criterion.failure_type}
            failures = sum(job.counts[s] for s in kinds)
            if (
                failures > 0
                and basis >= criterion.min_executed
                and failures * 100 >= criterion.threshold_percentage * basis
            ):
                comment = (
                    f"Job aborted: {failures} of {basis} executed things ended {criterion.failure_type}, "
                    f"reaching the abort threshold of {criterion.threshold_percentage}%"
                )
                self._cancel_job(job, force=False, reason_code="ABORT_CRITERIA_MET", comment=comment)
                return

    def _check_completed(self, job: Job) -> None:
        """A SNAPSHOT job completes once rolled out with every execution terminal (§6)."""
        if job.status != JOB_IN_PROGRESS or job.continuous or job.rollout_queue:
            return
        if job.counts[QUEUED] > 0 or job.counts[IN_PROGRESS] > 0:
            return
        job.status = JOB_COMPLETED
        job.completed_at = job.last_updated_at = self.now()
        job.next_tick_at = None
        self._record_job(job)

    def _cancel_job(self, job: Job, *, force: bool, reason_code: str | None, comment: str | None) -> None:
        """CancelJob and abort: rollout stops, QUEUED (and with force IN_PROGRESS) -> CANCELED."""
        if job.status != JOB_CANCELED:
            job.status = JOB_CANCELED
            job.reason_code = reason_code
            job.comment = comment
            self._record_job(job)
        job.force_canceled = job.force_canceled or force
        job.last_updated_at = self.now()
        job.rollout_queue.clear()
        job.next_tick_at = None
        for execution in list(self.latest_of_job(job)):
            if execution.status == QUEUED or (force and execution.status == IN_PROGRESS):
                execution.force_canceled = force and execution.status == IN_PROGRESS
                self._transition(execution, CANCELED)

    # -- the clock -----------------------------------------------------------------------------

    def next_wakeup(self) -> float | None:
        """The earliest time something is due: a timer expiry or a rollout tick."""
        while self._deadlines and self._stale(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        times = [self._deadlines[0][0]] if self._deadlines else []
        times += [j.next_tick_at for j in self.jobs.values() if j.next_tick_at is not None]
        return min(times) if times else None

    def _stale(self, entry: tuple[float, int, tuple[str, str, int]]) -> bool:
        execution = self.timed.get(entry[2])
        return execution is None or execution.deadline != entry[0]

    def _expire_timers(self, now: float) -> None:
        """§3.3: every execution whose deadline passed becomes TIMED_OUT, earliest first."""
        due: dict[tuple[str, str, int], Execution] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            entry = heapq.heappop(self._deadlines)
            if not self._stale(entry):
                due[entry[2]] = self.timed[entry[2]]
        for execution in sorted(due.values(), key=lambda e: (e.deadline or 0.0, e.seq)):
            if execution.status in PENDING:
                self._transition(execution, TIMED_OUT)

    def _roll_out(self, job: Job) -> None:
        """One rollout minute: notify up to the current rate of not-yet-notified things (§6)."""
        rate = job.config.rollout.rate(job.notified, job.counts[SUCCEEDED])
        sent = 0
        while job.rollout_queue and sent < rate:
            thing = job.rollout_queue.popleft()
            if job.continuous and not self.is_target(job, thing):
                continue
            self._queue(job, thing)
            job.notified += 1
            sent += 1
        if not job.rollout_queue:
            job.next_tick_at = None
            self._check_completed(job)
