"""The broker benchmark's results as the `broker` section of BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

from benchmarks.machine import summary_line
from benchmarks.markdown import table

_VERDICT = {True: "met", False: "**not met**", None: "not measured"}


def _cell(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else "n/a"


def _rate_table(results: dict[str, Any]) -> str:
    rows = []
    for qos in (0, 1):
        key = f"qos{qos}"
        for path, by_qos in results["results"].items():
            outcome, ratio = by_qos.get(key, {}), results["ratios"][key].get(path)
            rate = outcome.get("rate")
            if rate is None:
                rows.append([qos, f"`{path}`", outcome.get("error", "not run"), "", "", ""])
                continue
            shown = "baseline" if path == "paho_mosquitto" else _cell(ratio, ".1f") + "x"
            rows.append(
                [
                    qos,
                    f"`{path}`",
                    f"{rate['rate_per_s']:,.0f}",
                    f"{rate['received']:,} / {rate['sent']:,}",
                    f"{rate['seconds']:.2f} ({rate['stopped_by']})",
                    shown,
                ]
            )
    return table(["QoS", "path", "msg/s", "received / sent", "seconds (stopped by)", "vs. paho + Mosquitto"], rows)


def _rtt_table(results: dict[str, Any]) -> str:
    rows = []
    for qos in (0, 1):
        for path, by_qos in results["results"].items():
            rtt = by_qos.get(f"qos{qos}", {}).get("rtt")
            if not rtt or not rtt["round_trips"]:
                rows.append([qos, f"`{path}`", "n/a", "n/a", "n/a", "n/a", "0"])
                continue
            rows.append(
                [
                    qos,
                    f"`{path}`",
                    f"{rtt['p50_ms']:.3f}",
                    f"{rtt['p95_ms']:.3f}",
                    f"{rtt['p99_ms']:.3f}",
                    f"{rtt['mean_ms']:.3f}",
                    f"{rtt['round_trips']:,} ({rtt['stopped_by']})",
                ]
            )
    return table(["QoS", "path", "p50 ms", "p95 ms", "p99 ms", "mean ms", "round trips (stopped by)"], rows)


def _targets_table(results: dict[str, Any]) -> str:
    rows = [[t["target"], t["limit"], t["measured"], _VERDICT[t["met"]]] for t in results["targets"]]
    return table(["target (DESIGN.md section 5)", "limit", "measured", "verdict"], rows)


def render_section(results: dict[str, Any]) -> str:
    options, libraries = results["options"], results["libraries"]
    paths = "\n".join(f"- `{path}`: {description}" for path, description in results["paths"].items())
    skipped = f"\n\nNot measured: Mosquitto ({results['mosquitto_skipped']}).\n" if results["mosquitto_skipped"] else ""
    mosquitto = f"Mosquitto {libraries['mosquitto']}" if libraries.get("mosquitto") else "Mosquitto (not installed)"
    json_path = results.get("json_path", "benchmarks/results/broker.json")
    return f"""## Simulated broker vs. Mosquitto (issue 4)

One publisher and one subscriber of one topic, both in the benchmark process, {results["payload_bytes"]}-byte payloads,
QoS 0 and 1, on the same machine in the same run. Mosquitto runs as its own process on loopback (plain TCP,
`set_tcp_nodelay true`, TCP_NODELAY on the client sockets too); the simulated broker runs in process.

- Machine: {summary_line(results["machine"])}, paho-mqtt {libraries["paho-mqtt"]}, {mosquitto}
- Command: `{results["command"]}`
- Runtime: {results["runtime_seconds"]:.0f} s; raw numbers in `{json_path}`{skipped}

Paths:

{paths}

### Message rate

Per path and QoS, after {results["warmup_messages"]} warm-up messages: up to {options["messages"]:,} messages within \
{options["seconds"]:g} s, the publisher never more than {options["window"]} messages ahead of the subscriber (so neither
broker queues, or drops, a backlog); the rate is messages received over the time from the first publish to the last
arrival. A QoS 1 publish through a `MessageBus` waits for its acknowledgement (the simulated broker accepts
synchronously; `PahoMessageBus` waits for the PUBACK); bare paho pipelines them.

{_rate_table(results)}

### Round trip

Publish one message, wait until the subscriber has it, repeat: up to {options["round_trips"]:,} round trips within \
{options["rtt_seconds"]:g} s per path and QoS.

{_rtt_table(results)}

### Target

The default `simulated` path against the `paho_mosquitto` baseline, at each QoS. Rates vary by about 30 %
from run to run on a 2-core machine (feasibility.md), so a ratio near the limit can land on either side of it.

{_targets_table(results)}
"""
