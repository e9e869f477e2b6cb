"""TelemetryPublisher and TelemetryLogHandler: batches on the right topics, never blocking the caller.

Most tests use `RecordingBus` (tests/bus_fakes.py), a fake MessageBus that records what it was asked
to publish and can fail or hang on demand; the end-to-end ones use the simulated broker (tests/mqtt_fixtures.py).
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from system.edge.telemetry import TelemetryLogHandler, TelemetryPublisher, telemetry_topic
from system.logs import fields
from tests.bus_fakes import RecordingBus
from tests.mqtt_fixtures import CLOUD, Collector, MemoryBackend

WAIT = 5.0  # bound on every wait for something that should happen promptly

MakePublisher = Callable[..., TelemetryPublisher]


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
def make_publisher(bus: RecordingBus) -> Iterator[MakePublisher]:
    """Factory: a publisher (on `bus` unless given another), closed after the test."""
    made: list[TelemetryPublisher] = []

    def make(thing: str = "dev-1", on: Any = None, **options: Any) -> TelemetryPublisher:
        options.setdefault("retry_delay", (0.01, 0.05))
        publisher = TelemetryPublisher(bus if on is None else on, thing, **options)
        made.append(publisher)
        return publisher

    yield make
    if bus.gate is not None:
        bus.gate.set()
    for publisher in made:
        publisher.close(timeout=1.0)


@pytest.fixture
def memory_backend() -> Iterator[MemoryBackend]:
    backend = MemoryBackend()
    yield backend
    backend.close()


def test_batches_reach_a_subscriber_on_the_kind_topics_as_json(
    memory_backend: MemoryBackend, make_publisher: MakePublisher
) -> None:
    thing = f"dev-{uuid.uuid4().hex[:8]}"
    received = Collector()
    memory_backend.bus(f"cloud-{thing}", identity=CLOUD).subscribe(f"edgesim/{thing}/telemetry/#", received)
    publisher = make_publisher(thing, memory_backend.bus(thing), flush_interval=60.0)

    publisher.record("logs", {"level": "warning", "msg": "first", "ts": 1.5})
    publisher.record("ota", {"job_id": "job-1", "outcome": "succeeded"})
    publisher.record("logs", {"level": "error", "msg": "second", "ts": 2.5})
    assert publisher.flush(WAIT)

    messages = received.wait_for(2)
    by_topic = {message.topic: json.loads(message.payload) for message in messages}
    assert set(by_topic) == {f"edgesim/{thing}/telemetry/logs", f"edgesim/{thing}/telemetry/ota"}
    logs = by_topic[telemetry_topic(thing, "logs")]
    assert set(logs) == {"thing", "kind", "sent_at", "entries", "dropped_total"}
    assert (logs["thing"], logs["kind"], logs["dropped_total"]) == (thing, "logs", 0)
    assert logs["entries"] == [
        {"level": "warning", "msg": "first", "ts": 1.5},
        {"level": "error", "msg": "second", "ts": 2.5},
    ]
    assert by_topic[telemetry_topic(thing, "ota")]["entries"][0]["job_id"] == "job-1"
    assert all(message.qos == 1 and not message.retain for message in messages)
    assert (publisher.published, publisher.dropped, publisher.pending) == (3, 0, 0)


def test_a_full_batch_goes_out_without_waiting_for_the_interval(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    publisher = make_publisher(batch_size=5, flush_interval=60.0)

    for i in range(12):
        publisher.record("inference", {"i": i})

    assert [entry["i"] for entry in bus.wait_for_entries(10)] == list(range(10))
    assert [len(batch["entries"]) for batch in bus.batches()] == [5, 5]
    assert publisher.pending == 2  # not a full batch: waits for the interval


def test_an_entry_waits_at_most_the_flush_interval(bus: RecordingBus, make_publisher: MakePublisher) -> None:
    publisher = make_publisher(batch_size=100, flush_interval=0.05)

    publisher.record("metrics", {"cpu": 0.5})

    assert bus.wait_for_entries(1)[0]["cpu"] == 0.5
    assert bus.published[0].topic == "edgesim/dev-1/telemetry/metrics"


def test_record_stays_fast_while_publish_hangs_and_drops_exactly_the_oldest(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.gate = threading.Event()
    publisher = make_publisher(buffer_size=1000, batch_size=50, flush_interval=60.0)
    for i in range(50):
        publisher.record("inference", {"i": i})
    assert bus.entered.wait(WAIT)  # entries 0-49 are in flight; the bus hangs

    started = time.perf_counter()
    for i in range(50, 10_050):
        publisher.record("inference", {"i": i})
    elapsed = time.perf_counter() - started

    assert elapsed < 0.5, f"10,000 record() calls took {elapsed:.3f} s"
    assert publisher.dropped == 9_000  # 10,000 arrived while 1,000 fit: the 9,000 oldest went
    assert publisher.pending == 1_050  # the buffer plus the batch in flight
    bus.gate.set()
    assert publisher.flush(WAIT)
    assert [entry["i"] for entry in bus.entries()] == list(range(50)) + list(range(9_050, 10_050))
    assert bus.batches()[-1]["dropped_total"] == 9_000
    assert (publisher.published, publisher.dropped) == (1_050, 9_000)


def test_failed_publishes_are_retried_and_delivered_once_the_bus_recovers(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.fail_next = 3
    publisher = make_publisher(batch_size=10, flush_interval=60.0)

    for i in range(4):
        publisher.record("logs", {"i": i})
    assert publisher.flush(WAIT)

    assert [entry["i"] for entry in bus.entries()] == [0, 1, 2, 3]
    assert len(bus.published) == 1
    assert (publisher.publish_failures, publisher.published, publisher.dropped) == (3, 4, 0)


def test_an_unexpected_bus_exception_does_not_kill_the_publisher(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.error = RuntimeError("bug in an adapter")
    publisher = make_publisher()

    publisher.record("logs", {"msg": "survives"})

    assert publisher.flush(WAIT)
    assert bus.entries() == [{"msg": "survives", "ts": bus.entries()[0]["ts"]}]
    assert publisher.publish_failures == 1
    assert publisher.worker_thread.is_alive()


def test_a_disconnected_bus_keeps_the_entries_until_it_is_back(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.connected = False
    publisher = make_publisher()
    for i in range(3):
        publisher.record("ota", {"i": i})

    assert not publisher.flush(0.2)
    assert bus.calls == 0 and publisher.publish_failures >= 1 and publisher.pending == 3

    bus.connected = True
    assert publisher.flush(WAIT)
    assert [entry["i"] for entry in bus.entries()] == [0, 1, 2]


def test_retried_batches_stay_within_the_buffer_cap_and_the_oldest_go(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.connected = False
    publisher = make_publisher(buffer_size=10, batch_size=5, flush_interval=60.0)

    for i in range(30):
        publisher.record("logs", {"i": i})
    assert not publisher.flush(0.1)
    assert publisher.pending <= 10

    bus.connected = True
    assert publisher.flush(WAIT)
    assert [entry["i"] for entry in bus.entries()] == list(range(20, 30))
    assert publisher.dropped == 20


def test_delivery_resumes_after_a_network_partition_on_the_simulated_broker(
    memory_backend: MemoryBackend, make_publisher: MakePublisher
) -> None:
    thing = f"dev-{uuid.uuid4().hex[:8]}"
    received = Collector()
    memory_backend.bus(f"cloud-{thing}", identity=CLOUD).subscribe(f"edgesim/{thing}/telemetry/+", received)
    publisher = make_publisher(thing, memory_backend.bus(thing), batch_size=5)

    memory_backend.broker.faults.partition([thing], duration=0.3)
    for i in range(7):
        publisher.record("inference", {"i": i})

    assert publisher.flush(WAIT)
    entries = [entry["i"] for message in received.wait_for(2) for entry in json.loads(message.payload)["entries"]]
    assert entries == list(range(7))
    assert publisher.publish_failures >= 1


def test_close_flushes_what_is_left_then_refuses_new_entries(bus: RecordingBus, make_publisher: MakePublisher) -> None:
    publisher = make_publisher(batch_size=100, flush_interval=60.0)
    for i in range(7):
        publisher.record("logs", {"i": i})

    assert publisher.close(WAIT)
    publisher.record("logs", {"i": 99})

    assert [entry["i"] for entry in bus.entries()] == list(range(7))
    assert (publisher.published, publisher.dropped) == (7, 1)
    assert not publisher.worker_thread.is_alive()


def test_close_gives_up_after_its_timeout_and_counts_the_rest_as_dropped(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus.connected = False
    publisher = make_publisher()
    for i in range(5):
        publisher.record("logs", {"i": i})

    assert not publisher.close(0.1)
    publisher.worker_thread.join(WAIT)  # it may still have been inside its last attempt

    assert (publisher.published, publisher.dropped, publisher.pending) == (0, 5, 0)


def test_entries_get_a_timestamp_only_when_they_have_none_and_are_copied(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    publisher = make_publisher()
    entry: dict[str, Any] = {"msg": "a"}
    before = time.time()

    publisher.record("logs", entry)
    publisher.record("logs", {"msg": "b", "ts": 12.0})
    entry["msg"] = "changed after record"
    assert publisher.flush(WAIT)

    first, second = bus.entries()
    assert first["msg"] == "a" and before <= first["ts"] <= time.time()
    assert second["ts"] == 12.0
    assert "ts" not in entry


def test_settings_that_cannot_work_are_refused(bus: RecordingBus) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TelemetryPublisher(bus, "dev-1", buffer_size=10, batch_size=20)
    with pytest.raises(ValueError, match="topic level"):
        TelemetryPublisher(bus, "site/dev-1")


@pytest.mark.parametrize("kind", ["", "a/b", "+", "#", "logs#"])
def test_a_kind_that_is_not_one_topic_level_is_refused(make_publisher: MakePublisher, kind: str) -> None:
    publisher = make_publisher()

    with pytest.raises(ValueError, match="topic level"):
        publisher.record(kind, {})


def test_values_json_cannot_encode_become_strings_or_a_marker(bus: RecordingBus, make_publisher: MakePublisher) -> None:
    publisher = make_publisher()
    circular: dict[str, Any] = {"name": "loop"}
    circular["self"] = circular

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    publisher.record("logs", {"when": datetime.date(2024, 5, 17), "n": 1})
    publisher.record("logs", circular)
    publisher.record("logs", {"value": Unprintable(), "ts": 4.0})
    publisher.record("logs", {"n": 3})
    assert publisher.flush(WAIT)

    first, second, third, fourth = bus.entries()
    assert first["when"] == "2024-05-17" and first["n"] == 1
    assert second["unencodable"].startswith("ValueError") and "loop" in second["repr"]
    assert (third["ts"], third["unencodable"]) == (4.0, "RuntimeError: no text for you")
    assert fourth["n"] == 3
    assert publisher.published == 4


def test_a_batch_too_big_for_one_message_is_split_and_an_oversized_entry_becomes_a_stub(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    publisher = make_publisher(batch_size=50, flush_interval=60.0, max_payload_bytes=2_000)

    for i in range(20):
        publisher.record("inference", {"i": i, "pad": "x" * 200, "ts": 1.0})
    publisher.record("inference", {"i": 20, "huge": "y" * 5_000, "ts": 2.0})
    assert publisher.flush(WAIT)

    assert all(len(message.payload) <= 2_000 for message in bus.published)
    entries = bus.entries()
    assert [entry.get("i") for entry in entries[:20]] == list(range(20))
    assert entries[20] == {"ts": 2.0, "truncated": True, "bytes": entries[20]["bytes"], "keys": ["huge", "i", "ts"]}
    assert publisher.published == 21


def test_log_handler_records_warnings_with_their_fields(bus: RecordingBus, make_publisher: MakePublisher) -> None:
    publisher = make_publisher()
    logger = logging.getLogger(f"edgesim.test.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(TelemetryLogHandler(publisher))
    logger.setLevel(logging.DEBUG)

    logger.info("below the handler's level")
    logger.warning("model %s failed", "unet-2", extra=fields(model="unet-2", msg="clash"))
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("predict raised")
    assert publisher.flush(WAIT)

    warning, error = bus.entries("logs")
    assert warning["level"] == "warning" and warning["logger"] == logger.name
    assert (warning["msg"], warning["model"], warning["field_msg"]) == ("model unet-2 failed", "unet-2", "clash")
    assert error["level"] == "error" and "ValueError: boom" in error["exc"]


def test_log_handler_ignores_what_the_publisher_and_the_bus_log_while_publishing(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    bus_log = logging.getLogger("edgesim.test.fakebus")
    bus.on_publish = lambda: bus_log.warning("publishing (the bus logs on the publisher's thread)")
    bus.fail_next = 2  # the publisher logs its failures as warnings too
    publisher = make_publisher()
    handler = TelemetryLogHandler(publisher)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("edgesim.test.app").warning("the only application log")
        assert publisher.flush(WAIT)
        assert publisher.flush(WAIT)  # nothing new was recorded by the publishes themselves
    finally:
        root.removeHandler(handler)

    assert [entry["msg"] for entry in bus.entries("logs")] == ["the only application log"]
    assert bus.calls == 3 and publisher.pending == 0


def test_log_handler_does_not_recurse_when_formatting_a_message_logs(
    bus: RecordingBus, make_publisher: MakePublisher
) -> None:
    publisher = make_publisher()
    logger = logging.getLogger(f"edgesim.test.{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(TelemetryLogHandler(publisher))

    class Noisy:
        def __str__(self) -> str:
            logger.warning("logged from inside __str__")
            return "noisy"

    logger.warning("value %s", Noisy())
    assert publisher.flush(WAIT)

    assert [entry["msg"] for entry in bus.entries("logs")] == ["value noisy"]


def test_log_handler_reports_a_broken_record_through_handle_error_instead_of_raising(
    make_publisher: MakePublisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = TelemetryLogHandler(make_publisher())
    failed: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failed.append)
    record = logging.LogRecord("edgesim.test", logging.ERROR, __file__, 1, "%d items", ("not a number",), None)

    handler.handle(record)

    assert failed == [record]
