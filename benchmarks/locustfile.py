"""Load test of the Edge Agent's gRPC Predict and of the device web UI's `POST /api/predict` (issue 8).

Two user classes, chosen with locust's `--tags`:

- `grpc`: `GrpcPredictUser` calls Predict through `GrpcEdgeAgentClient`, with the image as
  `byte_data` or through System V shared memory (`--transport`; shared memory only works on the
  agent's machine), and reports each call as request type `grpc`, name `Predict`;
- `http`: `WebPredictUser` posts a PNG to the device web UI's `POST /api/predict` (multipart field
  `image`, with the `Origin` the same-origin check expects) at `--host`.

Options: `--agent` (gRPC target), `--model` (identifier loaded in the agent), `--input-size`
(square side; by default the model's own, from DescribeModel, else 224), `--transport`. Every user
sends one fixed random image, made when it starts, back to back (no wait time: a closed loop).

Synchronous and gevent-safe (the locust style): `init_gevent()` runs before any channel exists,
so that a blocking gRPC call yields to the other users instead of stalling the gevent hub (without
it the gRPC latencies are understated and the HTTP ones inflated: feasibility.md section 7).

    locust -f benchmarks/locustfile.py --headless --config DIR/locust.conf --tags grpc http -u 8 -r 4 -t 30s
"""

from __future__ import annotations

import io
import itertools
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from grpc.experimental import gevent as grpc_gevent
from locust import FastHttpUser, User, constant, events, tag, task
from locust.env import Environment
from urllib3 import encode_multipart_formdata

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.errors import EdgesimError

grpc_gevent.init_gevent()  # before any channel: gRPC's completion queue then polls from a greenlet

DEFAULT_AGENT = "unix:///tmp/edge_agent"  # the original agent's default socket
DEFAULT_MODEL = "img-classification-1"
DEFAULT_SIDE = 224
TRANSPORTS = ("byte_data", "shared_memory")
DESCRIBE_TIMEOUT_S = 10.0

_log = logging.getLogger(__name__)
_seeds = itertools.count()  # one image per user, different per user, the same from run to run
_side_cache: dict[tuple[str, str], int] = {}  # (agent, model) -> side


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]  # locust leaves it untyped
def add_options(parser: Any) -> None:
    parser.add_argument("--agent", default=DEFAULT_AGENT, help="the agent's gRPC target, e.g. unix:///path/agent.sock")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="identifier of a model loaded in the agent")
    parser.add_argument(
        "--input-size", type=int, default=0, help="square image side; 0 (default): the model's, else 224"
    )
    parser.add_argument("--transport", choices=TRANSPORTS, default="byte_data", help="how Predict sends the image")


@events.init.add_listener  # type: ignore[untyped-decorator]
def keep_tagged_users(environment: Environment, **_kwargs: Any) -> None:
    """Drop the user classes `--tags`/`--exclude-tags` leave without a task.

    locust filters tasks by tag but keeps a user class with none left, and then fails to start it.
    """
    options = environment.parsed_options
    tags = set(getattr(options, "tags", None) or ())
    excluded = set(getattr(options, "exclude_tags", None) or ())

    def runs(user_class: type[User]) -> bool:
        task_tags = [set(getattr(t, "locust_tag_set", ())) for t in user_class.tasks]
        return any((not tags or t & tags) and not t & excluded for t in task_tags)

    environment.user_classes[:] = [c for c in environment.user_classes if runs(c)]


def input_side(options: Any) -> int:
    """`--input-size`, else the height of the model's first input (DescribeModel), else 224."""
    if options.input_size > 0:
        return int(options.input_size)
    key = (options.agent, options.model)
    if key not in _side_cache:
        _side_cache[key] = _model_side(options.agent, options.model)
    return _side_cache[key]


def _model_side(agent: str, model: str) -> int:
    try:
        with GrpcEdgeAgentClient(agent, timeout=DESCRIBE_TIMEOUT_S) as client:
            shape = client.describe_model(model).inputs[0].shape
    except (EdgesimError, IndexError) as exc:
        _log.warning("cannot read the input size of %s at %s (%s); using %d", model, agent, exc, DEFAULT_SIDE)
        return DEFAULT_SIDE
    return shape[1] if len(shape) == 4 and shape[1] > 0 else DEFAULT_SIDE  # NHWC, as the packages are


def random_image(side: int) -> np.ndarray:
    """A fixed random RGB image, [1, side, side, 3] float32 in [0, 1): what the classifier takes."""
    return np.random.default_rng(next(_seeds)).random((1, side, side, 3), dtype=np.float32)


class GrpcPredictUser(User):
    """Predict on the agent, back to back, through edgesim's own client (one channel per user)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.model = options.model
        self.shared_memory = options.transport == "shared_memory"
        self.image = random_image(input_side(options))
        self.agent = GrpcEdgeAgentClient(options.agent)

    def on_stop(self) -> None:
        self.agent.close()  # also frees the user's shared memory segment

    @tag("grpc")
    @task
    def predict(self) -> None:
        started = time.perf_counter()
        length, error = 0, None
        try:
            outputs = self.agent.predict(self.model, self.image, shared_memory=self.shared_memory)
            length = sum(array.nbytes for array in outputs.values())
        except EdgesimError as exc:  # the agent's answer (NOT_FOUND, UNAVAILABLE...): a failed request
            error = exc
        self.environment.events.request.fire(
            request_type="grpc",
            name="Predict",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            context={},
        )


class WebPredictUser(FastHttpUser):
    """`POST /api/predict` on the device web UI at `--host`, with one random PNG per user."""

    wait_time = constant(0)

    def on_start(self) -> None:
        from PIL import Image  # edgesim[device]

        side = input_side(self.environment.parsed_options)
        pixels = (random_image(side)[0] * 255).astype(np.uint8)
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")  # ~150 KB at 224: under the UI's 8 MB upload limit
        self.body, content_type = encode_multipart_formdata({"image": ("locust.png", png.getvalue(), "image/png")})
        host = urlsplit(str(self.host))
        # The UI refuses a POST whose Origin is not its own host (system/edge/web/app.py, _check_same_origin).
        self.headers = {"Content-Type": content_type, "Origin": f"{host.scheme}://{host.netloc}"}

    @tag("http")
    @task
    def predict(self) -> None:
        with self.client.post(
            "/api/predict",
            data=self.body,  # type: ignore[arg-type]  # annotated str|dict, but geventhttpclient sends bytes as is
            headers=self.headers,
            name="/api/predict",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
            errors = (response.json() or {}).get("errors")
            if errors:  # the device answers 200 with the model's failure inside the result
                response.failure(f"inference errors: {errors}")
