"""One input for every path of the agent-overhead benchmark, and `POST /api/predict` as a timed call.

"Same input" across paths: the HTTP path must send an image file (a PNG), while the direct and
agent paths take a float tensor. So the benchmark makes one uint8 RGB image, encodes it as PNG once,
and derives the tensor the device itself would feed the model from that PNG: decoded by PIL and
pre-processed by `system.preprocessing.preprocess` with the package manifest's `Preprocessing`,
exactly as `DeviceApp.predict_image` and the inference engine do. Every path then computes the
same model on the same numbers, which `http_scores` lets the benchmark check before timing.
"""

from __future__ import annotations

import http.client
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

if TYPE_CHECKING:
    from system.agent.package import Manifest

MULTIPART_FIELD = "image"  # system/edge/web/app.py: the upload's multipart field


@dataclass(frozen=True)
class DeviceInput:
    """The PNG the HTTP path uploads, and the tensor the device makes of it (the other paths' input)."""

    png: bytes
    tensor: np.ndarray


def device_input(manifest: Manifest, side: int, seed: int) -> DeviceInput:
    """A seeded random `side`x`side` RGB image as PNG, and the manifest's pre-processing of the decoded PNG."""
    from PIL import Image

    from system.preprocessing import preprocess

    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    png = buffer.getvalue()
    with Image.open(io.BytesIO(png)) as decoded:  # decoded as DeviceApp.predict_image decodes an upload
        decoded.load()
        tensor = preprocess(decoded, manifest.preprocessing)
    return DeviceInput(png, tensor)


def class_labels(manifest: Manifest) -> tuple[str, ...]:
    """The labels the device names the classifier's outputs with: the manifest's, else its defaults."""
    from system.edge.postprocess import DEFAULT_LABELS

    return manifest.labels or DEFAULT_LABELS


class WebPredict:
    """`POST /api/predict` with one PNG, over one keep-alive HTTP/1.1 connection (a browser's habit).

    Sent as the locustfile sends it: multipart field `image`, with the `Origin` the UI's same-origin
    check expects. Calling it returns the answer's body; anything but 200 raises RuntimeError.
    """

    def __init__(self, host: str, png: bytes, *, timeout: float = 30.0) -> None:
        from urllib3 import encode_multipart_formdata

        url = urlsplit(host)
        self.body, content_type = encode_multipart_formdata({MULTIPART_FIELD: ("bench.png", png, "image/png")})
        self._headers = {"Content-Type": content_type, "Origin": f"{url.scheme}://{url.netloc}"}
        self._connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)

    def __call__(self) -> bytes:
        self._connection.request("POST", "/api/predict", body=self.body, headers=self._headers)
        response = self._connection.getresponse()
        answer = response.read()  # the whole body: a client has its answer only then
        if response.status != 200:
            raise RuntimeError(f"POST /api/predict: HTTP {response.status}: {answer[:300]!r}")
        return answer

    def close(self) -> None:
        self._connection.close()


def http_scores(answer: bytes, labels: tuple[str, ...]) -> np.ndarray:
    """The classification scores of an `/api/predict` answer, in the model's output order.

    RuntimeError when the device reports an error or no classification (the agent path would have
    raised instead, so a silent failure here would time a cheaper path than the others), or when it
    ran a segmentation model too (then the path would time two models).
    """
    result: dict[str, Any] = json.loads(answer)
    if result.get("errors") or not result.get("classification"):
        raise RuntimeError(f"the device gave no classification: errors {result.get('errors')}")
    if result.get("segmentation") is not None:
        raise RuntimeError("the device also ran a segmentation model: the HTTP path would time two models")
    probabilities = result["classification"]["probabilities"]
    return np.array([[probabilities[label] for label in labels]], dtype=np.float64)
