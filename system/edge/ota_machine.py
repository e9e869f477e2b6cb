"""The OTA job state machine: pure, no I/O. `OtaDriver` (ota_driver.py) does the I/O it asks for.

A job is a `JobState`; the driver runs the step `state.step` names, then asks `advance` for the
next state with the step's result. The state is journaled after every transition, so a restart
continues from it (`after_restart`). The steps, in order:

    DOWNLOAD -> VERIFY -> EXTRACT -> LOAD -> HEALTH_CHECK -> SWITCH -> UNLOAD_OLD -> REPORT -> DONE

Any failure before SWITCH completes goes to ROLLBACK (unload the new model, remove its files; the
old model never stopped serving), then REPORT with FAILED and the reason. `begin` decides
REJECTED before anything is downloaded: an unusable document, a model this device does not
serve, a version not newer than the serving one, an agent too old, an unsigned package where
signatures are required. This is what the seed got wrong (seed-behaviours.md section 2): it
reported SUCCEEDED before loading anything and never REJECTED.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from system.edge.job_document import JobDocumentError, ModelUpdate, parse_job_document
from system.edge.versions import Version
from system.errors import JobsError


class Step(enum.StrEnum):
    DOWNLOAD = "download"
    VERIFY = "verify"
    EXTRACT = "extract"
    LOAD = "load"
    HEALTH_CHECK = "health_check"
    SWITCH = "switch"  # the roster and models_config.json name the new model
    UNLOAD_OLD = "unload_old"
    ROLLBACK = "rollback"
    REPORT = "report"  # send the terminal status
    DONE = "done"


class Outcome(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"


# Steps whose failure rolls back: until SWITCH has completed, the old model is what serves.
_BEFORE_SWITCH = (Step.DOWNLOAD, Step.VERIFY, Step.EXTRACT, Step.LOAD, Step.HEALTH_CHECK, Step.SWITCH)
_NEXT = {
    Step.DOWNLOAD: Step.VERIFY,
    Step.VERIFY: Step.EXTRACT,
    Step.EXTRACT: Step.LOAD,
    Step.LOAD: Step.HEALTH_CHECK,
    Step.HEALTH_CHECK: Step.SWITCH,
    Step.SWITCH: Step.UNLOAD_OLD,
}
_FAILURE_PREFIX = {
    Step.DOWNLOAD: "download failed",
    Step.VERIFY: "package verification failed",
    Step.EXTRACT: "package extraction failed",
    Step.LOAD: "the agent could not load the model",
    Step.HEALTH_CHECK: "health check failed",
    Step.SWITCH: "switching to the new model failed",
}
# Where a step interrupted by a crash starts again. The agent may have restarted with the device,
# so anything from LOAD to SWITCH loads again (the LOAD step is idempotent) before switching.
_RESUME_AT = {
    Step.DOWNLOAD: Step.DOWNLOAD,  # the partial file is kept: a ranged request fetches the rest
    Step.VERIFY: Step.VERIFY,
    Step.EXTRACT: Step.VERIFY,  # re-check the archive, then extract into a fresh folder
    Step.LOAD: Step.LOAD,
    Step.HEALTH_CHECK: Step.LOAD,
    Step.SWITCH: Step.LOAD,
    Step.UNLOAD_OLD: Step.UNLOAD_OLD,
    Step.ROLLBACK: Step.ROLLBACK,
    Step.REPORT: Step.REPORT,
    Step.DONE: Step.DONE,
}
MAX_INTERRUPTIONS = 3  # a job that keeps crashing the device (e.g. at LOAD) is rolled back


@dataclass(frozen=True)
class JobOffer:
    """A job execution as IoT Jobs hands it to the device (start-next or DescribeJobExecution)."""

    job_id: str
    execution_number: int
    status: str  # QUEUED or IN_PROGRESS when offered
    document: Mapping[str, Any]

    @classmethod
    def from_execution(cls, execution: Mapping[str, Any]) -> JobOffer:
        """The offer in a JobExecution payload; JobsError(code="InvalidExecution") when it cannot be read."""
        document = execution.get("jobDocument")
        job_id, number = execution.get("jobId"), execution.get("executionNumber", 1)
        if not isinstance(job_id, str) or not job_id or isinstance(number, bool) or not isinstance(number, int):
            raise JobsError(
                f"an execution without a usable jobId and executionNumber: {str(dict(execution))[:200]}",
                code="InvalidExecution",
            )
        return cls(
            job_id=job_id,
            execution_number=number,
            status=str(execution.get("status", "QUEUED")),
            document=document if isinstance(document, Mapping) else {},
        )


@dataclass(frozen=True)
class Serving:
    """What serves a model name when a job begins (from the roster)."""

    version: str
    identifier: str


@dataclass(frozen=True)
class Policy:
    """The device's rules for accepting a job."""

    supported_models: frozenset[str]
    agent_version: Version
    require_signature: bool = False


@dataclass(frozen=True)
class StepRecord:
    step: str
    at: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "at": self.at, "detail": self.detail}


@dataclass(frozen=True)
class JobState:
    """One job's progress: everything needed to continue it after a restart (the journal holds it)."""

    job_id: str
    execution_number: int
    document: Mapping[str, Any]
    step: Step
    started_at: float
    model_name: str = ""
    version: str = ""
    identifier: str = ""
    previous: Serving | None = None  # what served before; restored by ROLLBACK, unloaded by UNLOAD_OLD
    outcome: Outcome | None = None
    reason: str = ""  # why FAILED or REJECTED, or a warning on SUCCEEDED
    report: bool = True  # False when the cloud already ended the job (nothing to report)
    interruptions: int = 0
    history: tuple[StepRecord, ...] = field(default=())
    finished_at: float | None = None

    @property
    def update(self) -> ModelUpdate:
        """The parsed document (only for a job past `begin`, whose document parsed)."""
        return parse_job_document(self.document)

    @property
    def serving_new(self) -> bool:
        """Whether the new model has replaced the old one (SWITCH completed)."""
        return self.step in (Step.UNLOAD_OLD,) or self.outcome is Outcome.SUCCEEDED

    def status_details(self) -> dict[str, str]:
        """The job execution's statusDetails: at most 10 short string values (the AWS limits)."""
        details = {"step": str(self.step)}
        if self.model_name:
            details["model"] = self.model_name
        if self.version:
            details["version"] = self.version
        if self.identifier:
            details["identifier"] = self.identifier
        if self.outcome is not None:
            details["outcome"] = str(self.outcome)
        if self.reason:
            details["reason"] = _short(self.reason)
        if self.history:
            details["info"] = _short(self.history[-1].detail) or str(self.history[-1].step)
        return {key: value for key, value in details.items() if value}

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "execution_number": self.execution_number,
            "document": dict(self.document),
            "step": str(self.step),
            "started_at": self.started_at,
            "model_name": self.model_name,
            "version": self.version,
            "identifier": self.identifier,
            "previous": None if self.previous is None else vars(self.previous).copy(),
            "outcome": None if self.outcome is None else str(self.outcome),
            "reason": self.reason,
            "report": self.report,
            "interruptions": self.interruptions,
            "history": [record.to_dict() for record in self.history],
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> JobState:
        previous = raw.get("previous")
        outcome = raw.get("outcome")
        return cls(
            job_id=str(raw["job_id"]),
            execution_number=int(raw["execution_number"]),
            document=dict(raw.get("document") or {}),
            step=Step(raw["step"]),
            started_at=float(raw["started_at"]),
            model_name=str(raw.get("model_name", "")),
            version=str(raw.get("version", "")),
            identifier=str(raw.get("identifier", "")),
            previous=Serving(**previous) if isinstance(previous, Mapping) else None,
            outcome=Outcome(outcome) if outcome else None,
            reason=str(raw.get("reason", "")),
            report=bool(raw.get("report", True)),
            interruptions=int(raw.get("interruptions", 0)),
            history=tuple(StepRecord(str(h["step"]), float(h["at"]), str(h["detail"])) for h in raw.get("history", [])),
            finished_at=raw.get("finished_at"),
        )


def _short(text: str, limit: int = 1000) -> str:
    text = " ".join(text.split())  # statusDetails refuse control characters such as newlines
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _record(state: JobState, step: Step | str, at: float, detail: str) -> tuple[StepRecord, ...]:
    return (*state.history, StepRecord(str(step), at, detail))[-50:]


def _finish(state: JobState, outcome: Outcome, reason: str, now: float) -> JobState:
    return replace(
        state,
        step=Step.REPORT,
        outcome=outcome,
        reason=reason,
        history=_record(state, outcome.value.lower(), now, reason or outcome.value),
    )


def begin(offer: JobOffer, serving: Mapping[str, Serving], policy: Policy, now: float) -> JobState:
    """Accept or reject an offered job: the first state of its journal record."""
    state = JobState(offer.job_id, offer.execution_number, dict(offer.document), Step.DOWNLOAD, started_at=now)
    try:
        update = parse_job_document(offer.document)
    except JobDocumentError as exc:
        return _finish(state, Outcome.REJECTED, f"invalid job document: {exc}", now)
    state = replace(state, model_name=update.model_name, version=update.version.text, identifier=update.identifier)
    current = serving.get(update.model_name)
    state = replace(state, previous=current)
    if update.model_name not in policy.supported_models:
        supported = ", ".join(sorted(policy.supported_models)) or "none"
        return _finish(
            state,
            Outcome.REJECTED,
            f"model {update.model_name!r} is not served by this device (its models_config.json maps: {supported})",
            now,
        )
    if update.min_agent_version is not None and update.min_agent_version > policy.agent_version:
        return _finish(
            state,
            Outcome.REJECTED,
            f"the package needs agent {update.min_agent_version} or newer; this device runs {policy.agent_version}",
            now,
        )
    if policy.require_signature and update.signature is None:
        return _finish(
            state, Outcome.REJECTED, "this device only installs signed packages; the job has no signature", now
        )
    if current is not None and not update.version > Version.parse(current.version):
        return _finish(
            state,
            Outcome.REJECTED,
            f"version {update.version} of {update.model_name} is not newer than the serving version {current.version}",
            now,
        )
    return replace(state, history=_record(state, "accepted", now, f"installing {update.identifier}"))


def advance(state: JobState, ok: bool, detail: str, now: float) -> JobState:
    """The state after the step `state.step` finished (`ok`), with `detail` (the error when not ok)."""
    step = state.step
    history = _record(state, step, now, detail or ("ok" if ok else "failed"))
    state = replace(state, history=history)
    if step in _NEXT and ok:
        return replace(state, step=_NEXT[step])
    if step in _BEFORE_SWITCH:
        reason = f"{_FAILURE_PREFIX[step]}: {detail}" if detail else _FAILURE_PREFIX[step]
        return replace(state, step=Step.ROLLBACK, outcome=Outcome.FAILED, reason=reason)
    if step is Step.UNLOAD_OLD:
        warning = "" if ok else f"the new model serves, but unloading the previous one failed: {detail}"
        return replace(state, step=Step.REPORT, outcome=Outcome.SUCCEEDED, reason=warning)
    if step is Step.ROLLBACK:
        reason = state.reason if ok else f"{state.reason}; rollback incomplete: {detail}"
        return replace(state, step=Step.REPORT, outcome=state.outcome or Outcome.FAILED, reason=reason)
    if step is Step.REPORT:
        return replace(state, step=Step.DONE, finished_at=now)
    raise ValueError(f"no transition from step {step} (ok={ok})")


def after_restart(state: JobState, now: float) -> JobState:
    """Where an interrupted job continues when the device starts again."""
    if state.step is Step.DONE:
        return state
    interruptions = state.interruptions + 1
    state = replace(state, interruptions=interruptions)
    if state.step in _BEFORE_SWITCH and interruptions > MAX_INTERRUPTIONS:
        reason = f"interrupted {interruptions} times during {state.step}; giving up to keep the device stable"
        return replace(
            state,
            step=Step.ROLLBACK,
            outcome=Outcome.FAILED,
            reason=reason,
            history=_record(state, "restart", now, reason),
        )
    resume = _RESUME_AT[state.step]
    return replace(state, step=resume, history=_record(state, "restart", now, f"resuming at {resume}"))


def ended_in_cloud(state: JobState, cloud_status: str, now: float) -> JobState:
    """The cloud ended the job (canceled, timed out, removed...) while the device worked on it.

    Nothing is reported (an update would be refused). Before the switch the new model is rolled
    back; after it, the new model is healthy and serving and stays.
    """
    detail = f"the job ended in the cloud as {cloud_status}"
    if state.step in _BEFORE_SWITCH:
        return replace(
            state,
            step=Step.ROLLBACK,
            outcome=Outcome.FAILED,
            reason=detail,
            report=False,
            history=_record(state, "cloud", now, detail),
        )
    return replace(state, report=False, history=_record(state, "cloud", now, detail))
