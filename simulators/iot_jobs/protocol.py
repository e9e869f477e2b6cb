"""The MQTT face of the IoT Jobs data plane: topics and JSON in, replies and notifications out.

`JobsProtocol.handle(thing_name, topic, payload)` parses a publish under `$aws/things/<thing>/jobs/`,
checks JSON and field types, calls the model, and returns `Outgoing` messages: the accepted or
rejected reply for the requester, then any `notify`/`notify-next` broadcasts. It knows no MQTT
client; a front-end feeds it from the simulated broker or from a broker connection.
Payload rules: reference/iot-jobs-mqtt.md §0-§2 and §4.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from simulators.iot_jobs.configs import JOB_ID, THING_NAME
from simulators.iot_jobs.model import JobsModel
from simulators.iot_jobs.records import Notification, Outcome, RequestRejected, StateChange

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 128 * 1024  # §0: the MQTT payload limit of AWS IoT Core
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
OPERATIONS = ("get", "start-next", "describe", "update")


@dataclass(frozen=True)
class Outgoing:
    """A message to send: a reply only to `reply_to` (the requester), or a broadcast when it is None."""

    topic: str
    payload: bytes
    reply_to: str | None = None

    @property
    def is_reply(self) -> bool:
        return self.reply_to is not None


@dataclass(frozen=True)
class Handled:
    """What one request produced: the messages to send and the model's state changes."""

    messages: list[Outgoing]
    changes: list[StateChange] = field(default_factory=list)


@dataclass(frozen=True)
class Route:
    """A request topic: the thing, the operation (None: no such operation), the jobId if any."""

    thing: str
    operation: str | None
    job_id: str | None = None


def parse_topic(topic: str) -> Route | None:
    """The route of a request topic; None for anything that is not a jobs request.

    Reply topics (`.../accepted`, `.../rejected`) and `notify`/`notify-next` are what the data
    plane itself publishes, so a front-end subscribed to `$aws/things/+/jobs/#` sees them too:
    they are ignored, never answered (that would loop).
    """
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "$aws" or parts[1] != "things" or parts[3] != "jobs":
        return None
    thing, rest = parts[2], parts[4:]
    if (rest and rest[-1] in ("accepted", "rejected")) or rest in (["notify"], ["notify-next"]):
        return None
    if rest in (["get"], ["start-next"]):
        return Route(thing, rest[0])
    if len(rest) == 2 and rest[1] in ("get", "update"):
        return Route(thing, "describe" if rest[1] == "get" else "update", rest[0])
    return Route(thing, None)


def encode(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _invalid(message: str) -> RequestRejected:
    return RequestRejected("InvalidRequest", message)


class Fields:
    """Typed access to a request's JSON fields: a wrong type is InvalidRequest, null means absent."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body

    def long(self, name: str) -> int | None:
        value = self.body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not LONG_MIN <= value <= LONG_MAX:
            raise _invalid(f"{name} must be an integer")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _invalid(f"{name} must be true or false")
        return value

    def text(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid(f"{name} must be a string")
        return value

    def details(self) -> Mapping[str, Any] | None:
        value = self.body.get("statusDetails")
        if value is not None and not isinstance(value, dict):
            raise _invalid("statusDetails must be an object of string values")
        return value

    def version(self) -> int | None:
        """expectedVersion: a number (the SDKs) or a numeric string (the docs, embedded C): §1.4."""
        value = self.body.get("expectedVersion")
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            return int(value)
        if isinstance(value, str):
            raise _invalid("expectedVersion must be an integer")
        return self.long("expectedVersion")


class JobsProtocol:
    """Request parsing, dispatch to the model and reply building; `handle` never raises."""

    def __init__(self, model: JobsModel, *, rate_limit_per_second: int | None = None) -> None:
        self.model = model
        self.rate_limit_per_second = rate_limit_per_second
        self._window = (0, 0)  # (second, requests in it)
        self._injected: list[str] = []

    def inject(self, code: str, times: int = 1) -> None:
        """Fault injection: refuse the next `times` valid requests with `code` (e.g. InternalError)."""
        self._injected += [code] * times

    def handle(self, thing_name: str, topic: str, payload: bytes) -> list[Outgoing]:
        """Answer one publish: the reply (first) and the notifications it causes.

        `thing_name` is the requester the reply is addressed to; the thing acted on is the one in
        the topic (an IoT policy may let a client act for another thing). Never raises.
        """
        return self.process(thing_name, topic, payload).messages

    def process(self, thing_name: str, topic: str, payload: bytes) -> Handled:
        """`handle`, also returning the model's state changes (for observers)."""
        route = parse_topic(topic)
        if route is None:
            return Handled([])
        token: str | None = None
        try:
            if route.operation is None:
                token = self._token_of(payload)
                raise RequestRejected("InvalidTopic", f"{topic} is not an IoT Jobs operation")
            body = self._decode(payload)
            token = Fields(body).text("clientToken")
            self._admit()
            outcome = self._dispatch(route, Fields(body))
        except RequestRejected as error:
            return Handled([self._rejected(thing_name, topic, error, token)])
        except Exception:  # a simulator bug must not kill the caller's loop: answer like the service
            log.exception("IoT Jobs request failed", extra={"fields": {"topic": topic}})
            internal = RequestRejected("InternalError", "internal error")
            return Handled([self._rejected(thing_name, topic, internal, token)])
        reply = dict(outcome.reply)
        if token is not None:
            reply["clientToken"] = token
        accepted = Outgoing(f"{topic}/accepted", encode(reply), thing_name)
        return Handled([accepted, *self.broadcasts(outcome.notifications)], outcome.changes)

    @staticmethod
    def broadcasts(notifications: list[Notification]) -> list[Outgoing]:
        """`$aws/things/<thing>/jobs/notify` and `notify-next` messages for every subscriber."""
        return [Outgoing(f"$aws/things/{n.thing_name}/jobs/{n.kind}", encode(n.payload)) for n in notifications]

    # -- steps ---------------------------------------------------------------------------------

    @staticmethod
    def _decode(payload: bytes) -> dict[str, Any]:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise _invalid(f"payload over {MAX_PAYLOAD_BYTES} bytes")
        try:
            body = json.loads(bytes(payload).decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise RequestRejected("InvalidJson", f"payload is not valid UTF-8 JSON: {error}") from error
        if not isinstance(body, dict):
            raise _invalid("payload must be a JSON object")
        return body

    def _token_of(self, payload: bytes) -> str | None:
        """The clientToken of a payload that may be anything, to echo it on InvalidTopic."""
        try:
            token = Fields(self._decode(payload)).text("clientToken")
        except RequestRejected:
            return None
        return token

    def _admit(self) -> None:
        if self._injected:
            code = self._injected.pop(0)
            raise RequestRejected(code, f"injected {code}")
        if self.rate_limit_per_second is not None:
            second = int(self.model.now())
            count = self._window[1] + 1 if self._window[0] == second else 1
            self._window = (second, count)
            if count > self.rate_limit_per_second:
                raise RequestRejected("RequestThrottled", "rate exceeded")

    def _dispatch(self, route: Route, fields: Fields) -> Outcome:
        if not THING_NAME.fullmatch(route.thing):
            raise _invalid(f"invalid thingName {route.thing!r}: 1-128 of [a-zA-Z0-9:_-]")
        job_id = route.job_id or ""
        if route.operation in ("describe", "update") and job_id != "$next" and not JOB_ID.fullmatch(job_id):
            raise _invalid(f"invalid jobId {job_id!r}: 1-64 of [a-zA-Z0-9_-]")
        model = self.model
        if route.operation == "get":
            return model.get_pending(route.thing)
        if route.operation == "start-next":
            return model.start_next(
                route.thing, status_details=fields.details(), step_timeout=fields.long("stepTimeoutInMinutes")
            )
        if route.operation == "describe":
            return model.describe(
                route.thing,
                job_id,
                execution_number=fields.long("executionNumber"),
                include_document=fields.flag("includeJobDocument", True),
            )
        return model.update(
            route.thing,
            job_id,
            status=fields.text("status"),
            status_details=fields.details(),
            expected_version=fields.version(),
            execution_number=fields.long("executionNumber"),
            include_state=fields.flag("includeJobExecutionState", False),
            include_document=fields.flag("includeJobDocument", False),
            step_timeout=fields.long("stepTimeoutInMinutes"),
        )

    def _rejected(self, requester: str, topic: str, error: RequestRejected, token: str | None) -> Outgoing:
        """ErrorResponse (§2): executionState only for VersionMismatch and InvalidStateTransition."""
        body: dict[str, Any] = {"code": error.code, "message": error.message}
        if token is not None:
            body["clientToken"] = token
        body["timestamp"] = self.model.now_s()
        if error.execution_state is not None and error.code in ("VersionMismatch", "InvalidStateTransition"):
            body["executionState"] = error.execution_state
        return Outgoing(f"{topic}/rejected", encode(body), requester)
