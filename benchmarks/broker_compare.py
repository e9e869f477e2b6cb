"""Broker benchmark (issue 4): the in-process simulated broker vs. paho through Mosquitto.

Same machine, same run, same 100-byte payloads, QoS 0 and 1, one publisher and one subscriber of
one topic, both in this process. Paths (benchmarks/broker_pairs.py has the clients):

- `simulated`: `SimulatedBroker()` as constructed by default (traffic record on), `InMemoryMessageBus` clients;
- `simulated_no_record`: the same with `record_traffic=False`, as a load run would configure it;
- `paho_mosquitto`: bare paho-mqtt clients through a Mosquitto of our own (own process, plain TCP on
  loopback, `set_tcp_nodelay true`), the baseline of the target;
- `paho_bus_mosquitto`: `PahoMessageBus` (the product's adapter) through the same Mosquitto.

For each QoS and path, in this order: a warm-up, then round trips (publish one message, wait until
the subscriber has it: p50/p95/p99), then the message rate (publish as fast as the client allows,
never more than `--window` messages ahead of the subscriber so that no broker queues, and drops, a
backlog; the rate is messages received over the time from the first publish to the last arrival).
Every loop is bounded by a count and a time. DESIGN.md section 5's target, "at least 5x the message
rate of paho through Mosquitto", is evaluated for the default `simulated` path against
`paho_mosquitto`, at each QoS; it is reported, never asserted. JSON goes to `<out>/broker.json`.

    python -m benchmarks.broker_compare [--messages N] [--seconds S] [--round-trips N]
        [--rtt-seconds S] [--out DIR] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.broker_pairs import BusPair, Flow, PahoClientPair, Pair
from benchmarks.machine import command_line, machine_description
from benchmarks.markdown import publish
from simulators.broker import InMemoryMessageBus, SimulatedBroker
from simulators.mosquitto import MosquittoProcess, find_mosquitto
from system.adapters.paho_bus import PahoMessageBus

SECTION = "broker"
PAYLOAD = b"x" * 100
TARGET_RATIO = 5.0
TARGET_PATH, BASELINE_PATH = "simulated", "paho_mosquitto"
PATHS = {
    "simulated": "simulated broker, InMemoryMessageBus clients (defaults: traffic record on)",
    "simulated_no_record": "simulated broker, InMemoryMessageBus clients, record_traffic=False",
    "paho_mosquitto": "paho-mqtt clients through Mosquitto (baseline)",
    "paho_bus_mosquitto": "PahoMessageBus clients through Mosquitto",
}
MOSQUITTO_PATHS = ("paho_mosquitto", "paho_bus_mosquitto")
WARMUP = 200
DRAIN_SECONDS = 5.0  # after the last publish, how long arrivals may still come in
ROUND_TRIP_TIMEOUT = 5.0

PairFactory = Callable[[int, Callable[[], None]], Pair]


@dataclass(frozen=True)
class Options:
    messages: int = 100_000  # per rate run (path and QoS)
    seconds: float = 4.0  # wall-time cap of a rate run
    round_trips: int = 2_000  # per latency run
    rtt_seconds: float = 2.0  # wall-time cap of a latency run
    window: int = 100  # messages the publisher may be ahead of the subscriber (AWS IoT's inflight limit)
    out: Path = Path("benchmarks/results")
    markdown: Path | None = None


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.broker_compare",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=Options.messages, help="messages per rate run (100000)")
    parser.add_argument("--seconds", type=float, default=Options.seconds, help="time cap of a rate run (4 s)")
    parser.add_argument("--round-trips", type=int, default=Options.round_trips, help="per latency run (2000)")
    parser.add_argument("--rtt-seconds", type=float, default=Options.rtt_seconds, help="cap of a latency run (2 s)")
    parser.add_argument("--window", type=int, default=Options.window, help="publisher lead, messages (100)")
    parser.add_argument("--out", type=Path, default=Options.out, help="folder for broker.json")
    parser.add_argument("--write-markdown", type=Path, metavar="PATH", help="rewrite this file's broker section")
    args = parser.parse_args(argv)
    if min(args.messages, args.round_trips, args.window) < 1 or min(args.seconds, args.rtt_seconds) <= 0:
        parser.error("counts must be at least 1 and times positive")
    return Options(
        args.messages, args.seconds, args.round_trips, args.rtt_seconds, args.window, args.out, args.write_markdown
    )


# Measurements ----------------------------------------------------------------------------------
def percentiles(samples_ms: Sequence[float]) -> dict[str, Any]:
    if not samples_ms:
        return {"round_trips": 0}
    p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
    return {
        "round_trips": len(samples_ms),
        "p50_ms": round(float(p50), 4),
        "p95_ms": round(float(p95), 4),
        "p99_ms": round(float(p99), 4),
        "mean_ms": round(float(np.mean(samples_ms)), 4),
        "min_ms": round(float(np.min(samples_ms)), 4),
    }


def measure_round_trips(pair: Pair, flow: Flow, options: Options) -> dict[str, Any]:
    """Publish one message, wait for it at the subscriber; repeat until the count or the cap."""
    samples: list[float] = []
    lost = 0
    deadline = time.perf_counter() + options.rtt_seconds
    while len(samples) + lost < options.round_trips and time.perf_counter() < deadline:
        expected = flow.received + 1
        started = time.perf_counter()
        pair.publish(PAYLOAD)
        if flow.wait_until(expected, time.perf_counter() + ROUND_TRIP_TIMEOUT):
            samples.append((flow.last - started) * 1000)
        else:
            lost += 1
            break  # the subscriber is stuck: what follows would not be a round trip
    stopped_by = "count" if len(samples) + lost >= options.round_trips else "time"
    return {**percentiles(samples), "lost": lost, "stopped_by": stopped_by}


def measure_rate(pair: Pair, flow: Flow, options: Options) -> dict[str, Any]:
    """Publish up to --messages within --seconds, at most --window ahead of the subscriber."""
    base, sent, window = flow.received, 0, options.window
    started = time.perf_counter()
    deadline = started + options.seconds
    while sent < options.messages and time.perf_counter() < deadline:
        if sent - (flow.received - base) >= window and not flow.wait_until(
            base + sent - window // 2, deadline + DRAIN_SECONDS
        ):
            break
        pair.publish(PAYLOAD)
        sent += 1
    flow.wait_until(base + sent, time.perf_counter() + DRAIN_SECONDS)
    received = flow.received - base
    elapsed = max(flow.last - started, 1e-9) if received else time.perf_counter() - started
    return {
        "sent": sent,
        "received": received,
        "seconds": round(elapsed, 4),
        "rate_per_s": round(received / elapsed, 1),
        "stopped_by": "count" if sent >= options.messages else "time",
    }


def run_path(factory: PairFactory, qos: int, options: Options) -> dict[str, Any]:
    flow = Flow()
    pair = factory(qos, flow.arrived)
    try:
        for _ in range(WARMUP):
            pair.publish(PAYLOAD)
        if not flow.wait_until(WARMUP, time.perf_counter() + DRAIN_SECONDS):
            return {"error": f"{flow.received} of {WARMUP} warm-up messages arrived"}
        return {"rtt": measure_round_trips(pair, flow, options), "rate": measure_rate(pair, flow, options)}
    finally:
        pair.close()


# Paths -----------------------------------------------------------------------------------------
def simulated_pair(record_traffic: bool, qos: int, on_message: Callable[[], None]) -> Pair:
    broker = SimulatedBroker(record_traffic=record_traffic)
    try:
        publisher, subscriber = InMemoryMessageBus(broker, "bench-pub"), InMemoryMessageBus(broker, "bench-sub")
        return _Owning(BusPair(publisher, subscriber, qos, on_message), broker.close)
    except BaseException:
        broker.close()
        raise


class _Owning:
    """A pair that also closes the broker it was made on."""

    def __init__(self, pair: Pair, close: Callable[[], None]) -> None:
        self._pair, self._close = pair, close

    def publish(self, payload: bytes) -> None:
        self._pair.publish(payload)

    def close(self) -> None:
        self._pair.close()
        self._close()


def paho_bus_pair(mosquitto: MosquittoProcess, qos: int, on_message: Callable[[], None]) -> Pair:
    host, port = mosquitto.host, mosquitto.port
    publisher = PahoMessageBus(host, port, "bench-bus-pub", operation_timeout=ROUND_TRIP_TIMEOUT)
    subscriber = PahoMessageBus(host, port, "bench-bus-sub", operation_timeout=ROUND_TRIP_TIMEOUT)
    return BusPair(publisher, subscriber, qos, on_message)


def paho_client_pair(mosquitto: MosquittoProcess, qos: int, on_message: Callable[[], None]) -> Pair:
    return PahoClientPair(mosquitto.host, mosquitto.port, qos, on_message)


@contextmanager
def factories() -> Iterator[tuple[dict[str, PairFactory], str | None]]:
    """The pair factory of each path that can run here, and why Mosquitto's cannot (or None)."""
    found: dict[str, PairFactory] = {
        "simulated": partial(simulated_pair, True),
        "simulated_no_record": partial(simulated_pair, False),
    }
    if find_mosquitto() is None:
        yield found, "the mosquitto binary is not installed (`make deps-system` installs it)"
        return
    with tempfile.TemporaryDirectory(prefix="es-bench-broker-") as folder, MosquittoProcess(Path(folder)) as broker:
        found["paho_mosquitto"] = partial(paho_client_pair, broker)
        found["paho_bus_mosquitto"] = partial(paho_bus_pair, broker)
        yield found, None


# The run ---------------------------------------------------------------------------------------
def mosquitto_version() -> str | None:
    binary = find_mosquitto()
    if binary is None:
        return None
    try:
        banner = subprocess.run([binary, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = banner.splitlines()[0] if banner else ""
    return first.removeprefix("mosquitto version ").strip() or None


def ratios(results: dict[str, dict[str, Any]], qos: int) -> dict[str, float | None]:
    """Rate of every path over the baseline's, at one QoS (None when either is missing)."""
    key = f"qos{qos}"
    base = results.get(BASELINE_PATH, {}).get(key, {}).get("rate", {}).get("rate_per_s")
    out: dict[str, float | None] = {}
    for path, by_qos in results.items():
        rate = by_qos.get(key, {}).get("rate", {}).get("rate_per_s")
        out[path] = round(rate / base, 2) if rate and base else None
    return out


def evaluate_targets(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    targets = []
    for qos in (0, 1):
        ratio = ratios(results, qos).get(TARGET_PATH)
        targets.append(
            {
                "target": f"simulated broker message rate vs. paho through Mosquitto, QoS {qos}",
                "limit": f">= {TARGET_RATIO:g}x",
                "measured": f"{ratio:.1f}x" if ratio is not None else "not measured",
                "met": ratio >= TARGET_RATIO if ratio is not None else None,
            }
        )
    return targets


def run(options: Options, command: str) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    with factories() as (found, skipped):
        for qos in (0, 1):
            for path, factory in found.items():
                print(f"QoS {qos} {path} ...", flush=True)
                results.setdefault(path, {})[f"qos{qos}"] = outcome = run_path(factory, qos, options)
                _print(outcome)
    return {
        "benchmark": "broker_compare",
        "issue": 4,
        "command": command,
        "machine": machine_description(),
        "libraries": {"paho-mqtt": metadata.version("paho-mqtt"), "mosquitto": mosquitto_version()},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        "payload_bytes": len(PAYLOAD),
        "warmup_messages": WARMUP,
        "paths": {path: PATHS[path] for path in results},
        "mosquitto_skipped": skipped,
        "results": results,
        "ratios": {f"qos{qos}": ratios(results, qos) for qos in (0, 1)},
        "targets": evaluate_targets(results),
        "runtime_seconds": round(time.monotonic() - started, 1),
    }


def _print(outcome: dict[str, Any]) -> None:
    if "error" in outcome:
        print(f"  error: {outcome['error']}")
        return
    rate, rtt = outcome["rate"], outcome["rtt"]
    latency = f"p50 {rtt['p50_ms']:.3f} ms  p99 {rtt['p99_ms']:.3f} ms" if rtt["round_trips"] else "no round trip"
    print(f"  {rate['rate_per_s']:>11,.0f} msg/s ({rate['received']}/{rate['sent']})  {latency}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(argv)
    results = run(options, command_line("benchmarks.broker_compare", argv))
    from benchmarks.broker_report import render_section

    publish(results, options.out / "broker.json", markdown=options.markdown, section=SECTION, render=render_section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
