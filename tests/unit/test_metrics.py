"""DeviceMetrics and MetricsReporter: exact window percentiles, a parsable exposition, snapshots."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from system.edge.metrics import DeviceMetrics, MetricsReporter, ModelInfo, percentile
from system.edge.results import ClassificationResult, InferenceResult, SegmentationResult
from system.edge.roster import APP_CLASSIFICATION, APP_SEGMENTATION
from system.edge.telemetry import TelemetryPublisher
from tests.bus_fakes import RecordingBus

WAIT = 5.0
CLF = ModelInfo(APP_CLASSIFICATION, "img-classification", "1", "img-classification-1")
SEG = ModelInfo(APP_SEGMENTATION, "unet", "1.10", "unet-1-10")


def sample(metrics: DeviceMetrics, metric: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(metric, labels)


def samples(metrics: DeviceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the text exposition, parsed back by prometheus_client's own parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.render())
        for s in family.samples
    }


def result(sequence: int, *, errors: tuple[str, ...] = (), captured: bool = False, seg: bool = True) -> InferenceResult:
    classification = ClassificationResult(
        CLF.identifier, CLF.version, "normal", {"normal": 0.9, "anomalous": 0.1}, 12.5
    )
    segmentation = SegmentationResult(SEG.identifier, SEG.version, 0.5, 0.01, b"", b"", 480.0) if seg else None
    return InferenceResult(sequence, 1.0, f"img-{sequence}.png", b"", classification, segmentation, errors, captured)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 10, 99, 100, 101, 999, 1000])
def test_percentile_is_numpys_inverted_cdf(size: int) -> None:
    values = sorted(np.random.default_rng(size).lognormal(3.0, 1.0, size).tolist())

    # Whole percentiles: for 99.9 numpy rounds 0.999 * 1000 up to rank 1000 where the exact rank is 999.
    for q in (0, 1, 25, 50, 95, 99, 100):
        assert percentile(values, q) == np.percentile(values, q, method="inverted_cdf"), (size, q)


def test_window_percentiles_are_exact_over_the_last_window_latencies() -> None:
    metrics = DeviceMetrics("dev-1", window=100)
    latencies = np.random.default_rng(7).gamma(2.0, 20.0, 250).tolist()

    for latency in latencies:
        metrics.observe_inference(APP_CLASSIFICATION, CLF.identifier, latency, ok=True)

    window = latencies[-100:]
    expected = {q: float(np.percentile(window, q, method="inverted_cdf")) for q in (50, 95, 99)}
    assert metrics.latency_percentiles() == {APP_CLASSIFICATION: expected}
    app = metrics.snapshot()["apps"][APP_CLASSIFICATION]
    assert app == {
        "count": 250,
        "errors": 0,
        "window": 100,
        "p50_ms": round(expected[50], 3),
        "p95_ms": round(expected[95], 3),
        "p99_ms": round(expected[99], 3),
    }
    exposed = samples(metrics)
    for q in (50, 95, 99):
        key = (
            "edgesim_inference_latency_window_seconds",
            frozenset({"app": APP_CLASSIFICATION, "quantile": str(q / 100)}.items()),
        )
        assert exposed[key] == pytest.approx(expected[q] / 1000)


def test_failed_inferences_count_but_stay_out_of_the_latency_window_and_histogram() -> None:
    metrics = DeviceMetrics("dev-1")

    metrics.observe_inference(APP_SEGMENTATION, SEG.identifier, 100.0, ok=True)
    metrics.observe_inference(APP_SEGMENTATION, SEG.identifier, 9_000.0, ok=False)
    metrics.observe_inference(APP_SEGMENTATION, SEG.identifier, None, ok=False)

    assert metrics.latency_percentiles() == {APP_SEGMENTATION: {50: 100.0, 95: 100.0, 99: 100.0}}
    labels = {"app": APP_SEGMENTATION, "model": SEG.identifier}
    assert sample(metrics, "edgesim_inference_latency_seconds_count", **labels) == 1
    assert sample(metrics, "edgesim_inference_latency_seconds_sum", **labels) == pytest.approx(0.1)
    assert sample(metrics, "edgesim_inference_errors_total", **labels) == 2
    assert sample(metrics, "edgesim_inferences_total", app=APP_SEGMENTATION, outcome="ok") == 1
    assert sample(metrics, "edgesim_inferences_total", app=APP_SEGMENTATION, outcome="error") == 2
    with pytest.raises(ValueError, match="latency_ms"):
        metrics.observe_inference(APP_SEGMENTATION, SEG.identifier, -1.0)


def test_exposition_parses_and_names_every_metric() -> None:
    metrics = DeviceMetrics("dev-7")
    metrics.set_models([CLF, SEG])
    metrics.observe_result(result(1, captured=True))
    metrics.observe_result(result(2, seg=False, errors=("unet-1-10: predict failed",)))
    metrics.ota_event("succeeded")

    families = {family.name: family for family in text_string_to_metric_families(metrics.render())}
    created = {name for name in families if name.endswith("_created")}  # prometheus_client's creation times

    assert created == {
        f"edgesim_{name}_created" for name in ("inferences", "inference_errors", "ota_jobs", "captures")
    } | {"edgesim_inference_latency_seconds_created"}
    assert {name: families[name].type for name in families.keys() - created} == {
        "edgesim_device_info": "gauge",
        "edgesim_inference_latency_seconds": "histogram",
        "edgesim_inferences": "counter",
        "edgesim_inference_errors": "counter",
        "edgesim_model_info": "gauge",
        "edgesim_ota_jobs": "counter",
        "edgesim_ota_job_in_progress": "gauge",
        "edgesim_captures": "counter",
        "edgesim_uptime_seconds": "gauge",
        "edgesim_inference_latency_window_seconds": "gauge",
    }
    exposed = samples(metrics)
    assert exposed[("edgesim_device_info", frozenset({("thing", "dev-7")}))] == 1
    assert exposed[("edgesim_captures_total", frozenset())] == 1
    assert exposed[("edgesim_uptime_seconds", frozenset())] >= 0
    bucket = frozenset({"app": APP_CLASSIFICATION, "model": CLF.identifier, "le": "0.025"}.items())
    assert exposed[("edgesim_inference_latency_seconds_bucket", bucket)] == 2  # 12.5 ms twice
    assert metrics.render().startswith("# HELP")


def test_a_model_swap_replaces_the_model_info_series() -> None:
    metrics = DeviceMetrics("dev-1")
    metrics.set_models([CLF, SEG])
    new_seg = ModelInfo(APP_SEGMENTATION, "unet", "2", "unet-2")

    metrics.set_models([CLF, new_seg])

    info = {labels: value for (name, labels), value in samples(metrics).items() if name == "edgesim_model_info"}
    assert info == {frozenset(CLF._asdict().items()): 1, frozenset(new_seg._asdict().items()): 1}
    assert metrics.snapshot()["models"] == [CLF._asdict(), new_seg._asdict()]
    metrics.set_models([])
    assert sample(metrics, "edgesim_model_info", **CLF._asdict()) is None


def test_observe_result_records_both_apps_its_errors_and_its_capture() -> None:
    metrics = DeviceMetrics("dev-1")
    metrics.set_models([CLF, SEG])

    metrics.observe_result(result(1))
    metrics.observe_result(result(2, seg=False, errors=("unet-1-10: predict failed: out of memory",), captured=True))
    metrics.observe_result(result(3, errors=("the camera returned no frame",)))

    apps = metrics.snapshot()["apps"]
    assert (apps[APP_CLASSIFICATION]["count"], apps[APP_CLASSIFICATION]["errors"]) == (3, 0)
    assert (apps[APP_SEGMENTATION]["count"], apps[APP_SEGMENTATION]["errors"]) == (3, 1)
    assert (apps["unknown"]["count"], apps["unknown"]["errors"], apps["unknown"]["p50_ms"]) == (1, 1, None)
    assert sample(metrics, "edgesim_inference_errors_total", app=APP_SEGMENTATION, model=SEG.identifier) == 1
    assert sample(metrics, "edgesim_inference_errors_total", app="unknown", model="unknown") == 1
    assert sample(metrics, "edgesim_inference_latency_seconds_count", app=APP_SEGMENTATION, model=SEG.identifier) == 2
    assert sample(metrics, "edgesim_captures_total") == 1
    assert metrics.snapshot()["captures"] == 1


def test_ota_jobs_are_counted_by_outcome_and_the_running_job_shown_until_it_ends() -> None:
    metrics = DeviceMetrics("dev-1")

    metrics.ota_started("job-1", "unet", "2")
    running = samples(metrics)
    metrics.ota_event("succeeded")
    metrics.ota_started("job-2", "unet", "3")
    metrics.ota_event("failed")
    metrics.ota_event("failed")

    job = {"job_id": "job-1", "model": "unet", "version": "2"}
    assert running[("edgesim_ota_job_in_progress", frozenset(job.items()))] == 1
    assert not any(name == "edgesim_ota_job_in_progress" for name, _ in samples(metrics))
    assert sample(metrics, "edgesim_ota_jobs_total", outcome="succeeded") == 1
    assert sample(metrics, "edgesim_ota_jobs_total", outcome="failed") == 2
    assert metrics.snapshot()["ota"] == {"jobs": {"succeeded": 1, "failed": 2}, "in_progress": None}
    with pytest.raises(ValueError):
        metrics.ota_event("")


def test_telemetry_counters_are_read_from_the_publisher_at_scrape_time() -> None:
    class Counters:
        published, publish_failures, dropped = 10, 2, 0

    counters = Counters()
    metrics = DeviceMetrics("dev-1")
    assert metrics.snapshot()["telemetry"] is None
    metrics.watch_telemetry(counters)

    counters.dropped = 5

    assert sample(metrics, "edgesim_telemetry_dropped_entries_total") == 5
    assert sample(metrics, "edgesim_telemetry_published_entries_total") == 10
    assert sample(metrics, "edgesim_telemetry_publish_failures_total") == 2
    assert metrics.snapshot()["telemetry"] == {"published": 10, "publish_failures": 2, "dropped": 5}


def test_each_device_has_its_own_registry() -> None:
    first, second = DeviceMetrics("dev-1"), DeviceMetrics("dev-2")

    first.count_capture(3)

    assert (sample(first, "edgesim_captures_total"), sample(second, "edgesim_captures_total")) == (3, 0)


class RecordingSink:
    """A TelemetrySink fake: keeps what it was asked to record; `wait_for(n)` blocks until n arrived."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def record(self, kind: str, entry: Mapping[str, Any]) -> None:
        with self._cond:
            self.entries.append((kind, dict(entry)))
            self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.entries) >= count, WAIT), self.entries


def test_reporter_records_a_snapshot_every_interval_and_one_more_when_stopped() -> None:
    metrics = DeviceMetrics("dev-1")
    metrics.observe_inference(APP_CLASSIFICATION, CLF.identifier, 5.0)
    sink = RecordingSink()
    reporter = MetricsReporter(metrics, sink, interval=0.01)

    reporter.start()
    sink.wait_for(2)
    reporter.stop()
    count = len(sink.entries)
    reporter.stop()

    assert len(sink.entries) == count  # stopping twice records nothing more
    assert all(kind == "metrics" for kind, _ in sink.entries)
    assert sink.entries[-1][1]["apps"][APP_CLASSIFICATION]["p99_ms"] == 5.0


def test_reporter_snapshots_reach_the_metrics_topic_through_a_publisher() -> None:
    bus = RecordingBus()
    publisher = TelemetryPublisher(bus, "dev-9", flush_interval=60.0)
    metrics = DeviceMetrics("dev-9")
    metrics.watch_telemetry(publisher)
    metrics.ota_event("rejected")
    reporter = MetricsReporter(metrics, publisher, interval=60.0)

    reporter.start()
    reporter.stop()  # the final snapshot
    assert publisher.close(WAIT)

    (message,) = bus.published
    batch = json.loads(message.payload)
    assert message.topic == "edgesim/dev-9/telemetry/metrics"
    (entry,) = batch["entries"]
    assert entry["thing"] == "dev-9" and entry["ota"]["jobs"] == {"rejected": 1}
    assert entry["telemetry"] == {"published": 0, "publish_failures": 0, "dropped": 0}
    assert isinstance(entry["ts"], float)
