"""The web UI's HTTP surface: every route, every error as JSON, upload limits, security headers.

`FakeDeviceView` (also used by tests/browser) records what the app asked and holds settable state.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from system.edge.results import ClassificationResult, InferenceResult, SegmentationResult
from system.edge.web.app import CONTENT_SECURITY_POLICY, create_app
from system.edge.web.server import WebServer
from system.errors import AgentUnavailableError, ConfigError

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


@pytest.fixture
def fake() -> FakeDeviceView:
    return FakeDeviceView()


@pytest.fixture
def app(fake: FakeDeviceView) -> Flask:
    return create_app(fake, max_upload_bytes=4096)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as client:
        yield client


def assert_json_error(response: Any, status: int, contains: str = "") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert contains.lower() in body["error"].lower()


# The page and its assets


def test_index_serves_the_page_with_local_assets_only(client: FlaskClient) -> None:
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "edgesim edge device" in html
    assert '<script src="/static/app.js"' in html and 'href="/static/app.css"' in html
    assert "http://" not in html and "https://" not in html and "<style" not in html and "style=" not in html
    for element_id in ("models", "verdict", "probabilities", "mask-overlay", "current-image", "jobs", "last-updated"):
        assert f'id="{element_id}"' in html


@pytest.mark.parametrize(("path", "mimetype"), [("/static/app.js", "text/javascript"), ("/static/app.css", "text/css")])
def test_static_assets_are_served(client: FlaskClient, path: str, mimetype: str) -> None:
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == mimetype
    assert b"https://" not in response.data


# Read routes


def test_status_is_the_views_status(client: FlaskClient, fake: FakeDeviceView) -> None:
    assert client.get("/api/status").get_json() == device_status()


def test_models_come_with_the_generation(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.set_models(serving_models("2", "1"))
    body = client.get("/api/models").get_json()
    assert body == {"models": serving_models("2", "1"), "generation": 2}


def test_jobs_are_wrapped_newest_first_as_given(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.jobs_value = [
        job_dict("job-2", "unet", "2", "FAILED", "sha256 mismatch"),
        job_dict("job-1", "unet", "1", "SUCCEEDED"),
    ]
    assert client.get("/api/jobs").get_json() == {"jobs": fake.jobs_value}


def test_latest_result_is_404_json_before_the_first(client: FlaskClient) -> None:
    assert_json_error(client.get("/api/results/latest"), 404, "no inference result")


def test_latest_result_has_its_images_as_data_uris(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.push_result(make_result(1))
    fake.push_result(make_result(2, label="anomalous", p_anomalous=0.75))
    body = client.get("/api/results/latest").get_json()
    assert body == make_result(2, label="anomalous", p_anomalous=0.75).to_dict(images=True)
    assert body["image"].startswith("data:image/png;base64,")
    assert body["segmentation"]["overlay"].startswith("data:image/png;base64,")
    assert body["classification"]["probabilities"] == {"normal": 0.25, "anomalous": 0.75}


def test_latest_result_answers_304_to_its_own_etag_and_200_after_a_new_one(
    client: FlaskClient, fake: FakeDeviceView
) -> None:
    fake.push_result(make_result(1))
    first = client.get("/api/results/latest")
    etag = first.headers["ETag"]
    unchanged = client.get("/api/results/latest", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    fake.push_result(make_result(2))
    changed = client.get("/api/results/latest", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["sequence"] == 2 and changed.headers["ETag"] != etag


def test_recent_results_have_no_images_and_honour_the_limit(client: FlaskClient, fake: FakeDeviceView) -> None:
    for sequence in range(1, 6):
        fake.push_result(make_result(sequence))
    body = client.get("/api/results?limit=3").get_json()
    assert [r["sequence"] for r in body["results"]] == [5, 4, 3]
    assert all("image" not in r and "overlay" not in r["segmentation"] for r in body["results"])
    assert ("recent_results", 3) in fake.calls


def test_recent_results_default_to_ten(client: FlaskClient, fake: FakeDeviceView) -> None:
    assert client.get("/api/results").get_json() == {"results": []}
    assert ("recent_results", 10) in fake.calls


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "2.5", ""])
def test_recent_results_refuse_a_limit_outside_1_to_100(client: FlaskClient, fake: FakeDeviceView, limit: str) -> None:
    assert_json_error(client.get(f"/api/results?limit={limit}"), 400, "limit must be an integer from 1 to 100")
    assert not any(name == "recent_results" for name, _ in fake.calls)


@pytest.mark.parametrize("limit", [1, 100])
def test_recent_results_accept_the_bounds(client: FlaskClient, fake: FakeDeviceView, limit: int) -> None:
    assert client.get(f"/api/results?limit={limit}").status_code == 200


# Health and metrics


def test_healthz_is_ok_when_the_device_is_healthy(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_healthz_is_503_with_the_status_when_unhealthy(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.status_value = device_status(healthy=False)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unhealthy", "device": device_status(healthy=False)}


def test_healthz_is_503_when_the_status_itself_fails(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.failure = AgentUnavailableError("agent socket missing")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unhealthy", "error": "AgentUnavailableError: agent socket missing"}


def test_metrics_are_prometheus_text(client: FlaskClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert response.get_data(as_text=True) == METRICS


# Predict


def test_predict_takes_a_multipart_image(client: FlaskClient, fake: FakeDeviceView) -> None:
    image = png_bytes()
    response = client.post("/api/predict", data={"image": (io.BytesIO(image), "dir/part.png", "image/png")})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["image_name"] == "part.png" and body["classification"]["label"] == "anomalous"
    assert body["image"].startswith("data:image/png;base64,") and "overlay" in body["segmentation"]
    assert ("predict_image", (image, "part.png")) in fake.calls


def test_predict_accepts_an_untyped_multipart_part(client: FlaskClient, fake: FakeDeviceView) -> None:
    image = png_bytes()
    response = client.post("/api/predict", data={"image": (io.BytesIO(image), "x.png", "application/octet-stream")})
    assert response.status_code == 200


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("BMP", "image/bmp")])
def test_predict_takes_a_raw_image_body(client: FlaskClient, fake: FakeDeviceView, fmt: str, content_type: str) -> None:
    image = png_bytes(fmt=fmt)
    response = client.post("/api/predict?name=cam0/frame-17", data=image, content_type=content_type)
    assert response.status_code == 200, response.get_json()
    assert ("predict_image", (image, "frame-17")) in fake.calls


def test_predict_names_a_raw_upload_upload_by_default(client: FlaskClient, fake: FakeDeviceView) -> None:
    client.post("/api/predict", data=png_bytes(), content_type="image/png")
    assert [arg[1] for name, arg in fake.calls if name == "predict_image"] == ["upload"]


def test_predict_is_413_for_an_image_over_the_limit(client: FlaskClient, fake: FakeDeviceView) -> None:
    big = b"\x89PNG" + bytes(4093)  # 4097 bytes, limit 4096
    assert_json_error(client.post("/api/predict", data=big, content_type="image/png"), 413, "larger than 4096")
    response = client.post("/api/predict", data={"image": (io.BytesIO(big), "big.png", "image/png")})
    assert_json_error(response, 413, "larger than 4096")
    assert not any(name == "predict_image" for name, _ in fake.calls)


def test_predict_is_413_for_a_body_far_over_the_limit(client: FlaskClient) -> None:
    huge = bytes(200_000)
    assert_json_error(client.post("/api/predict", data=huge, content_type="image/png"), 413, "larger than 4096")
    response = client.post("/api/predict", data={"image": (io.BytesIO(huge), "huge.png", "image/png")})
    assert_json_error(response, 413, "larger than 4096")


def test_predict_accepts_an_image_of_exactly_the_limit(fake: FakeDeviceView) -> None:
    image = png_bytes()
    client = create_app(fake, max_upload_bytes=len(image)).test_client()
    assert client.post("/api/predict", data=image, content_type="image/png").status_code == 200
    response = client.post("/api/predict", data={"image": (io.BytesIO(image), "x.png", "image/png")})
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "image/gif", "application/json", "application/octet-stream"])
def test_predict_is_415_for_other_body_types(client: FlaskClient, content_type: str) -> None:
    assert_json_error(client.post("/api/predict", data=b"GIF89a", content_type=content_type), 415, "unsupported")


def test_predict_is_415_for_a_multipart_part_of_another_type(client: FlaskClient) -> None:
    response = client.post("/api/predict", data={"image": (io.BytesIO(b"GIF89a"), "a.gif", "image/gif")})
    assert_json_error(response, 415, "image/gif")


def test_predict_is_400_without_a_file(client: FlaskClient) -> None:
    assert_json_error(client.post("/api/predict"), 400, "no image")
    other_field = {"other": (io.BytesIO(png_bytes()), "x.png", "image/png")}
    assert_json_error(client.post("/api/predict", data=other_field), 400, "no image")
    assert_json_error(client.post("/api/predict", data=b"", content_type="image/png"), 400, "empty")
    response = client.post("/api/predict", data={"image": (io.BytesIO(b""), "empty.png", "image/png")})
    assert_json_error(response, 400, "empty")


def test_predict_is_400_when_the_image_cannot_be_decoded(client: FlaskClient) -> None:
    response = client.post("/api/predict", data=b"not a png at all", content_type="image/png")
    assert_json_error(response, 400, "cannot decode the image 'upload'")


def test_predict_is_500_json_when_the_device_fails(
    client: FlaskClient, fake: FakeDeviceView, caplog: pytest.LogCaptureFixture
) -> None:
    fake.predict_error = RuntimeError("runtime crashed: secret detail")
    with caplog.at_level(logging.ERROR, logger="system.edge.web.app"):
        response = client.post("/api/predict", data=png_bytes(), content_type="image/png")
    assert_json_error(response, 500, "internal error (RuntimeError)")
    assert "secret detail" not in response.get_json()["error"]  # in the log, not in the response
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


def test_predict_refuses_a_cross_origin_post(client: FlaskClient, fake: FakeDeviceView) -> None:
    response = client.post(
        "/api/predict", data=png_bytes(), content_type="image/png", headers={"Origin": "https://evil.example"}
    )
    assert_json_error(response, 403, "cross-origin")
    same = client.post(
        "/api/predict", data=png_bytes(), content_type="image/png", headers={"Origin": "http://localhost"}
    )
    assert same.status_code == 200


def test_predict_is_get_405_json(client: FlaskClient) -> None:
    response = client.get("/api/predict")
    assert_json_error(response, 405, "method is not allowed")
    assert "POST" in response.headers["Allow"]


# Errors


@pytest.mark.parametrize("path", ["/api/nope", "/nope", "/static/missing.js"])
def test_unknown_paths_are_404_json(client: FlaskClient, path: str) -> None:
    assert_json_error(client.get(path), 404, "not found")


@pytest.mark.parametrize("path", ["/api/status", "/api/models", "/api/jobs", "/api/results/latest", "/metrics"])
def test_a_failing_view_is_500_json_and_logged(
    client: FlaskClient, fake: FakeDeviceView, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    fake.failure = KeyError("boom")
    with caplog.at_level(logging.ERROR, logger="system.edge.web.app"):
        assert_json_error(client.get(path), 500, "internal error (KeyError)")
    assert any(r.name == "system.edge.web.app" and r.exc_info for r in caplog.records)


def test_an_edgesim_error_keeps_its_message(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.failure = AgentUnavailableError("cannot reach unix:///tmp/edge_agent")
    assert_json_error(client.get("/api/status"), 500, "AgentUnavailableError: cannot reach unix:///tmp/edge_agent")


def test_max_upload_bytes_must_be_positive(fake: FakeDeviceView) -> None:
    with pytest.raises(ValueError, match="positive"):
        create_app(fake, max_upload_bytes=0)


# Headers


@pytest.mark.parametrize("path", ["/", "/api/status", "/api/nope", "/healthz", "/static/app.js"])
def test_every_response_has_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY == "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/api/status", "/api/results/latest", "/api/nope", "/healthz", "/metrics"])
def test_api_responses_are_not_cached(client: FlaskClient, path: str) -> None:
    assert client.get(path).headers["Cache-Control"] == "no-store"


def test_a_500_still_has_the_headers(client: FlaskClient, fake: FakeDeviceView) -> None:
    fake.failure = RuntimeError("x")
    response = client.get("/api/jobs")
    assert response.status_code == 500 and response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# The server


def waitress_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("waitress-", "web-ui:")) and t.is_alive()}


def test_web_server_serves_on_the_port_it_picked_and_stops_cleanly(fake: FakeDeviceView) -> None:
    before = waitress_threads()
    server = WebServer(create_app(fake), port=0).start()
    try:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/"
        with urllib.request.urlopen(server.url + "api/status", timeout=5) as response:
            assert json.load(response) == device_status()
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "api/status", timeout=2)
    assert waitress_threads() == before


def test_web_server_says_which_address_is_in_use(fake: FakeDeviceView) -> None:
    before = waitress_threads()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            WebServer(create_app(fake), port=port).start()
    assert waitress_threads() == before


def test_web_server_starts_once(fake: FakeDeviceView) -> None:
    server = WebServer(create_app(fake), port=0)
    server.stop()  # before start: nothing to close
    with pytest.raises(RuntimeError, match="starts once"):
        server.start()
