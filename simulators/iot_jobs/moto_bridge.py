"""MotoJobsBridge: moto's IoT control plane and the jobs data plane, kept in agreement.

The data plane (`JobsDataPlane`) owns the execution state machine; moto is the registry boto3
talks to (in-process `mock_aws` or the moto server: both keep their state in this process's
`moto.iot.models.iot_backends`, which is what the bridge reads and writes).

- moto -> plane, by polling (a daemon thread, every `poll_interval` seconds of wall time) and by
  `sync()`: things and thing groups become the plane's, and so do membership changes (a CONTINUOUS
  job then reaches a thing added to its group); a job created through boto3 becomes
  `plane.create_job(JobSpec(...))` from what moto stored (targets, document, targetSelection,
  rollout/abort/timeout/retry configs); CancelJob (moto keeps force, comment and reasonCode) becomes
  `plane.cancel_job`, CancelJobExecution `plane.cancel_job_execution`, DeleteJob and
  DeleteJobExecution the plane's deletes. `watch(client)` makes a boto3 IoT client sync right after
  each of its mutating calls, so its caller sees the result at once; other clients (the AWS CLI, a
  process of their own) wait for the next poll.
- plane -> moto, as the plane's observer (`MotoMirror`, moto_mirror.py): every StateChange is
  written into moto's objects (moto_objects.py says which fields), so DescribeJobExecution,
  ListJobExecutionsForJob/ForThing and DescribeJob through boto3 show the plane's state. moto's own
  executions of a bridged job, one per target ARN (a group's name, or a thing the rollout has not
  reached yet), are removed: the list shows the things the plane has executions for. A job created
  in the plane directly gets a moto job too.

Thread safety: every change to moto's backend and to the bridge's records happens under one lock;
the plane is never called while that lock is held (the observer runs outside the plane's lock).

Limits:
- Latency: a change made by an unwatched client reaches the plane within one poll interval.
- A boto3 call succeeds as moto decides, before the plane sees it. When the plane then refuses it,
  moto is put back and the refusal is logged and kept in `errors`: a CreateJob the plane finds
  invalid (AWS would answer InvalidRequestException) leaves the job CANCELED with reasonCode
  `EDGESIM_REFUSED` and the reason as its comment; a CreateJob reusing a job id (AWS answers
  ResourceAlreadyExistsException; moto overwrites the job) is undone; a CancelJob of a COMPLETED job
  or a CancelJobExecution of a terminal execution (moto allows both) is undone.
- moto checks CancelJobExecution against the state the bridge last wrote; a change the device made
  in between is the plane's to arbitrate (the cancel is refused, then undone as above).
- Group membership flows from moto to the plane only; jobs with `documentSource` are refused; the
  fields moto cannot represent are listed in moto_objects.py.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from simulators.iot_jobs.dataplane import JobsDataPlane
from simulators.iot_jobs.moto_mirror import BridgedJob, MotoMirror
from simulators.iot_jobs.moto_objects import shows, snapshot, spec_of
from simulators.iot_jobs.records import CANCELED, StateChange
from system.errors import JobsError

if TYPE_CHECKING:
    from simulators.moto_env import MotoEnvironment

log = logging.getLogger(__name__)

# The IoT operations after which a watched client syncs at once (botocore operation names).
MUTATIONS = (
    "CreateJob",
    "CancelJob",
    "CancelJobExecution",
    "DeleteJob",
    "DeleteJobExecution",
    "CreateThing",
    "CreateThingGroup",
    "DeleteThingGroup",
    "AddThingToThingGroup",
    "RemoveThingFromThingGroup",
    "UpdateThingGroupsForThing",
)
REFUSED = "EDGESIM_REFUSED"  # reasonCode of a job the plane refused


class MotoJobsBridge:
    """See the module docstring. `start()` begins polling; `stop()` (or the context manager) ends it."""

    def __init__(self, plane: JobsDataPlane, moto: MotoEnvironment, *, poll_interval: float = 0.2) -> None:
        """Give the plane `observer=bridge.observe` (see SimulatedCloud); moto must be started."""
        self.plane = plane
        self.moto = moto
        self.poll_interval = poll_interval
        # moto.account_id may call STS: asked once, here, never under the mirror's lock
        self._mirror = MotoMirror(plane, account_id=moto.account_id, region=moto.region)
        self._lock = self._mirror.lock  # moto's backend objects and the mirror's records
        self._jobs = self._mirror.jobs
        self._sync_lock = threading.Lock()  # one sync at a time
        self._things: set[str] = set()
        self._groups: set[str] = set()
        self._membership: set[tuple[str, str]] = set()  # (group, thing)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> MotoJobsBridge:
        """Sync once, then poll on a daemon thread."""
        if self._thread is not None:
            return self
        self.sync()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._poll, name="moto-jobs-bridge", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """Whether the poller thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        self._wake.set()
        thread.join(timeout)

    def __enter__(self) -> MotoJobsBridge:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def errors(self) -> list[str]:
        """What the bridge could not apply, oldest first (each also logged as a warning)."""
        errors: list[str] = self._mirror.errors
        return errors

    def observe(self, change: StateChange) -> None:
        """The plane's observer (pass it as `observer=`): writes one change into moto."""
        self._mirror.observe(change)

    def wake(self) -> None:
        """Poll now instead of at the end of the interval."""
        self._wake.set()

    def watch(self, client: Any) -> Any:
        """Make a boto3 IoT client sync right after each mutating call; returns the client."""
        for operation in MUTATIONS:
            client.meta.events.register(f"after-call.iot.{operation}", self._after_call)
        return client

    def _after_call(self, **_: Any) -> None:
        try:
            self.sync()
        except Exception:  # the caller's boto3 call succeeded; the poller retries the sync
            log.exception("moto jobs bridge: sync after a boto3 call failed")

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                self.sync()
            except Exception:  # the poller must survive (moto restarting, a bug): log and go on
                log.exception("moto jobs bridge: sync failed")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # -- moto -> plane -------------------------------------------------------------------------

    def sync(self) -> None:
        """Apply to the plane what boto3 changed in moto since the last sync."""
        with self._sync_lock:
            backend = self._mirror.backend()
            self._sync_registry(backend)
            self._sync_jobs(backend)
            self._sync_executions(backend)

    def _sync_registry(self, backend: Any) -> None:
        things = {thing.thing_name for _, thing in snapshot(backend.things)}
        groups = {g.thing_group_name: g for _, g in snapshot(backend.thing_groups)}
        membership = {(name, t.thing_name) for name, g in groups.items() for _, t in snapshot(g.things)}
        for thing in sorted(things - self._things):
            self._apply(f"register thing {thing}", partial(self.plane.create_thing, thing))
        for group in sorted(set(groups) - self._groups):
            self._apply(f"register thing group {group}", partial(self.plane.create_thing_group, group))
        for group, thing in sorted(membership - self._membership):
            self._apply(f"add {thing} to {group}", partial(self.plane.add_thing_to_group, thing, group))
        for group, thing in sorted(self._membership - membership):
            self._apply(f"remove {thing} from {group}", partial(self.plane.remove_thing_from_group, thing, group))
        self._things |= things
        self._groups |= set(groups)
        self._membership = membership

    def _sync_jobs(self, backend: Any) -> None:
        created: list[tuple[str, Any]] = []
        canceled: list[tuple[str, Any]] = []
        with self._lock:  # the snapshot too: a job the mirror adopts meanwhile is not a deleted one
            moto_jobs = dict(snapshot(backend.jobs))
            for job_id, job in moto_jobs.items():
                bridged = self._jobs.get(job_id)
                if bridged is None:
                    self._jobs[job_id] = BridgedJob(job, job.status, bool(job.force))
                    created.append((job_id, job))
                elif job is not bridged.job:
                    backend.jobs[job_id] = bridged.job
                    self._mirror.report(f"CreateJob {job_id}: the job already exists (moto overwrote it; restored)")
                elif (
                    job.status == CANCELED
                    and not bridged.refused
                    and (bridged.status != CANCELED or (bool(job.force) and not bridged.force))
                ):
                    canceled.append((job_id, job))  # CancelJob, or CancelJob with force of a canceled job
            gone = [job_id for job_id in self._jobs if job_id not in moto_jobs]
        for job_id, job in created:
            self._create(backend, job_id, job)
        for job_id, job in canceled:
            self._cancel(job_id, job)
        for job_id in gone:
            self._delete(backend, job_id)

    def _create(self, backend: Any, job_id: str, job: Any) -> None:
        canceled_already = job.status == CANCELED  # CreateJob and CancelJob both before this sync
        try:
            self.plane.create_job(spec_of(job))
        except JobsError as exc:
            self._mirror.report(f"CreateJob {job_id} refused: {exc.code} {exc}")
            with self._lock:
                bridged = self._jobs[job_id]
                bridged.refused = True
                job.status = bridged.status = CANCELED
                job.reason_code, job.comment = REFUSED, f"refused by edgesim: {exc.code} {exc}"[:2028]
                for key in [k for k, _ in snapshot(backend.job_executions) if k[0] == job_id]:
                    backend.job_executions.pop(key, None)
            return
        if canceled_already:
            self._cancel(job_id, job)

    def _cancel(self, job_id: str, job: Any) -> None:
        try:
            self.plane.cancel_job(job_id, force=bool(job.force), comment=job.comment, reason_code=job.reason_code)
        except JobsError as exc:
            self._mirror.report(f"CancelJob {job_id} refused: {exc.code} {exc} (moto's change undone)")
        self._mirror.refresh_job(job_id, force=True)

    def _delete(self, backend: Any, job_id: str) -> None:
        try:
            self.plane.delete_job(job_id, force=True)  # moto already enforced `force` for IN_PROGRESS
        except JobsError as exc:
            if exc.code != "ResourceNotFoundException":
                self._mirror.report(f"DeleteJob {job_id}: {exc.code} {exc}")
        with self._lock:
            self._jobs.pop(job_id, None)
            for key in [k for k, _ in snapshot(backend.job_executions) if k[0] == job_id]:
                backend.job_executions.pop(key, None)  # moto's DeleteJob leaves them behind

    def _sync_executions(self, backend: Any) -> None:
        canceled: list[tuple[str, str, bool]] = []
        deleted: list[tuple[str, str, int]] = []
        restore: list[tuple[str, str]] = []
        with self._lock:  # the snapshot too: an execution the mirror writes meanwhile is not a deleted one
            present: dict[str, dict[str, Any]] = {}
            for (job_id, thing), execution in snapshot(backend.job_executions):
                present.setdefault(job_id, {})[thing] = execution
            for job_id, bridged in self._jobs.items():
                if bridged.refused:
                    continue
                executions = present.get(job_id, {})
                for thing, execution in executions.items():
                    written = bridged.executions.get(thing)
                    if written is None:
                        # One of moto's own (a group's name, a thing the rollout has not reached):
                        # the plane's executions are the ones boto3 should list.
                        backend.job_executions.pop((job_id, thing), None)
                    elif execution is not written.obj:
                        restore.append((job_id, thing))
                    elif not shows(execution, written.fields):
                        if execution.status == CANCELED and written.fields.status != CANCELED:
                            canceled.append((job_id, thing, bool(execution.force_canceled)))
                        else:
                            restore.append((job_id, thing))
                for thing, written in bridged.executions.items():
                    if thing not in executions:
                        deleted.append((job_id, thing, written.fields.execution_number))
        for job_id, thing, force in canceled:
            self._apply(
                f"CancelJobExecution {job_id} on {thing}",
                partial(self.plane.cancel_job_execution, job_id, thing, force=force),
            )
            restore.append((job_id, thing))
        for job_id, thing, number in deleted:
            self._apply(
                f"DeleteJobExecution {job_id} on {thing}",
                partial(self.plane.delete_job_execution, job_id, thing, number, force=True),
            )
            restore.append((job_id, thing))
        for job_id, thing in restore:
            self._mirror.restore_execution(job_id, thing)

    # -- helpers -------------------------------------------------------------------------------

    def _apply(self, what: str, call: Callable[[], object]) -> bool:
        try:
            call()
        except JobsError as exc:
            self._mirror.report(f"{what} refused: {exc.code} {exc}")
            return False
        return True
