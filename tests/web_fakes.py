"""Fakes of the web UI's port: `FakeDeviceView` (a `DeviceView` with settable state that records its
calls) and builders of the values it serves (results with real PNGs, models, status, jobs).

Shared by tests/unit/test_web_api.py and tests/browser/test_web_page.py.
"""

from __future__ import annotations

import io
import threading
from typing import Any

from PIL import Image

from system.edge.results import ClassificationResult, InferenceResult, SegmentationResult

METRICS = "# HELP edgesim_inferences_total Inferences run.\n# TYPE edgesim_inferences_total counter\n"


def png_bytes(size: tuple[int, int] = (8, 4), color: tuple[int, int, int] = (90, 90, 90), fmt: str = "PNG") -> bytes:
    """A real tiny image, encoded by Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def model_dict(name: str, version: str, app: str) -> dict[str, str]:
    """The shape of `ServingModel.to_dict()` plus the application it serves."""
    identifier = f"{name}-{version.replace('.', '-')}"
    return {
        "app": app,
        "name": name,
        "version": version,
        "identifier": identifier,
        "framework": "tflite",
        "package_dir": f"/var/edgesim/models/{identifier}",
    }


def serving_models(clf_version: str = "1", unet_version: str = "1") -> list[dict[str, str]]:
    return [
        model_dict("img-classification", clf_version, "image-classification-app"),
        model_dict("unet", unet_version, "image-segmentation-app"),
    ]


def make_result(
    sequence: int = 1,
    *,
    label: str = "normal",
    p_anomalous: float = 0.012345678,
    version: str = "1",
    segmentation: bool = True,
    classification: bool = True,
    image_name: str = "test/normal/0001.png",
    errors: tuple[str, ...] = (),
    image_size: tuple[int, int] = (8, 4),
) -> InferenceResult:
    """A result with real PNGs: a grey image, a white-on-black mask, a red-tinted overlay."""
    clf = ClassificationResult(
        model=f"img-classification-{version}",
        version=version,
        label=label,
        probabilities={"normal": round(1 - p_anomalous, 6), "anomalous": round(p_anomalous, 6)},
        latency_ms=3.25,
    )
    seg = SegmentationResult(
        model=f"unet-{version}",
        version=version,
        threshold=0.5,
        defect_fraction=0.0625,
        mask_png=png_bytes(image_size, color=(255, 255, 255)),
        overlay_png=png_bytes(image_size, color=(200, 40, 40)),
        latency_ms=12.5,
    )
    return InferenceResult(
        sequence=sequence,
        timestamp=1_700_000_000.0 + sequence,
        image_name=image_name,
        image_png=png_bytes(image_size),
        classification=clf if classification else None,
        segmentation=seg if segmentation else None,
        errors=errors,
    )


def device_status(*, thing: str = "edge-device-1", healthy: bool = True, generation: int = 1) -> dict[str, Any]:
    return {
        "thing": thing,
        "profile": "fake",
        "uptime_seconds": 42.5,
        "healthy": healthy,
        "agent": {"target": "unix:///tmp/edge_agent", "reachable": healthy},
        "mqtt": {"connected": True},
        "ota": {"current_job": None},
        "inference": {"running": True, "rate_hz": 1.0, "count": 7, "errors": 0},
        "generation": generation,
    }


def job_dict(job_id: str, model: str, version: str, status: str, reason: str = "") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "model_name": model,
        "version": version,
        "status": status,
        "reason": reason,
        "step": "done" if status != "IN_PROGRESS" else "downloading",
        "started_at": 1_700_000_000.0,
        "finished_at": None if status == "IN_PROGRESS" else 1_700_000_030.0,
        "steps": [{"step": "accepted", "at": 1_700_000_000.0, "detail": ""}],
    }


class FakeDeviceView:
    """A `DeviceView` with settable state that records every call (thread-safe: a real server reads it).

    Limits: predict_image does not decode beyond Pillow's check; it returns `predict_result` (or a
    fresh result) and raises `predict_error` when set.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, Any]] = []
        self.status_value: dict[str, Any] = device_status()
        self.models_value: list[dict[str, str]] = serving_models()
        self.generation_value = 1
        self.results: list[InferenceResult] = []  # newest first
        self.jobs_value: list[dict[str, Any]] = []
        self.metrics_value = METRICS
        self.predict_result: InferenceResult | None = None
        self.predict_error: Exception | None = None
        self.failure: Exception | None = None  # raised by every read when set

    def _record(self, name: str, argument: Any = None) -> None:
        with self._lock:
            self.calls.append((name, argument))
            if self.failure is not None:
                raise self.failure

    def set_models(self, models: list[dict[str, str]]) -> None:
        """Swap the serving models and move the generation, as the roster does."""
        with self._lock:
            self.models_value = models
            self.generation_value += 1
            self.status_value = {**self.status_value, "generation": self.generation_value}

    def push_result(self, result: InferenceResult) -> None:
        with self._lock:
            self.results.insert(0, result)

    def status(self) -> dict[str, Any]:
        self._record("status")
        return dict(self.status_value)

    def models(self) -> list[dict[str, Any]]:
        self._record("models")
        return list(self.models_value)

    def latest_result(self) -> InferenceResult | None:
        self._record("latest_result")
        return self.results[0] if self.results else None

    def recent_results(self, limit: int) -> list[InferenceResult]:
        self._record("recent_results", limit)
        return self.results[:limit]

    def jobs(self) -> list[dict[str, Any]]:
        self._record("jobs")
        return list(self.jobs_value)

    def predict_image(self, data: bytes, name: str) -> InferenceResult:
        self._record("predict_image", (data, name))
        if self.predict_error is not None:
            raise self.predict_error
        try:
            Image.open(io.BytesIO(data)).verify()
        except Exception as exc:
            raise ValueError(f"not an image: {exc}") from exc
        return self.predict_result or make_result(len(self.calls), image_name=name, label="anomalous", p_anomalous=0.9)

    def metrics_text(self) -> str:
        self._record("metrics_text")
        return self.metrics_value

    def generation(self) -> int:
        self._record("generation")
        return self.generation_value
