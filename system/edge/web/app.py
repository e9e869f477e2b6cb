"""The web UI's Flask app: one HTML page and the JSON API it polls, over a `DeviceView`.

The seed rendered a Jinja page that reloaded itself every 5 s (`<meta http-equiv="refresh">`) and
pulled Bootstrap from a CDN. Here the page is static and local; static/app.js polls the API below
and updates the page in place, so a model swap shows without a reload and the device needs no
internet. Routes:

- `GET /`: the page.
- `GET /api/status`, `/api/models`, `/api/jobs`: what `DeviceView` returns (models and jobs wrapped
  in an object, models with the roster generation).
- `GET /api/results/latest`: the newest result with its images (404 before the first); it carries an
  ETag, so a poller sending `If-None-Match` gets 304 instead of the same images again.
- `GET /api/results?limit=N`: the newest N results (1..100, default 10), without images.
- `POST /api/predict`: run both models on an uploaded image (multipart field `image`, or a raw
  PNG/JPEG/BMP body; `?name=` names a raw upload).
- `GET /healthz`: 200 when the device says it is healthy, else 503; `GET /metrics`: Prometheus text.

Every error is a JSON object `{"error": message, "status": code}`, Flask's own 404/405/413 included.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import Forbidden, HTTPException, RequestEntityTooLarge

from system.edge.view import DeviceView
from system.errors import EdgesimError

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 8 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/bmp"})
# What a browser or curl may declare for a multipart file part whose type it does not know.
UNTYPED_PARTS = frozenset({"", "application/octet-stream"})
# Room for the multipart boundaries and part headers around an image of max_upload_bytes.
MULTIPART_SLACK_BYTES = 64 * 1024
RESULTS_LIMIT_DEFAULT = 10
RESULTS_LIMIT_MAX = 100
MAX_NAME_CHARS = 128
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text format 0.0.4
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"
NO_STORE_PREFIXES = ("/api/", "/healthz", "/metrics")


class _UploadError(Exception):
    """An upload the API refuses; becomes a JSON error with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _InOrderJSON(DefaultJSONProvider):
    """Keys in the order the device gave them: probabilities follow the model's labels, as the seed showed them."""

    sort_keys = False


def error_response(status: int, message: str) -> Response:
    """The API's one error shape."""
    return json_response({"error": message, "status": status}, status)


def json_response(payload: Any, status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def create_app(view: DeviceView, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> Flask:
    """A Flask app serving the page and the JSON API for `view`; uploads above `max_upload_bytes` get 413."""
    if max_upload_bytes <= 0:
        raise ValueError(f"max_upload_bytes must be positive, not {max_upload_bytes}")
    app = Flask(__name__)  # templates/ and static/ beside this module
    app.json = _InOrderJSON(app)
    # Werkzeug refuses a larger body before reading it; the image itself is checked against the exact limit.
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes + MULTIPART_SLACK_BYTES
    _add_error_handlers(app)
    _add_headers(app)
    _add_page_routes(app, view)
    _add_result_routes(app, view)
    _add_predict_route(app, view, max_upload_bytes)
    return app


def _add_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = error_response(exc.code or 500, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. a 405's Allow; the body is ours, so not its Content-Type
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception) -> Response:
        logger.exception("web request %s %s failed", request.method, request.path)
        if isinstance(exc, EdgesimError):  # our own errors carry messages meant for the caller
            return error_response(500, f"{type(exc).__name__}: {exc}")
        return error_response(500, f"internal error ({type(exc).__name__}); the device log has the details")


def _add_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.path.startswith(NO_STORE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        return response


def _add_page_routes(app: Flask, view: DeviceView) -> None:
    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/api/status")
    def status() -> Response:
        return json_response(view.status())

    @app.get("/api/models")
    def models() -> Response:
        generation = view.generation()  # read first: a swap in between makes the page fetch again
        return json_response({"models": view.models(), "generation": generation})

    @app.get("/api/jobs")
    def jobs() -> Response:
        return json_response({"jobs": view.jobs()})

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            status = view.status()
        except Exception as exc:  # a device that cannot say how it is is not healthy
            logger.exception("healthz: the device status failed")
            return json_response({"status": "unhealthy", "error": f"{type(exc).__name__}: {exc}"}, 503)
        if status.get("healthy") is True:
            return json_response({"status": "ok"})
        return json_response({"status": "unhealthy", "device": status}, 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(view.metrics_text(), content_type=METRICS_CONTENT_TYPE)


def _add_result_routes(app: Flask, view: DeviceView) -> None:
    @app.get("/api/results/latest")
    def latest_result() -> Response:
        result = view.latest_result()
        if result is None:
            return error_response(404, "no inference result yet")
        response = json_response(result.to_dict(images=True))
        # The sequence restarts with the device, so the timestamp goes into the tag too.
        response.set_etag(f"{result.sequence}-{result.timestamp!r}")
        response.make_conditional(request)  # 304 without a body when If-None-Match names this result
        return response

    @app.get("/api/results")
    def recent_results() -> Response:
        raw = request.args.get("limit", str(RESULTS_LIMIT_DEFAULT))
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= RESULTS_LIMIT_MAX:
            return error_response(400, f"limit must be an integer from 1 to {RESULTS_LIMIT_MAX}, not {raw!r}")
        results = view.recent_results(limit)[:limit]
        return json_response({"results": [r.to_dict(images=False) for r in results]})


def _add_predict_route(app: Flask, view: DeviceView, max_upload_bytes: int) -> None:
    @app.post("/api/predict")
    def predict() -> Response:
        _check_same_origin()
        try:
            data, name = _read_upload(max_upload_bytes)
        except RequestEntityTooLarge:  # Werkzeug's own cap, met before the body is read
            return error_response(413, f"the image is larger than {max_upload_bytes} bytes")
        except _UploadError as exc:
            return error_response(exc.status, exc.message)
        try:
            result = view.predict_image(data, name)
        except ValueError as exc:  # the DeviceView contract: the bytes are not a decodable image
            return error_response(400, f"cannot decode the image {name!r}: {exc}")
        return json_response(result.to_dict(images=True))


def _check_same_origin() -> None:
    """Refuse a POST another site's page makes (a form post needs no CORS preflight); curl sends no Origin."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        raise Forbidden(f"cross-origin request from {origin} refused")


def _read_upload(max_upload_bytes: int) -> tuple[bytes, str]:
    """The uploaded image's bytes and a display name; `_UploadError` says what is wrong with it."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        part = request.files.get("image")
        if part is None:
            raise _UploadError(400, "no image: send a multipart field 'image' or a raw image body")
        data, name = _read_part(part, max_upload_bytes), part.filename or "upload"
    elif mimetype in IMAGE_TYPES:
        data, name = request.get_data(cache=False), request.args.get("name") or "upload"
    elif not mimetype and not request.content_length:
        raise _UploadError(400, "no image: send a multipart field 'image' or a raw image body")
    else:
        raise _UploadError(415, f"unsupported content type {mimetype!r}: send {', '.join(sorted(IMAGE_TYPES))}")
    if len(data) > max_upload_bytes:
        raise _UploadError(413, f"the image is larger than {max_upload_bytes} bytes")
    if not data:
        raise _UploadError(400, "no image: the upload is empty")
    return data, _display_name(name)


def _read_part(part: FileStorage, max_upload_bytes: int) -> bytes:
    if part.mimetype not in IMAGE_TYPES | UNTYPED_PARTS:
        raise _UploadError(415, f"unsupported image type {part.mimetype!r}: send {', '.join(sorted(IMAGE_TYPES))}")
    return part.stream.read(max_upload_bytes + 1)


def _display_name(name: str) -> str:
    """The file's base name only (a browser may send a path), shortened: it is shown, never opened."""
    base = PurePosixPath(name.replace("\\", "/")).name
    return base[:MAX_NAME_CHARS] or "upload"
