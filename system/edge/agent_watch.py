"""Reload the device's models into an Edge Agent that lost them: it crashed and was restarted empty.

The agent is its own process on a real device; systemd restarts it after a crash, but the new
process holds no models, and the app used to fail every Predict with NOT_FOUND from then on
(UNAVAILABLE while the agent was down). `AgentWatch` notices and puts back what the device serves.

When it looks: on the inference loop's thread, between frames (`InferenceLoop(housekeeping=...)`),
so it adds no thread. `check()` lists the agent's models every `interval` seconds (one ListModels,
~0.3 ms over a unix socket) and at once when the inference engine reports that a serving model
answered NOT_FOUND or UNAVAILABLE (`notice`, callable from any thread). While the agent cannot be
reached it checks again after a backoff that doubles from `initial_backoff` to `max_backoff`, and
logs the outage once, not once per frame.

What it reloads: `startup.restore_models`, the start-up code, with models_config.json and the
journal's job in progress, so the models a job has loaded or still needs (its new and previous
identifiers) are kept. It passes a scratch roster: the live roster and models_config.json belong to
the OTA steps, and both already name what should serve (SWITCH and ROLLBACK change them together);
only the agent lost its state. So a reload racing a SWITCH can never swing the roster back.

Concurrency with the OTA worker, without a shared lock (`OtaSteps` takes none; one held through
whole steps would also leave the inference thread waiting on downloads): the watch stands aside,
looking again a second later, while the journaled job is at a step that loads, unloads or switches
models in the agent (LOAD, HEALTH_CHECK, SWITCH, ROLLBACK: `AGENT_STEPS`). At the other steps the
two touch disjoint identifiers: the watch loads what models_config.json names and unloads only what
neither the config nor the job names. A job that begins after the watch read the journal cannot
have loaded a model yet (DOWNLOAD, VERIFY and EXTRACT come first), so its new model is never
unloaded. If the agent dies during a job's LOAD or HEALTH_CHECK, that job fails and rolls back on
its own, as it always has. The journal names the step about to run, which may wait for the cloud
(its IN_PROGRESS update goes first) while the broker is away: so the watch stands aside for at most
`max_defer` seconds on one job's step, longer than any agent call a step makes can last, and then
reloads anyway, rather than leave the device without models for as long as it is offline.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from system.edge.journal import Journal
from system.edge.layout import DeviceLayout
from system.edge.models_config import ModelsConfigFile
from system.edge.ota_machine import JobState, Step
from system.edge.roster import ModelRoster
from system.edge.startup import StartupReport, restore_models
from system.errors import AgentUnavailableError, EdgesimError
from system.logs import fields
from system.ports import InferenceClient

log = logging.getLogger(__name__)

# Steps during which the OTA worker loads, unloads or switches models in the agent.
AGENT_STEPS = frozenset({Step.LOAD, Step.HEALTH_CHECK, Step.SWITCH, Step.ROLLBACK})
_BUSY_RECHECK = 1.0  # seconds: how soon to look again after skipping for an OTA step


class AgentWatch:
    """Notices that the agent no longer holds the serving models and reloads them. Never raises.

    `reloads` counts reloads that loaded at least one model, `last_reload_at` is the wall-clock
    time of the latest, `last_error` the latest failure (None once a check succeeds again).
    """

    def __init__(
        self,
        client: InferenceClient,
        config_file: ModelsConfigFile,
        layout: DeviceLayout,
        roster: ModelRoster,
        journal: Journal,
        *,
        interval: float = 5.0,
        initial_backoff: float = 0.5,
        max_backoff: float = 10.0,
        max_defer: float = 300.0,  # the client's LoadModel timeout: no step's agent call outlasts it
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval}")
        self._client = client
        self._config_file = config_file
        self._layout = layout
        self._roster = roster
        self._journal = journal
        self.interval = interval
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_defer = max_defer
        self._clock = clock
        self._now = now
        self._busy = threading.Lock()  # one check at a time, whichever thread calls
        self._suspect = threading.Event()  # the engine saw a serving model fail: look now
        self._next_check = clock() + interval
        self._retry_at = 0.0  # no earlier check than this while backing off
        self._failures = 0  # consecutive failed checks (unreachable agent or failed reload)
        self._deferred: tuple[tuple[str, int, Step], float, bool] | None = None  # job step, since, warned
        self.reloads = 0
        self.models_reloaded = 0
        self.last_reload_at: float | None = None
        self.last_report: StartupReport | None = None
        self.last_error: str | None = None

    def notice(self, identifier: str) -> None:
        """A Predict on `identifier`, which the roster says serves, found it missing or the agent away.

        Cheap and non-blocking (the inference engine calls it on every failing frame): the next
        `check()` looks at once, unless it is backing off from an unreachable agent.
        """
        if not self._suspect.is_set():
            log.debug("serving model failed in the agent; checking it", extra=fields(model=identifier))
            self._suspect.set()

    def check(self) -> bool:
        """Look at the agent if a check is due, reload what it lost; True when models were reloaded."""
        now = self._clock()
        due = now >= self._next_check or (self._suspect.is_set() and now >= self._retry_at)
        if not due or not self._busy.acquire(blocking=False):
            return False
        try:
            return self._check(now)
        except Exception as exc:  # a bug: logged and retried; the inference thread must survive it
            log.exception("agent check failed unexpectedly")
            self._failed(f"{type(exc).__name__}: {exc}", now)
            return False
        finally:
            self._busy.release()

    def snapshot(self) -> dict[str, Any]:
        """For the device's status view."""
        return {
            "reloads": self.reloads,
            "last_reload_at": self.last_reload_at,
            "last_error": self.last_error,
        }

    # -- one check (on the caller's thread, under `_busy`) ------------------------------------

    def _check(self, now: float) -> bool:
        job = self._journal.current
        if job is not None and job.step in AGENT_STEPS and self._defer(job, now):
            self._retry_at = self._next_check = now + min(self.interval, _BUSY_RECHECK)
            return False
        self._suspect.clear()  # cleared before looking: a failure seen from here on asks again
        wanted = {model.identifier for model in self._roster.all()}
        if not wanted:
            self._succeeded(now)
            return False
        quiet = self._failures > 0  # a retry: its outage or problem was logged on the first attempt
        try:
            loaded = {model.name for model in self._client.list_models()}
            missing = sorted(wanted - loaded)
            if not missing:
                self._succeeded(now)
                return False
            (log.debug if quiet else log.warning)(
                "the Edge Agent lost models this device serves (restarted?); reloading them",
                extra=fields(missing=missing),
            )
            scratch = ModelRoster(self._roster.mappings)  # the live roster is the OTA's (module docstring)
            report = restore_models(self._client, self._config_file.load(), self._layout, scratch, job)
        except AgentUnavailableError as exc:
            self._failed(f"the Edge Agent is unreachable: {exc}", now)
            return False
        except EdgesimError as exc:
            self._failed(f"checking the Edge Agent's models failed: {exc}", now)
            return False
        return self._reloaded(report, now)

    def _defer(self, job: JobState, now: float) -> bool:
        """Whether to stand aside for `job`'s step: yes, unless it has been at that step for `max_defer`."""
        key = (job.job_id, job.execution_number, job.step)
        if self._deferred is None or self._deferred[0] != key:
            self._deferred = (key, now, False)
        _, since, warned = self._deferred
        if now - since < self.max_defer:
            return True
        if not warned:
            self._deferred = (key, since, True)
            log.warning(
                "an OTA job has stayed at one step too long; checking the agent's models anyway",
                extra=fields(job_id=job.job_id, step=str(job.step), waited_s=round(now - since, 1)),
            )
        return False

    def _reloaded(self, report: StartupReport, now: float) -> bool:
        self.last_report = report
        if report.loaded:
            self.reloads += 1
            self.models_reloaded += len(report.loaded)
            self.last_reload_at = self._now()
            log.info("models reloaded into the Edge Agent", extra=fields(loaded=report.loaded, reloads=self.reloads))
        if report.problems:  # restore_models has logged each one; retried after a backoff
            self._failed("models not reloaded: " + "; ".join(report.problems), now)
        else:
            self._succeeded(now)
        return bool(report.loaded)

    def _succeeded(self, now: float) -> None:
        if self._failures:
            log.info("the Edge Agent holds the serving models again", extra=fields(after_failures=self._failures))
        self._failures = 0
        self.last_error = None
        self._retry_at = now
        self._next_check = now + self.interval

    def _failed(self, error: str, now: float) -> None:
        """Count the failure and check again after the backoff (a notice does not cut it short)."""
        self._failures += 1
        backoff = min(self.max_backoff, self.initial_backoff * 2 ** min(self._failures - 1, 16))
        self._retry_at = self._next_check = now + backoff
        self.last_error = error
        log_at = log.warning if self._failures == 1 else log.debug  # once per outage, not once per retry
        log_at("agent check failed; will retry", extra=fields(error=error, failures=self._failures, in_s=backoff))
