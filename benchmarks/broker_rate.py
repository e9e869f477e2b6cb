"""Rough message rate: the simulated broker in-process vs. PahoMessageBus through a Mosquitto of our own.

One publisher, one subscriber, 100-byte payloads, QoS 0 and 1, through the `MessageBus` port on
both sides (so a QoS 1 publish waits for its PUBACK on both). The rate counts until the subscriber
has every message. A quick side-by-side for DESIGN.md section 5's "at least 5x Mosquitto" target,
not the full benchmark (no percentiles, no plot); every loop is bounded in count and time.

    python -m benchmarks.broker_rate [--messages N] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from simulators.broker import InMemoryMessageBus, SimulatedBroker
from simulators.mosquitto import MosquittoProcess, find_mosquitto
from system.adapters.paho_bus import PahoMessageBus
from system.ports import Message, MessageBus

PAYLOAD = b"x" * 100
TIMEOUT = 60.0
IDLE = 2.0


def measure(publisher: MessageBus, subscriber: MessageBus, qos: int, count: int) -> float:
    """Messages received per second, from the first publish until the last one arrived.

    A broker may drop QoS 0 messages it cannot forward in time (Mosquitto does under overload):
    the rate counts what arrived, and a shortfall is printed.
    """
    received, last, done = [0], [0.0], threading.Event()
    topic = f"edgesim/bench/{time.monotonic_ns()}"

    def handler(message: Message) -> None:
        received[0] += 1
        last[0] = time.perf_counter()
        if received[0] == count:
            done.set()

    subscription = subscriber.subscribe(topic, handler, qos=qos)
    started = time.perf_counter()
    for _ in range(count):
        publisher.publish(topic, PAYLOAD, qos=qos)
    deadline = time.monotonic() + TIMEOUT
    while not done.wait(IDLE) and time.monotonic() < deadline:
        if time.perf_counter() - last[0] > IDLE:
            break  # nothing new for a while: the rest was dropped
    subscription.cancel()
    if received[0] < count:
        print(f"  ({count - received[0]} of {count} QoS {qos} messages never arrived)")
    return received[0] / (last[0] - started)


def in_process(qos: int, count: int, record: bool) -> float:
    # A burst of QoS 1 outruns the subscriber: give it a queue that holds the whole burst (the
    # default, 10,000 per session, would drop the excess as a real broker does).
    broker = SimulatedBroker(record_traffic=record, max_queued_messages=count)
    try:
        publisher, subscriber = InMemoryMessageBus(broker, "pub"), InMemoryMessageBus(broker, "sub")
        publisher.connect()
        subscriber.connect()
        return measure(publisher, subscriber, qos, count)
    finally:
        broker.close()


def through_mosquitto(qos: int, count: int) -> float:
    with tempfile.TemporaryDirectory(prefix="es-bench-") as folder, MosquittoProcess(Path(folder)) as mosquitto:
        publisher = PahoMessageBus(mosquitto.host, mosquitto.port, "bench-pub")
        subscriber = PahoMessageBus(mosquitto.host, mosquitto.port, "bench-sub")
        try:
            publisher.connect()
            subscriber.connect()
            return measure(publisher, subscriber, qos, count)
        finally:
            publisher.close()
            subscriber.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    options = parser.parse_args()
    count = options.messages
    runs: dict[str, Callable[[], float]] = {}
    for qos in (0, 1):
        runs[f"simulated broker, QoS {qos}, traffic record on"] = partial(in_process, qos, count, True)
        runs[f"simulated broker, QoS {qos}, traffic record off"] = partial(in_process, qos, count, False)
        if find_mosquitto():  # Mosquitto is 10x slower: fewer messages keep the run short
            runs[f"PahoMessageBus via Mosquitto, QoS {qos}"] = partial(through_mosquitto, qos, count // (5 + 5 * qos))
    results = {name: round(run()) for name, run in runs.items()}
    if options.json:
        print(json.dumps(results, indent=2))
        return
    for name, rate in results.items():
        print(f"{name:52s} {rate:>10,d} msg/s")


if __name__ == "__main__":
    main()
