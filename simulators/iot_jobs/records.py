"""The value types of the IoT Jobs simulator: statuses, executions, jobs, outcomes, errors.

Statuses and legal transitions follow reference/iot-jobs-mqtt.md §3; everything here is plain data
so that the model can be tested without MQTT, threads or timers.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from simulators.iot_jobs.configs import JobConfig
from system.errors import EdgesimError
from system.ports import JobSpec

QUEUED = "QUEUED"
IN_PROGRESS = "IN_PROGRESS"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
TIMED_OUT = "TIMED_OUT"
REJECTED = "REJECTED"
REMOVED = "REMOVED"
CANCELED = "CANCELED"

PENDING = frozenset({QUEUED, IN_PROGRESS})
TERMINAL = frozenset({SUCCEEDED, FAILED, TIMED_OUT, REJECTED, REMOVED, CANCELED})
# The statuses a device may ask for in UpdateJobExecution (§1.4).
DEVICE_STATUSES = frozenset({IN_PROGRESS, SUCCEEDED, FAILED, REJECTED})
# The outcomes that count as "executed" for abort criteria and jobProcessDetails (§6).
EXECUTED = frozenset({SUCCEEDED, FAILED, REJECTED, TIMED_OUT})

# §3.2: every (from, to) the simulator may perform; None = the execution did not exist.
LEGAL_TRANSITIONS: frozenset[tuple[str | None, str]] = frozenset(
    {(None, QUEUED)}
    | {(QUEUED, to) for to in (IN_PROGRESS, REJECTED, SUCCEEDED, FAILED, CANCELED, REMOVED)}
    | {(IN_PROGRESS, to) for to in (IN_PROGRESS, SUCCEEDED, FAILED, REJECTED, TIMED_OUT, CANCELED)}
)

# Job statuses as the control plane reports them.
JOB_IN_PROGRESS = "IN_PROGRESS"
JOB_COMPLETED = "COMPLETED"
JOB_CANCELED = "CANCELED"

# The error codes of §4, the only ones a rejected reply may carry.
ERROR_CODES = frozenset(
    {
        "InvalidTopic",
        "InvalidJson",
        "InvalidRequest",
        "InvalidStateTransition",
        "ResourceNotFound",
        "VersionMismatch",
        "InternalError",
        "RequestThrottled",
        "TerminalStateReached",
    }
)


class RequestRejected(EdgesimError):
    """A device request the service refuses: becomes an ErrorResponse on `<topic>/rejected`."""

    def __init__(self, code: str, message: str, execution_state: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.execution_state = execution_state


@dataclass(frozen=True)
class Behaviour:
    """Switches for the undocumented ([I]) choices of the reference."""

    # §4: describe-by-jobId of a terminal execution answers TerminalStateReached instead of accepted.
    terminal_state_reached: bool = False
    # §2: the live service omits thingName from JobExecution; set True to include it like the docs.
    include_thing_name: bool = False
    # §6: what minNumberOfExecutedThings counts (and the threshold's denominator): "completed"
    # executions (the guide) or "notified" things (the API model).
    abort_basis: Literal["completed", "notified"] = "completed"
    # §1.1 / §5.1: executions listed in get/accepted and notify.
    list_limit: int = 10


@dataclass(frozen=True)
class ExecutionView:
    """An immutable snapshot of one execution (what observers receive)."""

    job_id: str
    thing_name: str
    execution_number: int
    status: str
    status_details: MappingProxyType[str, str]
    version_number: int
    queued_at: int
    started_at: int | None
    last_updated_at: int
    force_canceled: bool
    retry_attempt: int
    timeout_at: float | None


@dataclass
class Execution:
    """One execution of a job on a thing; a retry is a new Execution with the next number."""

    job_id: str
    thing_name: str
    execution_number: int
    seq: int  # global creation order: the tie-breaker of §5.3
    queued_at: int
    last_updated_at: int
    status: str = QUEUED
    version_number: int = 1
    status_details: dict[str, str] = field(default_factory=dict)
    started_at: int | None = None
    force_canceled: bool = False
    retry_attempt: int = 0
    in_progress_deadline: float | None = None
    step_deadline: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.job_id, self.thing_name, self.execution_number)

    @property
    def deadline(self) -> float | None:
        """When the execution times out: the earlier of the step and in-progress bounds (§3.3)."""
        bounds = [d for d in (self.in_progress_deadline, self.step_deadline) if d is not None]
        return min(bounds) if bounds else None

    def state(self) -> dict[str, Any]:
        """JobExecutionState (§2): status, statusDetails (omitted while empty), versionNumber."""
        out: dict[str, Any] = {"status": self.status}
        if self.status_details:
            out["statusDetails"] = dict(self.status_details)
        out["versionNumber"] = self.version_number
        return out

    def view(self) -> ExecutionView:
        return ExecutionView(
            job_id=self.job_id,
            thing_name=self.thing_name,
            execution_number=self.execution_number,
            status=self.status,
            status_details=MappingProxyType(dict(self.status_details)),
            version_number=self.version_number,
            queued_at=self.queued_at,
            started_at=self.started_at,
            last_updated_at=self.last_updated_at,
            force_canceled=self.force_canceled,
            retry_attempt=self.retry_attempt,
            timeout_at=self.deadline,
        )


@dataclass
class Job:
    """A job and its rollout state."""

    job_id: str
    arn: str
    targets: tuple[str, ...]
    target_things: tuple[str, ...]  # thing names named directly by `targets`
    target_groups: tuple[str, ...]  # thing-group names named by `targets`
    document: dict[str, Any]
    target_selection: str
    description: str
    config: JobConfig
    created_at: float
    last_updated_at: float
    status: str = JOB_IN_PROGRESS
    completed_at: float | None = None
    force_canceled: bool = False
    reason_code: str | None = None
    comment: str | None = None
    rollout_queue: deque[str] = field(default_factory=deque)  # things not yet notified
    next_tick_at: float | None = None
    notified: int = 0  # things that got an execution through the rollout or a continuous join
    counts: Counter[str] = field(default_factory=Counter)  # executions (attempts) by status
    spec: JobSpec | None = None  # as created, for DescribeJob

    @property
    def continuous(self) -> bool:
        return self.target_selection == "CONTINUOUS"


@dataclass(frozen=True)
class Notification:
    """A `notify` or `notify-next` message for one thing (§5)."""

    thing_name: str
    kind: Literal["notify", "notify-next"]
    payload: dict[str, Any]


@dataclass(frozen=True)
class StateChange:
    """What an observer sees: an execution's new state, or a job-level change.

    Execution changes have `thing_name` and `execution` (its state after the change; with
    `deleted` True, its last state before DeleteJobExecution/DeleteJob removed it). Job-level
    changes have neither; `job_status` is then the job's new status, "DELETED" once it is gone.
    """

    job_id: str
    thing_name: str | None
    execution: ExecutionView | None
    job_status: str
    deleted: bool = False


@dataclass
class Outcome:
    """What an operation produced: its reply, the notifications to send, the state changes."""

    reply: dict[str, Any] = field(default_factory=dict)
    notifications: list[Notification] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)
