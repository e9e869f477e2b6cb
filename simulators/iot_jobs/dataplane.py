"""JobsDataPlane: the AWS IoT Jobs data plane simulator, ready to attach to a message transport.

Owns a `JobsModel` (state and rules), a `JobsProtocol` (topics and JSON) and the Clock timers that
drive rollout minutes and execution timeouts. Thread-safe: one lock guards the state; messages are
delivered outside it, in the order they were produced, so a callback may call back in (a device
that answers a `notify` by publishing `start-next` from inside the broker's delivery).

    plane = JobsDataPlane(clock, publish=broker_publish, reply=send_to_client)
    plane.create_job(JobSpec(job_id="ota-1", targets=[group_arn], document={...}))
    plane.handle("thing-1", "$aws/things/thing-1/jobs/start-next", b"{}")

Limits of this fake (reference/iot-jobs-mqtt.md has the behaviour it follows):
- Timeouts fire exactly at their deadline (AWS: up to 60 s late); a retry is queued at once.
- Rollout: the first minute's batch is notified at creation, then one batch per simulated minute;
  the exponential rate changes only at minute boundaries. No scheduling config, maintenance
  windows, job templates, concurrency limits, or `DELETION_IN_PROGRESS` (DeleteJob is immediate).
- Things and groups named in targets are created on the fly (AWS refuses unknown ones); no nested
  groups, dynamic groups or thing deletion.
- `${aws:iot:s3-presigned-url:URL}` placeholders are replaced only when a `signer` is given
  (documents are otherwise sent as stored); the signer decides what the URL looks like and for how long.
- RequestThrottled only with `rate_limit_per_second`; InternalError only when injected
  (`inject_error`) or if the simulator itself fails. No MQTT QoS concerns: delivery is the
  transport's job, and on a plain broker replies reach subscribers of the reply topic, not only
  the requester (the `local` profile's limit, DESIGN.md §3.2).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from simulators.iot_jobs.configs import Signer
from simulators.iot_jobs.model import JobsModel
from simulators.iot_jobs.protocol import JobsProtocol, Outgoing
from simulators.iot_jobs.records import Behaviour, Outcome, StateChange
from system.ports import Clock, JobSpec, Timer

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]
"""Broadcast a message (topic, payload) to every subscriber."""
Reply = Callable[[str, str, bytes], None]
"""Send a reply (requester, topic, payload) to the requesting connection only."""
Observer = Callable[[StateChange], None]
"""Receives every execution and job change, in order (e.g. to mirror state into moto)."""


class JobsDataPlane:
    """The IoT Jobs MQTT API over a Clock, with control-plane calls for the cloud side."""

    def __init__(
        self,
        clock: Clock,
        *,
        publish: Publish,
        reply: Reply | None = None,
        observer: Observer | None = None,
        behaviour: Behaviour | None = None,
        signer: Signer | None = None,
        rate_limit_per_second: int | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        """`reply` None: replies are published like notifications (a plain broker has no other way)."""
        self.clock = clock
        self.model = JobsModel(clock, behaviour=behaviour, signer=signer, region=region, account=account)
        self.protocol = JobsProtocol(self.model, rate_limit_per_second=rate_limit_per_second)
        self._publish = publish
        self._reply = reply
        self._observer = observer
        self._lock = threading.Lock()
        self._outbox: deque[Outgoing | StateChange] = deque()
        self._draining = False
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self._generation = 0
        self._closed = False

    # -- the device side -----------------------------------------------------------------------

    def handle(self, thing_name: str, topic: str, payload: bytes) -> None:
        """A publish from a device (`thing_name` = the requester, who gets the reply)."""
        with self._lock:
            handled = self.protocol.process(thing_name, topic, payload)
            self._enqueue_changes(handled.changes)
            self._outbox.extend(handled.messages)
            self._reschedule()
        self._drain()

    def inject_error(self, code: str, times: int = 1) -> None:
        """Refuse the next `times` device requests with `code` (InternalError, RequestThrottled...)."""
        with self._lock:
            self.protocol.inject(code, times)

    # -- the control plane ---------------------------------------------------------------------

    def create_thing(self, thing: str) -> None:
        with self._lock:
            self.model.create_thing(thing)

    def create_thing_group(self, group: str) -> None:
        with self._lock:
            self.model.create_thing_group(group)

    def add_thing_to_group(self, thing: str, group: str) -> None:
        self._run(lambda: self.model.add_thing_to_group(thing, group))

    def remove_thing_from_group(self, thing: str, group: str) -> None:
        self._run(lambda: self.model.remove_thing_from_group(thing, group))

    def create_job(self, spec: JobSpec) -> dict[str, Any]:
        """CreateJob; returns {jobArn, jobId, description}. Raises JobsError like the service."""
        return self._run(lambda: self.model.create_job(spec))

    def cancel_job(
        self, job_id: str, *, force: bool = False, comment: str | None = None, reason_code: str | None = None
    ) -> dict[str, Any]:
        return self._run(lambda: self.model.cancel_job(job_id, force=force, comment=comment, reason_code=reason_code))

    def cancel_job_execution(
        self,
        job_id: str,
        thing: str,
        *,
        force: bool = False,
        expected_version: int | None = None,
        status_details: Mapping[str, str] | None = None,
    ) -> None:
        self._run(
            lambda: self.model.cancel_job_execution(
                job_id, thing, force=force, expected_version=expected_version, status_details=status_details
            )
        )

    def delete_job_execution(self, job_id: str, thing: str, execution_number: int, *, force: bool = False) -> None:
        self._run(lambda: self.model.delete_job_execution(job_id, thing, execution_number, force=force))

    def delete_job(self, job_id: str, *, force: bool = False) -> None:
        self._run(lambda: self.model.delete_job(job_id, force=force))

    def describe_job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self.model.describe_job(job_id)

    def get_job_document(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return self.model.get_job_document(job_id)

    def list_job_executions_for_job(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self.model.list_job_executions_for_job(job_id, status)

    def list_job_executions_for_thing(self, thing: str, status: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self.model.list_job_executions_for_thing(thing, status)

    def describe_job_execution(self, job_id: str, thing: str, execution_number: int | None = None) -> dict[str, Any]:
        with self._lock:
            return self.model.describe_job_execution(job_id, thing, execution_number)

    def reset(self) -> None:
        """Forget all state and cancel the pending timer."""
        with self._lock:
            self.model.reset()
            self._reschedule()

    def close(self) -> None:
        """Cancel the pending timer; no timer fires or is scheduled afterwards."""
        with self._lock:
            self._closed = True
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._timer_at = None

    # -- internals -----------------------------------------------------------------------------

    def _run(self, operation: Callable[[], Outcome]) -> dict[str, Any]:
        with self._lock:
            outcome = operation()
            self._enqueue_changes(outcome.changes)
            self._outbox.extend(JobsProtocol.broadcasts(outcome.notifications))
            self._reschedule()
        self._drain()
        return outcome.reply

    def _enqueue_changes(self, changes: list[StateChange]) -> None:
        """Queue state changes for the observer AHEAD of the messages they caused: whoever hears a
        reply or a notification then finds the control plane (moto, through the bridge) agreeing."""
        if self._observer is not None:
            self._outbox.extend(changes)

    def _reschedule(self) -> None:
        """Keep exactly one Clock timer, at the model's next wake-up (must hold the lock)."""
        wake = None if self._closed else self.model.next_wakeup()
        if wake == self._timer_at and (wake is None or self._timer is not None):
            return
        self._generation += 1
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        if wake is not None:
            generation = self._generation
            self._timer_at = wake
            self._timer = self.clock.call_later(max(0.0, wake - self.clock.now()), lambda: self._fire(generation))

    def _fire(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # a timer cancelled too late (a wall clock thread) or replaced
            self._timer = self._timer_at = None
            outcome = self.model.advance()
            self._enqueue_changes(outcome.changes)
            self._outbox.extend(JobsProtocol.broadcasts(outcome.notifications))
            self._reschedule()
        self._drain()

    def _drain(self) -> None:
        """Deliver queued messages in order; a nested or concurrent call leaves them to the drainer."""
        with self._lock:
            if self._draining:
                return
            self._draining = True
        try:
            while True:
                with self._lock:
                    if not self._outbox:
                        self._draining = False
                        return
                    item = self._outbox.popleft()
                self._deliver(item)
        except BaseException:
            with self._lock:
                self._draining = False
            raise

    def _deliver(self, item: Outgoing | StateChange) -> None:
        try:
            if isinstance(item, StateChange):
                if self._observer is not None:
                    self._observer(item)
            elif item.reply_to is not None and self._reply is not None:
                self._reply(item.reply_to, item.topic, item.payload)
            else:
                self._publish(item.topic, item.payload)
        except Exception:  # one failed delivery must not stop the others: log it and go on
            log.exception("IoT Jobs delivery failed", extra={"fields": {"item": repr(item)[:200]}})
