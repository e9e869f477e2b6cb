"""TrafficRecord: what happened on the simulated broker, in order, for tests to assert on.

Events are small immutable tuples of plain values (no live objects), so two runs compare with `==`:
with the same seed, the same `VirtualClock` and the same script, two brokers record equal events.
Times are the broker clock's epoch seconds.

Limits: the record keeps at most `max_events` events; past that it stops recording, sets
`overflowed` and logs one warning (a benchmark turns recording off instead).
"""

from __future__ import annotations

import logging
import threading
from typing import NamedTuple

log = logging.getLogger(__name__)

BROKER = "$broker"  # the client id recorded for what the broker itself publishes (wills, deliver_to)


class Connected(NamedTuple):
    time: float
    client_id: str
    identity: str
    clean_session: bool
    session_present: bool


class Disconnected(NamedTuple):
    time: float
    client_id: str
    reason: str  # "client" (DISCONNECT), "forced", "partition", "takeover", "broker restart", "killed"
    abnormal: bool  # True when the will is (or would be) published


class Published(NamedTuple):
    time: float
    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    to: str | None = None  # set by `deliver_to`: the one client it is for


class Delivered(NamedTuple):
    """A message handed to a client's handlers (recorded when they are called, not when routed)."""

    time: float
    client_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool


class Dropped(NamedTuple):
    """A message the broker accepted that one client will not get (or, for "fault", one lost send).

    "offline": QoS 0 for an absent session (or `deliver_to` one with no session); "queue full": over
    `max_queued_messages`; "clean session" / "broker restart": held by a session when it ended
    (in flight or queued), one event per message. "fault" is a lost transmission: a QoS 1 message
    stays in flight and is sent again, or, if its clean session ends first, recorded again then.
    """

    time: float
    client_id: str  # the client that did not get the message
    topic: str
    reason: str  # "fault", "offline", "queue full", "clean session", "broker restart"


class Denied(NamedTuple):
    """An action refused by the authorization policy (the client got `NotAuthorizedError`)."""

    time: float
    client_id: str
    identity: str
    action: str  # "publish", "subscribe", "will"
    topic: str


class Refused(NamedTuple):
    """An action refused for another reason (the client got `MessageBusError`)."""

    time: float
    client_id: str
    action: str
    topic: str
    reason: str


Event = Connected | Disconnected | Published | Delivered | Dropped | Denied | Refused


class TrafficRecord:
    """An append-only list of events with a few filters for assertions."""

    def __init__(self, max_events: int = 1_000_000) -> None:
        self.max_events = max_events
        self.events: list[Event] = []
        self.overflowed = False
        self._lock = threading.Lock()

    def add(self, event: Event) -> None:
        if len(self.events) >= self.max_events:
            with self._lock:
                if not self.overflowed:
                    self.overflowed = True
                    log.warning("traffic record full at %d events: later events are not recorded", self.max_events)
            return
        self.events.append(event)  # list.append is atomic under the GIL: no lock on the hot path

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.overflowed = False

    def published(self, client_id: str | None = None) -> list[Published]:
        return [e for e in self.events if isinstance(e, Published) and client_id in (None, e.client_id)]

    def deliveries(self, client_id: str | None = None) -> list[Delivered]:
        return [e for e in self.events if isinstance(e, Delivered) and client_id in (None, e.client_id)]

    def denials(self, client_id: str | None = None) -> list[Denied]:
        return [e for e in self.events if isinstance(e, Denied) and client_id in (None, e.client_id)]

    def refusals(self, client_id: str | None = None) -> list[Refused]:
        return [e for e in self.events if isinstance(e, Refused) and client_id in (None, e.client_id)]

    def drops(self, client_id: str | None = None) -> list[Dropped]:
        return [e for e in self.events if isinstance(e, Dropped) and client_id in (None, e.client_id)]

    def connections(self, client_id: str | None = None) -> list[Connected | Disconnected]:
        return [e for e in self.events if isinstance(e, Connected | Disconnected) and client_id in (None, e.client_id)]
