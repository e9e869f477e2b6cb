"""Device metrics: a Prometheus registry of the device's own, and JSON snapshots for telemetry.

The `/metrics` endpoint serves `DeviceMetrics.render()` (content type `CONTENT_TYPE`); a
`MetricsReporter` records `snapshot()` as a "metrics" telemetry entry every interval, so the
cloud sees the same numbers without scraping the device.

Series carry no `thing` label: a scraper names its target itself (`instance`), and the thing
is one series, `edgesim_device_info{thing} 1`, to join on (the Prometheus "info metric" pattern).
Latencies are exposed in seconds (Prometheus base units) and reported in ms in snapshots.

Percentiles over the rolling window are exact order statistics: the p-th percentile is the
smallest latency with at least p% of the window at or below it (nearest rank; numpy's
`percentile(..., method="inverted_cdf")`). Only successful inferences enter the latency window
and histogram: a failed Predict's time says nothing about the model's speed.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from system.edge.results import InferenceResult
from system.edge.roster import APP_CLASSIFICATION, APP_SEGMENTATION

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST  # what the /metrics endpoint answers with
# Inference latency, seconds: a TFLite classifier takes milliseconds, a U-Net on a CPU seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PERCENTILES = (50, 95, 99)
UNKNOWN = "unknown"  # app or model of an error whose model cannot be told


class ModelInfo(NamedTuple):
    """A serving model as `edgesim_model_info` labels it (a plain 4-tuple works as well)."""

    app: str
    name: str
    version: str
    identifier: str  # the agent's model name, e.g. "unet-1-10"


class TelemetrySink(Protocol):
    """Where snapshots go (`TelemetryPublisher`)."""

    def record(self, kind: str, entry: Mapping[str, Any]) -> None: ...


class TelemetryCounters(Protocol):
    """A telemetry publisher's counters (`TelemetryPublisher`), read at scrape time."""

    @property
    def published(self) -> int: ...

    @property
    def publish_failures(self) -> int: ...

    @property
    def dropped(self) -> int: ...


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile of ascending `sorted_values` (numpy's "inverted_cdf").

    Exact for whole-number `q` (`q * n` is computed before dividing by 100, so no rounding moves
    the rank); numpy divides first and can land one rank higher for q like 99.9.
    """
    if not sorted_values:
        raise ValueError("no values")
    rank = math.ceil(q * len(sorted_values) / 100)
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


class DeviceMetrics:
    """The device's counters, gauges and latency windows. Thread-safe; one per device.

    Metrics (all prefixed `edgesim_`): `device_info{thing}`, `inference_latency_seconds{app,model}`
    (histogram), `inference_latency_window_seconds{app,quantile}` (p50/p95/p99 of the last `window`
    latencies), `inferences_total{app,outcome}` (outcome "ok" or "error"),
    `inference_errors_total{app,model}`, `model_info{app,name,version,identifier}`,
    `ota_jobs_total{outcome}`, `ota_job_in_progress{job_id,model,version}`, `captures_total`,
    `uptime_seconds`, and once `watch_telemetry()` was called `telemetry_published_entries_total`,
    `telemetry_publish_failures_total`, `telemetry_dropped_entries_total`.
    """

    def __init__(self, thing: str, window: int = 1000) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.thing = thing
        self.window = window
        self.registry = CollectorRegistry()  # our own: tests and several devices in one process stay apart
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._windows: dict[str, deque[float]] = {}
        self._counts: Tally[str] = Tally()
        self._errors: Tally[str] = Tally()
        self._models: list[ModelInfo] = []
        self._ota: Tally[str] = Tally()
        self._ota_job: dict[str, str] | None = None
        self._captures = 0
        self._telemetry: TelemetryCounters | None = None
        registry = self.registry
        Gauge("edgesim_device_info", "This device (value 1)", ["thing"], registry=registry).labels(thing).set(1)
        self._latency = Histogram(
            "edgesim_inference_latency_seconds",
            "Agent Predict time of successful inferences",
            ["app", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._inferences = Counter("edgesim_inferences", "Inferences by outcome", ["app", "outcome"], registry=registry)
        self._failures = Counter("edgesim_inference_errors", "Failed inferences", ["app", "model"], registry=registry)
        self._model_info = Gauge(
            "edgesim_model_info",
            "Serving models (value 1)",
            ["app", "name", "version", "identifier"],
            registry=registry,
        )
        self._ota_jobs = Counter("edgesim_ota_jobs", "Finished OTA jobs by outcome", ["outcome"], registry=registry)
        self._ota_in_progress = Gauge(
            "edgesim_ota_job_in_progress",
            "The OTA job running (value 1; no series when none runs)",
            ["job_id", "model", "version"],
            registry=registry,
        )
        self._captures_total = Counter("edgesim_captures", "Inferences sent to CaptureData", registry=registry)
        uptime = Gauge("edgesim_uptime_seconds", "Seconds since the metrics were created", registry=registry)
        uptime.set_function(self.uptime)
        registry.register(_ScrapeTimeCollector(self))

    # -- recording -------------------------------------------------------------------------------

    def observe_inference(self, app: str, identifier: str, latency_ms: float | None, ok: bool = True) -> None:
        """One inference of `app` by model `identifier`; `latency_ms` counts only when `ok`."""
        if latency_ms is not None and not latency_ms >= 0:  # also refuses NaN
            raise ValueError(f"latency_ms must be a number >= 0, not {latency_ms}")
        latency = latency_ms if ok else None
        with self._lock:
            self._counts[app] += 1
            if not ok:
                self._errors[app] += 1
            if latency is not None:
                self._windows.setdefault(app, deque(maxlen=self.window)).append(latency)
        self._inferences.labels(app, "ok" if ok else "error").inc()
        if latency is not None:
            self._latency.labels(app, identifier).observe(latency / 1000)
        if not ok:
            self._failures.labels(app, identifier).inc()

    def observe_result(self, result: InferenceResult) -> None:
        """Both applications' inferences in `result`, its per-model errors, and its capture.

        An error names its model first ("unet-2: predict failed: ..."); the application is the
        one that model serves according to `set_models()`, else "unknown".
        """
        for app, part in ((APP_CLASSIFICATION, result.classification), (APP_SEGMENTATION, result.segmentation)):
            if part is not None:
                self.observe_inference(app, part.model, part.latency_ms, ok=True)
        for error in result.errors:
            identifier = _model_of_error(error)
            self.observe_inference(self._app_of(identifier), identifier, None, ok=False)
        if result.captured:
            self.count_capture()

    def count_capture(self, count: int = 1) -> None:
        with self._lock:
            self._captures += count
        self._captures_total.inc(count)

    def set_models(self, models: Iterable[tuple[str, str, str, str]]) -> None:
        """The serving models now, as (app, name, version, identifier): the complete set.

        Label sets not in `models` are removed, so a swapped-out version leaves no stale series.
        """
        new = [ModelInfo(*model) for model in models]
        with self._lock:
            for old in set(self._models) - set(new):
                self._model_info.remove(*old)
            for model in new:
                self._model_info.labels(*model).set(1)
            self._models = new

    def ota_started(self, job_id: str, model: str = "", version: str = "") -> None:
        """An OTA job began: `edgesim_ota_job_in_progress{job_id,model,version}` until `ota_event`."""
        with self._lock:
            self._ota_in_progress.clear()
            self._ota_in_progress.labels(job_id, model, version).set(1)
            self._ota_job = {"job_id": job_id, "model": model, "version": version}

    def ota_event(self, outcome: str) -> None:
        """An OTA job ended with `outcome` ("succeeded", "failed", "rejected", "canceled"...)."""
        if not outcome:
            raise ValueError("an OTA outcome is needed")
        with self._lock:
            self._ota[outcome] += 1
            self._ota_in_progress.clear()
            self._ota_job = None
        self._ota_jobs.labels(outcome).inc()

    def watch_telemetry(self, counters: TelemetryCounters) -> None:
        """Expose a telemetry publisher's counters (read at every scrape and snapshot)."""
        self._telemetry = counters

    # -- reading ---------------------------------------------------------------------------------

    def uptime(self) -> float:
        return time.monotonic() - self._started

    def latency_percentiles(self) -> dict[str, dict[int, float]]:
        """{app: {50: p50, 95: p95, 99: p99}} in ms over each app's window (apps with latencies only)."""
        with self._lock:
            windows = {app: sorted(values) for app, values in self._windows.items()}
        return {app: {q: percentile(values, q) for q in PERCENTILES} for app, values in windows.items() if values}

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every metric."""
        return generate_latest(self.registry).decode("utf-8")

    def snapshot(self) -> dict[str, Any]:
        """JSON-friendly summary for a "metrics" telemetry entry.

        {"thing", "uptime_s", "apps": {app: {"count", "errors", "window", "p50_ms", "p95_ms",
        "p99_ms"}}, "models": [{"app", "name", "version", "identifier"}], "ota": {"jobs":
        {outcome: n}, "in_progress": {"job_id", "model", "version"} | None}, "captures",
        "telemetry": {"published", "publish_failures", "dropped"} | None}
        """
        with self._lock:
            apps = {
                app: (self._counts[app], self._errors[app], sorted(self._windows.get(app, ()))) for app in self._counts
            }
            models = [model._asdict() for model in self._models]
            ota = {"jobs": dict(self._ota), "in_progress": dict(self._ota_job) if self._ota_job else None}
            captures = self._captures
        summary: dict[str, Any] = {}
        for app, (count, errors, values) in apps.items():
            summary[app] = {"count": count, "errors": errors, "window": len(values)}
            for q in PERCENTILES:
                summary[app][f"p{q}_ms"] = round(percentile(values, q), 3) if values else None
        return {
            "thing": self.thing,
            "uptime_s": round(self.uptime(), 3),
            "apps": summary,
            "models": models,
            "ota": ota,
            "captures": captures,
            "telemetry": self.telemetry_counts(),
        }

    def telemetry_counts(self) -> dict[str, int] | None:
        """The watched publisher's counters; None when `watch_telemetry()` was not called."""
        counters = self._telemetry
        if counters is None:
            return None
        return {
            "published": counters.published,
            "publish_failures": counters.publish_failures,
            "dropped": counters.dropped,
        }

    def _app_of(self, identifier: str) -> str:
        with self._lock:
            return next((model.app for model in self._models if model.identifier == identifier), UNKNOWN)


def _model_of_error(error: str) -> str:
    """The model identifier an error message starts with ("unet-2: ..."), else "unknown".

    Bounded so that free text never becomes a label value (label cardinality).
    """
    head, colon, _ = error.partition(":")
    head = head.strip()
    if not colon or not head or len(head) > 64 or any(char.isspace() for char in head):
        return UNKNOWN
    return head


class _ScrapeTimeCollector(Collector):
    """Series computed when scraped: window percentiles and a publisher's counters."""

    def __init__(self, metrics: DeviceMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        window = GaugeMetricFamily(
            "edgesim_inference_latency_window_seconds",
            f"Exact percentiles (nearest rank) of the last {metrics.window} successful latencies",
            labels=["app", "quantile"],
        )
        for app, values in sorted(metrics.latency_percentiles().items()):
            for q, value in values.items():
                window.add_metric([app, str(q / 100)], value / 1000)
        yield window
        counts = metrics.telemetry_counts()
        if counts is None:
            return
        for name, key, doc in (
            ("edgesim_telemetry_published_entries", "published", "Telemetry entries the bus accepted"),
            ("edgesim_telemetry_publish_failures", "publish_failures", "Failed telemetry publish attempts"),
            ("edgesim_telemetry_dropped_entries", "dropped", "Telemetry entries dropped (buffer full, shutdown)"),
        ):
            yield CounterMetricFamily(name, doc, value=counts[key])


class MetricsReporter:
    """Records `metrics.snapshot()` as a "metrics" telemetry entry every `interval` seconds.

    `stop()` records a last snapshot, so the final interval is not lost at shutdown.
    """

    def __init__(self, metrics: DeviceMetrics, publisher: TelemetrySink, interval: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self._metrics = metrics
        self._publisher = publisher
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the reporter was started already")
        self._thread = threading.Thread(target=self._run, name=f"metrics-{self._metrics.thing}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout)
        self.report()

    def report(self) -> None:
        """Record one snapshot now; an error is logged, not raised (the loop must go on)."""
        try:
            self._publisher.record("metrics", self._metrics.snapshot())
        except Exception:
            log.exception("recording a metrics snapshot failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.report()
