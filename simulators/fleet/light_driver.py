"""The OTA driver of a light device: `ota_machine` driven by callbacks on a clock, no thread.

It takes the same decisions as `system/edge/ota_driver.py` (the pure `ota_machine` makes them:
`begin`, `advance`, `after_restart`, `ended_in_cloud`), runs the same `OtaSteps`, journals every
transition the same way and speaks the same IoT Jobs protocol (start-next, IN_PROGRESS with
`stepTimeoutInMinutes` before each step, the terminal update, describe after a restart or when the
job leaves the IN_PROGRESS list). What differs is how it waits: where the full driver blocks its
worker thread on a reply or on a step, this one continues in the reply's callback or in a clock
callback, so ten thousand of them share the thread that advances the clock.

Time: a step's I/O (real: the object store, the files, the simulated runtime) runs at the END of
the clock time the step takes (`StepTiming`: the download takes size / bandwidth, LOAD the
runtime's load time), so a device killed meanwhile has not done it, and a step timeout set by the
cloud can expire while a slow step runs. A download crossing a network outage of the device's
`Link` receives the bytes up to the outage, fails, and resumes after it with a ranged request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from simulators.fleet.jobs_requests import AsyncJobsClient
from simulators.fleet.link import Link
from simulators.fleet.runtime import SimulatedRuntime
from system.edge.jobs_messages import ENDED_CODES, TERMINAL_STATUSES, Reply
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
from system.errors import EdgesimError, JobsError, ObjectStoreError
from system.ports import Clock, Timer

_log = logging.getLogger(__name__)
_DEFAULT_PACKAGE_BYTES = 1024
_SLICE = 5.0  # clock seconds between looks at the link during a long transfer


@dataclass(frozen=True)
class StepTiming:
    """Clock seconds a light device's steps take (LOAD takes the runtime's load time)."""

    bandwidth: float = 1_000_000.0  # download bytes per second
    latency: float = 0.05  # added to every download attempt
    step: float = 0.05  # verify, extract, switch, unload, rollback
    health_check: float = 0.2
    retry: float = 5.0  # after a lost reply or an unreachable broker
    download_backoff: float = 5.0  # after an interrupted download (times the attempt number)
    poll: float = 300.0  # start-next as a safety net, when idle (notifications are hints)


class LightOtaDriver:
    """See the module docstring. Every entry point is safe from any thread (one lock per device)."""

    def __init__(
        self,
        jobs: AsyncJobsClient,
        steps: OtaSteps,
        journal: Journal,
        roster: ModelRoster,
        policy: Policy,
        runtime: SimulatedRuntime,
        clock: Clock,
        *,
        link: Link | None = None,
        timing: StepTiming | None = None,
        step_timeout_minutes: int = 10,
        on_change: Callable[[JobState], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.steps = steps
        self.journal = journal
        self.roster = roster
        self.policy = policy
        self.runtime = runtime
        self.clock = clock
        self.link = link or Link()
        self.timing = timing or StepTiming()
        self.step_timeout_minutes = step_timeout_minutes
        self._on_change = on_change
        self._lock = threading.RLock()
        self._busy = False  # a chain of requests and steps is under way
        self._again = False  # a wake-up came while busy: look for jobs once more at the end
        self._check_cloud = False
        self._resumed = False
        self._stopped = False
        self._seen: set[tuple[str, int]] = set()
        self._timers: set[Timer] = set()
        self._poll: Timer | None = None
        self.errors = 0  # exceptions caught: a bug, never an injected fault
        self.retries = 0  # requests sent again after no reply or an unreachable broker
        self.answers = 0  # start-next replies: how often it has asked IoT Jobs for work and heard back

    # -- events ----------------------------------------------------------------------------------

    def poke(self) -> None:
        """Look for jobs (on connect, on notify-next, on the poll timer)."""
        with self._lock:
            if self._stopped:
                return
            if self._busy:
                self._again = True
                return
            self._busy = True
            self._next()

    def on_notify_next(self, _payload: dict[str, Any]) -> None:
        self.poke()

    def on_notify(self, payload: dict[str, Any]) -> None:
        current = self.journal.current
        jobs = payload.get("jobs")
        listed = jobs.get("IN_PROGRESS", []) if isinstance(jobs, dict) else []
        if current is not None and current.job_id not in {str(j.get("jobId")) for j in listed if isinstance(j, dict)}:
            with self._lock:
                self._check_cloud = True
        self.poke()

    def stop(self) -> None:
        """Stop where it is: nothing scheduled runs; the journal keeps the job for the next start."""
        with self._lock:
            self._stopped = True
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            if self._poll is not None:
                self._poll.cancel()

    @property
    def busy(self) -> bool:
        return self._busy

    # -- the chain: each method ends by starting the next request or step, or by going idle --------

    def _next(self) -> None:
        current = self.journal.current
        if current is not None:
            if not self._resumed:
                current = after_restart(current, self.clock.now())
                self._save(current)
            self._resumed = True
            self._reconcile(current)
            return
        self._resumed = True
        self.jobs.start_next(
            self._guard(self._offered),
            status_details={"step": "received"},
            step_timeout_minutes=self.step_timeout_minutes,
        )

    def _offered(self, reply: Reply) -> None:
        if isinstance(reply, JobsError):
            self._retry_later(reply)
            return
        self.answers += 1
        execution = reply.get("execution")
        if not isinstance(execution, dict):
            self._idle()
            return
        try:
            offer = JobOffer.from_execution(execution)
        except JobsError as exc:  # as the device's own driver: wait for the next wake-up
            _log.error("start-next answered an unreadable execution", extra={"fields": {"error": str(exc)}})
            self._idle()
            return
        key = (offer.job_id, offer.execution_number)
        finished = self.journal.find_finished(*key)
        if finished is not None:  # delivered again: handled once, its outcome sent again
            if key in self._seen:  # the cloud keeps offering it: leave it to the next wake-up
                self._idle()
                return
            self._seen.add(key)
            if finished.outcome is None or not finished.report:
                self._next()
                return
            self._update(finished, str(finished.outcome), lambda _reply: self._next())
            return
        serving = {m.name: Serving(m.version, m.identifier) for m in self.roster.all()}
        state = begin(offer, serving, self.policy, self.clock.now())
        self._save(state)
        self._run(state)

    def _run(self, state: JobState) -> None:
        if state.step is Step.DONE:
            self._next()
            return
        if self._check_cloud and state.report:
            self._check_cloud = False
            self._reconcile(state)
            return
        if state.step is Step.REPORT:
            self._report(state)
        elif state.report:
            self._update(state, "IN_PROGRESS", lambda reply: self._progressed(state, reply))
        else:
            self._start_step(state)

    def _progressed(self, state: JobState, reply: Reply) -> None:
        if isinstance(reply, JobsError):
            if reply.code in ENDED_CODES:
                self._reconcile(state)
            else:
                self._retry_later(reply, state)
            return
        self._start_step(state)

    def _start_step(self, state: JobState) -> None:
        if state.step is Step.DOWNLOAD:
            self._download(state, attempt=1)
            return
        self._later(self._step_seconds(state), lambda: self._finish_step(state))

    def _finish_step(self, state: JobState) -> None:
        try:
            detail, ok = self.steps.run(state), True
        except EdgesimError as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # noqa: BLE001 - as on a full device: a bug fails the step, not the fleet
            _log.exception("OTA step crashed", extra={"fields": {"job_id": state.job_id, "step": str(state.step)}})
            detail, ok = f"{type(exc).__name__}: {exc}", False
        self._advance(state, ok, detail)

    def _advance(self, state: JobState, ok: bool, detail: str) -> None:
        state = advance(state, ok, detail, self.clock.now())
        self._save(state)
        self._run(state)

    def _step_seconds(self, state: JobState) -> float:
        if state.step is Step.LOAD:
            return self.runtime.load_time(state.version)
        if state.step is Step.HEALTH_CHECK:
            return self.timing.health_check
        return self.timing.step

    # -- the download: real bytes, clock time, outages of the link ---------------------------------

    def _download(self, state: JobState, attempt: int) -> None:
        update = state.update
        remaining = max((update.size or _DEFAULT_PACKAGE_BYTES) - self.steps.downloaded_bytes(state), 0)
        seconds = self.timing.latency + remaining / self.timing.bandwidth
        self._download_wait(state, attempt, self.clock.now(), seconds, remaining)

    def _download_wait(self, state: JobState, attempt: int, began: float, seconds: float, remaining: int) -> None:
        """Wait out a transfer in slices, so an outage planned after it began still breaks it."""
        now, end = self.clock.now(), began + seconds
        outage = self.link.outage_between(began, end)
        if outage is not None and outage[0] <= now + _SLICE:
            share = max(outage[0] - began - self.timing.latency, 0.0) / max(seconds - self.timing.latency, 1e-9)
            received = int(remaining * share)  # what arrived before the link went down
            self._later(max(outage[0] - now, 0.0), lambda: self._download_attempt(state, attempt, received))
        elif end - now <= _SLICE:
            self._later(end - now, lambda: self._download_attempt(state, attempt, None))
        else:
            self._later(_SLICE, lambda: self._download_wait(state, attempt, began, seconds, remaining))

    def _download_attempt(self, state: JobState, attempt: int, cut_after: int | None) -> None:
        where = self.steps.package_url(state)
        try:
            with self.link.cut(cut_after):
                size = self.steps.download_attempt(state)
        except ObjectStoreError as exc:
            limit = self.steps.limits.download_attempts
            if attempt >= limit:
                self._advance(state, False, f"{where}: {exc} (after {attempt} attempts)")
                return
            wait = max(self.timing.download_backoff * attempt, self.link.up_at(self.clock.now()) - self.clock.now())
            _log.info("package download interrupted; resuming", extra={"fields": {"job_id": state.job_id}})
            self._later(wait, lambda: self._download(state, attempt + 1))
            return
        except EdgesimError as exc:
            self._advance(state, False, str(exc))
            return
        self._advance(state, True, f"{size} bytes from {where}" + (f" after {attempt} attempts" if attempt > 1 else ""))

    # -- requests --------------------------------------------------------------------------------

    def _report(self, state: JobState) -> None:
        if not state.report:
            self._reported(state, "not reported: the job had already ended in the cloud")
            return
        assert state.outcome is not None

        def done(reply: Reply) -> None:
            if isinstance(reply, JobsError):
                if reply.code not in ENDED_CODES:
                    self._retry_later(reply, state)  # the journal still says REPORT
                    return
                self._reported(state, f"the cloud refused {state.outcome}: {reply}")
                return
            self._reported(state, f"reported {state.outcome}")

        self._update(state, str(state.outcome), done)

    def _reported(self, state: JobState, detail: str) -> None:
        self.steps.cleanup(state)
        self._seen.add((state.job_id, state.execution_number))
        self._advance(state, True, detail)

    def _reconcile(self, state: JobState) -> None:
        """The journaled job against the cloud's view (after a restart, or when it left the list)."""

        def done(reply: Reply) -> None:
            if isinstance(reply, JobsError) and reply.code != "ResourceNotFound":
                self._retry_later(reply, state)
                return
            status = "REMOVED" if isinstance(reply, JobsError) else str((reply.get("execution") or {}).get("status"))
            reconciled = state
            if status in TERMINAL_STATUSES:
                reconciled = ended_in_cloud(state, status, self.clock.now())
                self._save(reconciled)
            self._run(reconciled)

        self.jobs.describe(state.job_id, self._guard(done), execution_number=state.execution_number)

    def _update(self, state: JobState, status: str, done: Callable[[Reply], None]) -> None:
        self.jobs.update(
            state.job_id,
            status,
            self._guard(done),
            status_details=state.status_details(),
            step_timeout_minutes=self.step_timeout_minutes if status == "IN_PROGRESS" else None,
            execution_number=state.execution_number,
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _retry_later(self, error: JobsError, state: JobState | None = None) -> None:
        """The broker or the plane did not answer: try again later, from the journal."""
        _log.info("IoT Jobs unreachable; will retry", extra={"fields": {"error": str(error)}})
        self.retries += 1
        if state is None:
            self._later(self.timing.retry, self._idle_then_poke)
        else:
            self._later(self.timing.retry, lambda: self._run(state))

    def _idle(self) -> None:
        self._busy = False
        if self._again:
            self._again = False
            self.poke()
            return
        if self._poll is not None:
            self._poll.cancel()
        self._poll = self.clock.call_later(self.timing.poll, self.poke)

    def _idle_then_poke(self) -> None:
        self._busy = False
        self.poke()

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        timer: Timer | None = None

        def fire() -> None:
            with self._lock:
                if timer is not None:
                    self._timers.discard(timer)
                if not self._stopped:
                    self._safely(action)

        timer = self.clock.call_later(seconds, fire)
        self._timers.add(timer)

    def _guard(self, callback: Callable[[Reply], None]) -> Callable[[Reply], None]:
        """A reply callback that does nothing once the driver is stopped (the device was killed)."""

        def guarded(reply: Reply) -> None:
            with self._lock:
                if not self._stopped:
                    self._safely(lambda: callback(reply))

        return guarded

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 - one device's bug is logged and counted; the fleet goes on
            self.errors += 1
            _log.exception("light OTA driver error")
            self._busy = False

    def _save(self, state: JobState) -> None:
        self.journal.save(state)
        if self._on_change is not None:
            self._on_change(state)
