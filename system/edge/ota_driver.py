"""The OTA driver: takes jobs from IoT Jobs one at a time and runs `ota_machine` over `OtaSteps`.

Threads: the bus's handler lane only sets flags (a connect, a `notify-next`, a `notify`); one worker
thread does everything else, so a long download never holds up MQTT keepalives or replies (the
seed ran its whole OTA on the paho network thread, seed-behaviours.md section 7).

Per job: start-next -> `begin` (REJECTED here, before any download, when the job cannot be taken)
-> for each step an IN_PROGRESS update with `stepTimeoutInMinutes` (so a slow step does not time
out as long as steps keep moving), the step, the journal -> the terminal update. After a restart
the journaled job is described first: still IN_PROGRESS in the cloud, it resumes; ended there
(canceled, timed out), it is finished locally without a report (`ota_machine.ended_in_cloud`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from system.edge.jobs_client import IotJobsDeviceClient
from system.edge.jobs_messages import ENDED_CODES, TERMINAL_STATUSES
from system.edge.journal import Journal
from system.edge.ota_machine import (
    JobOffer,
    JobState,
    Policy,
    Serving,
    Step,
    advance,
    after_restart,
    begin,
    ended_in_cloud,
)
from system.edge.ota_steps import OtaSteps
from system.edge.roster import ModelRoster
from system.errors import EdgesimError, JobsError
from system.killpoints import kill_point

_log = logging.getLogger(__name__)


class OtaDriver:
    def __init__(
        self,
        jobs: IotJobsDeviceClient,
        steps: OtaSteps,
        journal: Journal,
        roster: ModelRoster,
        policy: Callable[[], Policy],
        *,
        step_timeout_minutes: int = 10,
        poll_interval: float = 300.0,
        retry_backoff: float = 1.0,
        now: Callable[[], float] = time.time,
        on_change: Callable[[JobState], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.steps = steps
        self.journal = journal
        self.roster = roster
        self.policy = policy
        self.step_timeout_minutes = step_timeout_minutes
        self.poll_interval = poll_interval  # a safety net: notify-next normally wakes the worker
        self.retry_backoff = retry_backoff
        self._now = now
        self._on_change = on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._check_cloud = threading.Event()
        self._thread: threading.Thread | None = None
        self._resumed = False
        self.errors = 0

    # -- lifecycle and events (any thread) -----------------------------------------------------

    def start(self) -> OtaDriver:
        self._thread = threading.Thread(target=self._run, name="ota-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current step; a job in progress stays in the journal and resumes at the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def poke(self) -> None:
        """Ask for pending jobs (on connect and on notify-next)."""
        self._wake.set()

    def on_notify_next(self, _payload: dict[str, Any]) -> None:
        self._wake.set()

    def on_notify(self, payload: dict[str, Any]) -> None:
        """A job list changed; if the job in progress left it, the cloud may have ended it."""
        current = self.journal.current
        jobs = payload.get("jobs")
        listed = jobs.get("IN_PROGRESS", []) if isinstance(jobs, dict) else []
        in_progress = {str(j.get("jobId")) for j in listed if isinstance(j, dict)}
        if current is not None and current.job_id not in in_progress:
            self._check_cloud.set()
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive (False before start, after stop, or after it died)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def current(self) -> JobState | None:
        return self.journal.current

    # -- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._work()
            except JobsError as exc:  # no broker, no reply: try again on the next wake or poll
                _log.warning("IoT Jobs unreachable; will retry", extra={"fields": {"error": str(exc)}})
                self._stop.wait(self.retry_backoff)
                self._wake.set()
            except Exception:  # noqa: BLE001 - the worker must survive anything: log it, count it, go on
                self.errors += 1
                _log.exception("OTA worker error")
                self._stop.wait(self.retry_backoff)
                self._wake.set()

    def _work(self) -> None:
        current = self.journal.current
        if current is not None:
            if not self._resumed:
                current = after_restart(current, self._now())
                self._save(current)
            self._resumed = True
            self._run_job(self._reconcile(current))
        self._resumed = True
        seen: set[tuple[str, int]] = set()
        while not self._stop.is_set():
            execution = self.jobs.start_next(
                status_details={"step": "received"}, step_timeout_minutes=self.step_timeout_minutes
            )
            if execution is None:
                return
            try:
                offer = JobOffer.from_execution(execution)
            except JobsError as exc:  # the cloud's bug, not a transient: wait for the next notification or poll
                _log.error("start-next answered an unreadable execution", extra={"fields": {"error": str(exc)}})
                return
            key = (offer.job_id, offer.execution_number)
            if key in seen:  # our final report did not take; leave it to the next wake-up
                _log.warning("start-next keeps returning a finished job", extra={"fields": {"job_id": offer.job_id}})
                return
            seen.add(key)
            finished = self.journal.find_finished(*key)
            if finished is not None:
                self._report_again(finished)  # delivered twice: handled once, its outcome re-sent
                continue
            serving = {m.name: Serving(m.version, m.identifier) for m in self.roster.all()}
            state = begin(offer, serving, self.policy(), self._now())
            self._save(state)
            kill_point("ota.received")
            _log.info("OTA job received", extra={"fields": {"job_id": offer.job_id, "step": str(state.step)}})
            self._run_job(state)

    def _reconcile(self, state: JobState) -> JobState:
        """The journaled job against the cloud's view of it (after a restart)."""
        try:
            status = str(self.jobs.describe(state.job_id, execution_number=state.execution_number).get("status"))
        except JobsError as exc:
            if exc.code != "ResourceNotFound":
                raise
            status = "REMOVED"
        if status in TERMINAL_STATUSES:
            state = ended_in_cloud(state, status, self._now())
            self._save(state)
        return state

    def _run_job(self, state: JobState) -> None:
        while state.step is not Step.DONE:
            if self._stop.is_set():
                return
            if self._check_cloud.is_set() and state.report:
                self._check_cloud.clear()
                state = self._reconcile(state)
                continue
            state = self._report(state) if state.step is Step.REPORT else self._step(state)
            self._save(state)

    def _step(self, state: JobState) -> JobState:
        if state.report and not self._progress(state):
            reconciled = self._reconcile(state)
            if reconciled is not state:
                return reconciled  # ended in the cloud: roll back or finish without a report
        kill_point(f"ota.{state.step}.before")
        try:
            detail, ok = self.steps.run(state), True
        except EdgesimError as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # noqa: BLE001 - a bug or a library error fails the step, not the device
            _log.exception("OTA step crashed", extra={"fields": {"job_id": state.job_id, "step": str(state.step)}})
            detail, ok = f"{type(exc).__name__}: {exc}", False
        kill_point(f"ota.{state.step}.after")
        log = _log.info if ok else _log.warning
        log("OTA step", extra={"fields": {"job_id": state.job_id, "step": str(state.step), "ok": ok, "detail": detail}})
        return advance(state, ok, detail, self._now())

    def _progress(self, state: JobState) -> bool:
        """IN_PROGRESS with this step's details; False when the cloud has ended the job."""
        try:
            self.jobs.update(
                state.job_id,
                "IN_PROGRESS",
                status_details=state.status_details(),
                step_timeout_minutes=self.step_timeout_minutes,
                execution_number=state.execution_number,
            )
        except JobsError as exc:
            if exc.code in ENDED_CODES:
                return False
            raise
        return True

    def _report(self, state: JobState) -> JobState:
        detail = "not reported: the job had already ended in the cloud"
        kill_point("ota.report.before")
        if state.report:
            assert state.outcome is not None
            try:
                self.jobs.update(
                    state.job_id,
                    str(state.outcome),
                    status_details=state.status_details(),
                    execution_number=state.execution_number,
                )
                detail = f"reported {state.outcome}"
            except JobsError as exc:
                if exc.code not in ENDED_CODES:
                    raise  # transient: the worker retries the report, the journal still says REPORT
                detail = f"the cloud refused {state.outcome}: {exc}"
        kill_point("ota.report.after")
        self.steps.cleanup(state)
        _log.info(
            "OTA job finished",
            extra={"fields": {"job_id": state.job_id, "outcome": str(state.outcome), "reason": state.reason}},
        )
        return advance(state, True, detail, self._now())

    def _report_again(self, finished: JobState) -> None:
        if finished.outcome is None or not finished.report:
            return
        try:
            self.jobs.update(
                finished.job_id,
                str(finished.outcome),
                status_details=finished.status_details(),
                execution_number=finished.execution_number,
            )
        except JobsError as exc:
            if exc.code not in ENDED_CODES:
                raise

    def _save(self, state: JobState) -> None:
        self.journal.save(state)
        if self._on_change is not None:
            try:
                self._on_change(state)
            except Exception:  # noqa: BLE001 - a listener (metrics, telemetry) never stops the OTA
                _log.exception("OTA change listener failed")
