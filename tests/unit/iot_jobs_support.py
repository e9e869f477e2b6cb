"""Shared helpers of the IoT Jobs simulator tests: a virtual clock, a recording transport, factories."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from simulators.clock import VirtualClock
from simulators.iot_jobs import JobsDataPlane, StateChange
from system.ports import JobSpec

START = 1_700_000_000.0
REGION_ACCOUNT = "arn:aws:iot:us-east-1:123456789012"


def make_clock() -> VirtualClock:
    return VirtualClock(START)


def thing_arn(name: str) -> str:
    return f"{REGION_ACCOUNT}:thing/{name}"


def group_arn(name: str) -> str:
    return f"{REGION_ACCOUNT}:thinggroup/{name}"


def topic(thing: str, suffix: str) -> str:
    return f"$aws/things/{thing}/jobs/{suffix}"


@dataclass
class Rig:
    """A JobsDataPlane wired to lists: replies, broadcasts, observer changes."""

    clock: VirtualClock = field(default_factory=make_clock)
    options: dict[str, Any] = field(default_factory=dict)
    replies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    broadcasts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    changes: list[StateChange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.plane = JobsDataPlane(
            self.clock,
            publish=lambda t, p: self.broadcasts.append((t, json.loads(p))),
            reply=lambda who, t, p: self.replies.append((who, t, json.loads(p))),
            observer=self.changes.append,
            **self.options,
        )

    def send(
        self, thing: str, suffix: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Publish a request as `thing`; returns the (topic, payload) of its reply."""
        payload = raw if raw is not None else json.dumps({} if body is None else body).encode()
        before = len(self.replies)
        self.plane.handle(thing, topic(thing, suffix), payload)
        assert len(self.replies) == before + 1, "exactly one reply per request"
        _, reply_topic, reply = self.replies[-1]
        return reply_topic, reply

    def job(self, job_id: str, things: Iterable[str] = (), groups: Iterable[str] = (), **spec: Any) -> dict[str, Any]:
        targets = [thing_arn(t) for t in things] + [group_arn(g) for g in groups]
        document = spec.pop("document", {"type": "new_model", "model_name": "m", "model_version": "2"})
        return self.plane.create_job(JobSpec(job_id=job_id, targets=targets, document=document, **spec))

    def notes(self, thing: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Broadcast payloads, filtered by thing and by kind ("notify" / "notify-next")."""
        out = []
        for t, payload in self.broadcasts:
            parts = t.split("/")
            if (thing is None or parts[2] == thing) and (kind is None or parts[-1] == kind):
                out.append(payload)
        return out

    def clear(self) -> None:
        self.broadcasts.clear()
        self.replies.clear()
