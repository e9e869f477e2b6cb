"""A QoS 1 burst overflows what the broker will queue: nothing acknowledged is lost without a record.

Act 1, telemetry. Two cloud-side consumers subscribe at QoS 1 to the thing's telemetry
(`edgesim/<thing>/telemetry/#`): an ingest service with a persistent session and a dashboard with
a clean one, on a link so slow that nothing is acknowledged yet. The device's telemetry publisher
(QoS 1, one entry per message, each numbered) sends 20 entries, then the ingest service goes away
and 180 more follow, with the broker's queue limit at 50 messages a session. Every publish is
acknowledged. The dashboard then disconnects, which ends its clean session. The ingest service
comes back: the 20 it had not acknowledged come again with DUP, then the 50 its session queued,
in the publisher's order, each once; the 130 newest were refused by the full queue (the broker
keeps the oldest, as Mosquitto's `max_queued_messages` does), one recorded drop each. The
dashboard got nothing, and each of its 200 is a recorded drop (its queue overflowed, then its
session ended with the rest). For each consumer: delivered + recorded drops = accepted.

Act 2, jobs. The device keeps a persistent session (AWS IoT devices may; the world's devices
connect with clean sessions, where nothing is queued for an absent device, so the scenario turns
it on) and is cut off by a partition. Five upgrades are created meanwhile; their notifications
overflow a queue limit of 2, each loss recorded. Notifications are only hints: when the device is
back it asks start-next until nothing is pending, so every job still succeeds, in order, and the
device serves the newest version with nothing left QUEUED or IN_PROGRESS.

Honest limits: a recorded drop names the client, topic and reason but not the message (the
traffic record's `Dropped` carries no payload), so which messages were lost is checked by sequence
number against what was accepted and delivered, and the recorded drops are counted against it.
Fake profile only: the queue limit, the partition and the traffic record are the simulated
broker's (a real Mosquitto drops as silently as its log level allows).
"""

from __future__ import annotations

import json
import time
from collections import Counter

from simulators.broker import InMemoryMessageBus, SimulatedBroker
from simulators.broker.traffic import Connected, Dropped, Published
from simulators.cloud import JOBS_IDENTITY
from simulators.harness.harness import Harness
from simulators.harness.world import TERMINAL
from system.edge.telemetry import TelemetryPublisher, telemetry_topic
from system.ports import Message

NAME = "broker-queue-overflow"
PROFILES = ("fake",)  # queue limits, partitions and the traffic record belong to the simulated broker

BURST = 200  # telemetry messages, numbered 0..199
IN_FLIGHT = 20  # sent before the ingest service goes away: unacknowledged, so re-sent with DUP
QUEUE_LIMIT = 50  # messages a session may queue during the burst
SLOW_LINK_S = 5.0  # nothing reaches the consumers (or is acknowledged) before they go
UPGRADES = ("2", "3", "4", "5", "6")
NOTIFY_QUEUE_LIMIT = 2
INGEST, DASHBOARD = "telemetry-ingest", "telemetry-dashboard"


def run(h: Harness) -> None:
    broker = h.world.cloud.broker
    if broker is None:
        h.check("the fake profile's simulated broker runs", False, f"profile {h.profile}")
        return
    _telemetry_burst(h, broker)
    _jobs_while_offline(h, broker)


# -- act 1: a telemetry burst ------------------------------------------------------------------


class _Consumer:
    """A cloud-side telemetry consumer: the sequence numbers it was handed, in order."""

    def __init__(self, broker: SimulatedBroker, client_id: str, topic_filter: str, *, persistent: bool) -> None:
        self.broker, self.client_id, self.topic_filter, self.persistent = broker, client_id, topic_filter, persistent
        self.seqs: list[int] = []
        self.connect()

    def connect(self) -> None:
        """A new connection; subscribed first, so what a persistent session kept finds the handler."""
        # JOBS_IDENTITY is the cloud side's privileged identity in the cloud's ThingPolicy.
        persistent = self.persistent
        self.bus = InMemoryMessageBus(self.broker, self.client_id, identity=JOBS_IDENTITY, clean_session=not persistent)
        self.subscription = self.bus.subscribe(self.topic_filter, self._on_message, qos=1)
        self.bus.connect()

    def _on_message(self, message: Message) -> None:
        self.seqs.extend(entry["seq"] for entry in json.loads(message.payload)["entries"])


def _telemetry_burst(h: Harness, broker: SimulatedBroker) -> None:
    thing = h.world.thing
    topic = telemetry_topic(thing, "burst")
    ingest = _Consumer(broker, INGEST, f"edgesim/{thing}/telemetry/#", persistent=True)
    dashboard = _Consumer(broker, DASHBOARD, f"edgesim/{thing}/telemetry/#", persistent=False)
    h.step(f"an ingest service (persistent session) and a dashboard (clean) subscribe to {ingest.topic_filter}")
    slow = broker.faults.add(topic_filter=topic, latency=SLOW_LINK_S)
    limit, broker.max_queued_messages = broker.max_queued_messages, QUEUE_LIMIT
    device_bus = InMemoryMessageBus(broker, f"{thing}-burst", identity=thing)
    device_bus.connect()
    publisher = TelemetryPublisher(device_bus, thing, buffer_size=BURST, batch_size=1, flush_interval=60.0)
    try:
        _send(publisher, range(IN_FLIGHT))
        in_flight = [_in_flight(broker, c) for c in (ingest, dashboard)]
        h.check(f"the first {IN_FLIGHT} are in flight to both consumers", in_flight == [IN_FLIGHT] * 2, str(in_flight))
        h.step(f"the ingest service goes offline; {BURST - IN_FLIGHT} more follow (queue limit {QUEUE_LIMIT})")
        ingest.bus.close()
        _send(publisher, range(IN_FLIGHT, BURST))
        h.step("the dashboard disconnects: its clean session ends")
        dashboard.bus.close()
    finally:
        broker.faults.remove(slow)
        broker.max_queued_messages = limit
        publisher.close()
        device_bus.close()
    acknowledged = publisher.published == BURST and publisher.dropped == 0
    h.check(f"all {BURST} QoS 1 publishes were acknowledged", acknowledged, f"{publisher.published} acknowledged")
    accepted = _accepted(broker, device_bus.client_id, topic)
    h.check("the broker accepted each once", sorted(accepted) == list(range(BURST)), f"{len(accepted)} accepted")
    h.step("the ingest service comes back")
    ingest.connect()
    h.eventually("its session drains", lambda: _drained(broker, ingest))
    _check_ingest(h, broker, ingest, set(accepted), topic)
    _check_dashboard(h, broker, dashboard, set(accepted), topic)
    ingest.subscription.cancel()  # act 2's device telemetry is not for it
    ingest.bus.close()


def _send(publisher: TelemetryPublisher, seqs: range) -> None:
    for seq in seqs:
        publisher.record("burst", {"seq": seq})
    if not publisher.flush(timeout=10.0):
        raise TimeoutError("the telemetry burst was not published within 10 s")


def _in_flight(broker: SimulatedBroker, consumer: _Consumer) -> int:
    info = broker.session(consumer.client_id)
    return 0 if info is None else info.inflight


def _accepted(broker: SimulatedBroker, publisher: str, topic: str) -> list[int]:
    """The sequence numbers of the publishes the broker accepted (its record of each PUBACKed one)."""
    return [_seq(event.payload) for event in broker.record.published(publisher) if event.topic == topic]


def _seq(payload: bytes) -> int:
    return int(json.loads(payload)["entries"][0]["seq"])


def _drops(broker: SimulatedBroker, client_id: str, topic: str) -> list[Dropped]:
    return [drop for drop in broker.record.drops(client_id) if drop.topic == topic]


def _drained(broker: SimulatedBroker, consumer: _Consumer) -> bool:
    """Connected, nothing in flight or queued: every delivery was handled (PUBACK follows the handler)."""
    info = broker.session(consumer.client_id)
    return info is not None and info.connected and info.inflight == info.queued == 0


def _check_ingest(h: Harness, broker: SimulatedBroker, ingest: _Consumer, accepted: set[int], topic: str) -> None:
    got, drops = ingest.seqs, _drops(broker, INGEST, topic)
    lost = accepted - set(got)
    h.check(
        "ingest: every accepted message was delivered or recorded as dropped",
        len(set(got)) + len(drops) == len(accepted),
        f"{len(accepted)} accepted = {len(set(got))} delivered + {len(drops)} recorded drops",
    )
    h.check("ingest: nothing delivered that was not accepted", set(got) <= accepted)
    h.check("ingest: each delivered once, in the publisher's order", got == sorted(set(got)), f"{len(got)} delivered")
    newest = set(range(IN_FLIGHT + QUEUE_LIMIT, BURST))
    reasons = Counter(drop.reason for drop in drops)
    h.check(
        "ingest: the lost ones are the newest, one recorded 'queue full' drop each",
        lost == newest and reasons == Counter({"queue full": len(lost)}),
        f"{len(lost)} lost (from {min(lost, default=None)}), drops {dict(reasons)}",
    )
    dups = [(_seq(d.payload), d.dup) for d in broker.record.deliveries(INGEST) if d.topic == topic]
    expected = [(seq, True) for seq in range(IN_FLIGHT)] + [(seq, False) for seq in range(IN_FLIGHT, min(newest))]
    h.check(
        "ingest: the unacknowledged ones came again with DUP, the queued ones without",
        dups == expected,
        f"{sum(dup for _, dup in dups)} with DUP",
    )


def _check_dashboard(h: Harness, broker: SimulatedBroker, dashboard: _Consumer, accepted: set[int], topic: str) -> None:
    drops = Counter(drop.reason for drop in _drops(broker, DASHBOARD, topic))
    h.check(
        "dashboard: every accepted message was delivered or recorded as dropped",
        len(dashboard.seqs) + sum(drops.values()) == len(accepted),
        f"{len(dashboard.seqs)} delivered, drops {dict(drops)}",
    )


# -- act 2: job notifications while the device is away -------------------------------------------


def _jobs_while_offline(h: Harness, broker: SimulatedBroker) -> None:
    device = h.start_device(rate_hz=2.0)
    h.check_job("version 1 is deployed", h.deploy("img-classification", "1"), "SUCCEEDED")
    documents = [h.world.document("img-classification", version) for version in UPGRADES]  # exported beforehand
    bus = device.backends.bus
    if not isinstance(bus, InMemoryMessageBus):
        h.check("the device is a client of the simulated broker", False, type(bus).__name__)
        return
    _make_session_persistent(h, broker, bus)
    mark = len(broker.record.events)
    limit, broker.max_queued_messages = broker.max_queued_messages, NOTIFY_QUEUE_LIMIT
    try:
        h.step(f"a partition cuts the device off; {len(UPGRADES)} upgrades are created")
        broker.faults.partition([bus.client_id], duration=300.0)
        jobs = [h.world.deploy(document) for document in documents]
        h.eventually(
            "every upgrade is QUEUED for the device",
            lambda: _statuses(h, jobs) == {"QUEUED"},
            detail=lambda: f"statuses {sorted(_statuses(h, jobs))}",
        )
        _check_notifications(h, broker, bus.client_id, mark)
    finally:
        broker.max_queued_messages = limit
    h.step("the partition ends")
    broker.faults.clear()
    for version, job in zip(UPGRADES, jobs, strict=True):
        h.check_job(f"the upgrade to {version} succeeds", job, "SUCCEEDED")
    back = [e for e in broker.record.events[mark:] if isinstance(e, Connected) and e.client_id == bus.client_id]
    h.check("the device came back to its session", any(e.session_present for e in back))
    served = h.served(device)
    h.check("the device serves the newest version", served == {"img-classification": UPGRADES[-1]}, str(served))
    left = _statuses(h, jobs) - set(TERMINAL)
    h.check("nothing stays QUEUED or IN_PROGRESS", not left and device.journal.current is None, str(sorted(left)))


def _make_session_persistent(h: Harness, broker: SimulatedBroker, bus: InMemoryMessageBus) -> None:
    """The bus takes both settings at its next connect, which a forced disconnect brings about."""
    bus.clean_session = False
    bus.reconnect_delay = (0.2, 1.0)  # back within a second of the partition's end
    broker.faults.disconnect(bus.client_id)

    def persistent() -> bool:
        info = broker.session(bus.client_id)
        return info is not None and info.persistent and info.connected

    h.eventually("the device reconnects with a persistent session", persistent)


def _check_notifications(h: Harness, broker: SimulatedBroker, client_id: str, mark: int) -> None:
    notify = {f"$aws/things/{h.world.thing}/jobs/{kind}" for kind in ("notify", "notify-next")}

    def tally() -> tuple[int, int, int, list[Dropped], tuple[str, ...]]:
        events = broker.record.events[mark:]
        sent = sum(1 for e in events if isinstance(e, Published) and e.topic in notify)
        drops = [e for e in events if isinstance(e, Dropped) and e.client_id == client_id and e.topic in notify]
        info = broker.session(client_id)
        queued = () if info is None else info.queued_topics
        # The queue may also hold a reply to a request the device sent just before the partition.
        return sent, sum(1 for topic in queued if topic in notify), len(drops), drops, queued

    # The broker's threads may still be routing the last notification (its drop can be on record
    # before its publish): read until the record is consistent, for a few seconds at most.
    deadline = time.monotonic() + 10.0
    sent, kept, dropped, drops, queued = tally()
    while kept + dropped != sent and time.monotonic() < deadline:
        time.sleep(0.05)
        sent, kept, dropped, drops, queued = tally()
    others = len(queued) - kept
    h.check(
        "the device's notifications overflowed its queue, each loss recorded",
        bool(drops) and len(queued) == NOTIFY_QUEUE_LIMIT and kept + dropped == sent,
        f"{sent} sent = {kept} queued + {dropped} dropped ({', '.join(sorted({d.reason for d in drops}))})"
        + (f"; the queue also holds {others} other message(s): {', '.join(queued)}" if others else ""),
    )


def _statuses(h: Harness, jobs: list[str]) -> set[str]:
    return {str(h.world.jobs.describe_job_execution(job, h.world.thing)["status"]) for job in jobs}
