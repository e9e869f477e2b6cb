"""AsyncJobsClient against the simulated broker and the IoT Jobs data plane, on a virtual clock.

No moto here: a `SimulatedBroker` with the plane attached (`BrokerJobsFrontend`), as the fake
cloud wires them, and a thing's `InMemoryMessageBus`. Replies and timeouts are clock callbacks, so
every test says exactly when each callback runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from simulators.broker import InMemoryMessageBus, SimulatedBroker
from simulators.clock import VirtualClock
from simulators.fleet.jobs_requests import AsyncJobsClient
from simulators.iot_jobs.frontends import BrokerJobsFrontend
from system.edge.jobs_messages import Reply
from system.errors import JobsError
from system.ports import JobSpec

TIMEOUT = 10.0


@dataclass
class Replies:
    """A `done` callback that records each reply with the clock time it came at."""

    clock: VirtualClock
    got: list[tuple[float, Reply]] = field(default_factory=list)

    def __call__(self, reply: Reply) -> None:
        self.got.append((self.clock.now(), reply))

    def only(self) -> Reply:
        assert len(self.got) == 1, f"expected exactly one callback, got {self.got}"
        return self.got[0][1]

    def error(self) -> JobsError:
        reply = self.only()
        assert isinstance(reply, JobsError), f"expected a JobsError, got {reply}"
        return reply

    def accepted(self) -> dict[str, Any]:
        reply = self.only()
        assert not isinstance(reply, JobsError), f"expected an accepted reply, got {reply}"
        return reply


@dataclass
class Rig:
    thing: str
    clock: VirtualClock
    broker: SimulatedBroker
    frontend: BrokerJobsFrontend
    bus: InMemoryMessageBus
    client: AsyncJobsClient
    notified: list[dict[str, Any]]

    def create_job(self, job_id: str, version: str = "2") -> None:
        document = {
            "type": "new_model",
            "model_name": "img-classification",
            "model_version": version,
            "model_package_bucket": "edgesim-bucket",
            "model_package_key": f"m/ic-{version}.tar.gz",
        }
        arn = f"arn:aws:iot:us-east-1:123456789012:thing/{self.thing}"
        self.frontend.plane.create_job(JobSpec(job_id=job_id, targets=[arn], document=document))

    def replies(self) -> Replies:
        return Replies(self.clock)

    def settle(self) -> None:
        """Let every delivery due now run (replies come on clock callbacks, even without latency)."""
        self.clock.advance(0)

    def topic(self, suffix: str) -> str:
        return f"$aws/things/{self.thing}/jobs/{suffix}"


@pytest.fixture
def rig() -> Iterator[Rig]:
    thing = f"light-{uuid.uuid4().hex[:8]}"
    clock = VirtualClock()
    broker = SimulatedBroker(clock=clock)
    frontend = BrokerJobsFrontend(broker, clock)
    bus = InMemoryMessageBus(broker, thing)
    notified: list[dict[str, Any]] = []
    client = AsyncJobsClient(bus, thing, clock, timeout=TIMEOUT, on_notify_next=notified.append)
    bus.connect()
    clock.advance(0)
    try:
        yield Rig(thing, clock, broker, frontend, bus, client, notified)
    finally:
        client.close()
        bus.close()
        frontend.close()
        broker.close()
    assert bus.handlers.errors == [], "a handler of the client raised"


def test_start_next_without_a_pending_job_has_no_execution(rig: Rig) -> None:
    replies = rig.replies()
    rig.client.start_next(replies)
    assert replies.got == []  # nothing before the clock moves: the reply is a delivery
    rig.settle()
    accepted = replies.accepted()
    assert "execution" not in accepted
    assert isinstance(accepted.get("timestamp"), int)


def test_start_next_returns_the_execution_in_progress_with_its_document(rig: Rig) -> None:
    rig.create_job("j1")
    rig.settle()
    assert [note["execution"]["jobId"] for note in rig.notified] == ["j1"]  # notify-next reached the client
    replies = rig.replies()
    rig.client.start_next(replies, status_details={"step": "received"}, step_timeout_minutes=5)
    rig.settle()
    execution = replies.accepted()["execution"]
    assert (execution["jobId"], execution["status"], execution["executionNumber"]) == ("j1", "IN_PROGRESS", 1)
    assert execution["jobDocument"]["model_version"] == "2"
    assert execution["statusDetails"] == {"step": "received"}


def test_describe_returns_the_execution_and_an_unknown_job_is_resource_not_found(rig: Rig) -> None:
    rig.create_job("j1")
    found, missing = rig.replies(), rig.replies()
    rig.client.describe("j1", found, execution_number=1)
    rig.client.describe("no-such-job", missing)
    rig.settle()
    execution = found.accepted()["execution"]
    assert (execution["jobId"], execution["status"]) == ("j1", "QUEUED")
    assert execution["jobDocument"]["model_name"] == "img-classification"
    assert missing.error().code == "ResourceNotFound"


def test_update_after_a_terminal_status_is_rejected_with_the_aws_code(rig: Rig) -> None:
    rig.create_job("j1")
    started, succeeded, again = rig.replies(), rig.replies(), rig.replies()
    rig.client.start_next(started)
    rig.settle()
    rig.client.update("j1", "SUCCEEDED", succeeded, status_details={"outcome": "SUCCEEDED"}, execution_number=1)
    rig.settle()
    assert succeeded.accepted()["executionState"]["status"] == "SUCCEEDED"
    rig.client.update("j1", "FAILED", again)
    rig.settle()
    error = again.error()
    assert error.code == "InvalidStateTransition"
    assert str(error).startswith("InvalidStateTransition")
    execution = rig.frontend.plane.describe_job_execution("j1", rig.thing)["execution"]
    assert execution["status"] == "SUCCEEDED"


def test_a_lost_reply_times_out_after_exactly_the_timeout(rig: Rig) -> None:
    rig.broker.faults.add(topic_filter=rig.topic("start-next/accepted"), drop_rate=1.0)
    replies = rig.replies()
    sent_at = rig.clock.now()
    rig.client.start_next(replies)
    rig.clock.advance(TIMEOUT - 0.001)
    assert replies.got == []
    rig.clock.advance(0.001)
    error = replies.error()
    assert error.code == "Timeout"
    assert replies.got[0][0] == pytest.approx(sent_at + TIMEOUT, abs=1e-9)
    rig.clock.advance(3 * TIMEOUT)
    assert len(replies.got) == 1


def test_a_reply_after_the_timeout_does_not_call_back_again(rig: Rig) -> None:
    rig.create_job("j1")
    rig.broker.faults.add(topic_filter=rig.topic("start-next/accepted"), latency=TIMEOUT + 5)
    replies = rig.replies()
    rig.client.start_next(replies)
    rig.clock.advance(TIMEOUT + 10)
    assert replies.error().code == "Timeout"
    late = [d for d in rig.broker.record.deliveries(rig.thing) if d.topic == rig.topic("start-next/accepted")]
    assert len(late) == 1, "the late reply did arrive (after the timeout)"
    assert len(replies.got) == 1
    # The request was served all the same: the plane started the execution.
    assert rig.frontend.plane.describe_job_execution("j1", rig.thing)["execution"]["status"] == "IN_PROGRESS"


def test_a_rejection_cancels_the_timeout(rig: Rig) -> None:
    replies = rig.replies()
    rig.client.update("no-such-job", "IN_PROGRESS", replies)
    rig.settle()
    assert replies.error().code == "ResourceNotFound"
    rig.clock.advance(2 * TIMEOUT)
    assert len(replies.got) == 1


def test_publishing_while_disconnected_fails_at_once_as_unavailable(rig: Rig) -> None:
    rig.broker.faults.partition([rig.thing], duration=60)
    assert not rig.bus.connected
    pending = rig.clock.pending
    replies = rig.replies()
    rig.client.start_next(replies)
    assert replies.error().code == "Unavailable"  # synchronously, before the clock moves
    assert rig.clock.pending == pending, "the timeout timer was cancelled"
    rig.clock.advance(2 * TIMEOUT)
    assert len(replies.got) == 1


def test_close_cancels_pending_timers_and_calls_nothing(rig: Rig) -> None:
    rig.broker.faults.add(topic_filter=rig.topic("#"), drop_rate=1.0)
    replies = rig.replies()
    before = rig.clock.pending
    rig.client.start_next(replies)
    rig.client.describe("j1", replies)
    rig.settle()  # the plane handles both requests; their replies are dropped
    assert rig.clock.pending == before + 2  # what is left: the two timeout timers
    rig.client.close()
    assert rig.clock.pending == before
    rig.clock.advance(3 * TIMEOUT)
    assert replies.got == []


def test_a_request_after_close_is_refused_without_publishing(rig: Rig) -> None:
    rig.client.close()
    published, timers = len(rig.broker.record.events), rig.clock.pending
    replies = rig.replies()
    rig.client.start_next(replies)
    assert replies.error().code == "Unavailable"
    assert len(rig.broker.record.events) == published  # nothing reached the broker
    assert rig.clock.pending == timers  # and no timeout timer was left behind


def test_concurrent_requests_each_get_their_own_reply(rig: Rig) -> None:
    rig.create_job("j1")
    rig.create_job("j2")
    first, second, missing = rig.replies(), rig.replies(), rig.replies()
    rig.client.describe("j2", second)
    rig.client.describe("j1", first)
    rig.client.describe("j3", missing)
    rig.settle()
    assert first.accepted()["execution"]["jobId"] == "j1"
    assert second.accepted()["execution"]["jobId"] == "j2"
    assert missing.error().code == "ResourceNotFound"
