"""The web UI's HTTP surface: every route, every error as JSON, upload limits, security headers.

`FakeDeviceView` (tests/web_fakes.py, also used by tests/browser) records what the app asked and holds
settable state.
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

from system.edge.web.app import CONTENT_SECURITY_POLICY, create_app
from system.edge.web.server import WebServer
from system.errors import AgentUnavailableError, ConfigError
from tests.web_fakes import METRICS, FakeDeviceView, device_status, job_dict, make_result, png_bytes, serving_models


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
