"""The ports the product needs: small protocols named for what the domain does.

Real adapters live in `system/adapters/` (`S3ObjectStore`, `PahoMessageBus`...); in-process fakes
in `simulators/` (`InMemoryObjectStore`, the simulated broker's `InMemoryMessageBus`...). Every
backend of a port passes the same contract tests (`tests/contract/`). Errors are `EdgesimError`
subclasses (`system/errors.py`): adapters translate their library's exceptions at the boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class ObjectStore(Protocol):
    """A flat key -> bytes store: S3, a local folder, or an in-memory fake.

    Keys use "/" separators and never start with "/". A missing key raises `ObjectNotFoundError`;
    other failures `ObjectStoreError`.
    """

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...


class FileTransfer(Protocol):
    """Streaming transfers for objects too big for memory (model packages, capture batches)."""

    def size(self, key: str) -> int:
        """The object's size in bytes; `ObjectNotFoundError` if there is none."""
        ...

    def download_file(self, key: str, dest: Path, *, max_bytes: int | None = None) -> int:
        """Stream the object to `dest`, never holding it whole in memory; returns its size.

        Bytes already in `dest` from an interrupted download are kept and the rest is fetched
        with a ranged request (resume). `max_bytes` refuses bigger objects before any byte is
        written (`ObjectTooLargeError`).
        """
        ...

    def upload_file(self, path: Path, key: str) -> None:
        """Upload a file; multipart above the adapter's threshold."""
        ...


@dataclass(frozen=True)
class Message:
    """One MQTT message as a subscriber receives it."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


MessageHandler = Callable[[Message], None]


class Subscription(Protocol):
    def cancel(self) -> None:
        """Unsubscribe; no handler call starts after this returns."""
        ...


class MessageBus(Protocol):
    """Publish/subscribe over MQTT 3.1.1 semantics: topic filters with `+` and `#`, QoS 0 and 1.

    Handlers run one message at a time, in arrival order, never on the publisher's thread: they
    must be quick (hand long work to another thread). Subscribing before `connect()` is allowed
    (a persistent session needs it, or the messages the broker kept arrive before any handler).
    After a reconnect the bus re-subscribes by itself and, once the subscriptions are in place,
    calls the connect listeners again (a device re-asks for its pending jobs there).
    """

    @property
    def client_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    def connect(self, timeout: float = 10.0) -> None: ...

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """QoS 1 returns once the broker acknowledged (`MessageBusError` on timeout)."""
        ...

    def subscribe(self, topic_filter: str, handler: MessageHandler, qos: int = 1) -> Subscription: ...

    def add_connect_listener(self, listener: Callable[[], None]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class JobSpec:
    """What the cloud asks of a fleet: an AWS IoT job (CreateJob's fields, as boto3 names them)."""

    job_id: str
    targets: Sequence[str]  # thing or thing-group ARNs
    document: Mapping[str, Any]
    target_selection: str = "SNAPSHOT"  # or CONTINUOUS
    description: str = ""
    rollout: Mapping[str, Any] | None = None  # jobExecutionsRolloutConfig
    abort: Mapping[str, Any] | None = None  # abortConfig
    timeout: Mapping[str, Any] | None = None  # timeoutConfig
    retry: Mapping[str, Any] | None = None  # jobExecutionsRetryConfig


class JobsControl(Protocol):
    """The IoT Jobs control plane, cloud side. Returns boto3's response shapes (dicts)."""

    def create_job(self, spec: JobSpec) -> dict[str, Any]: ...

    def describe_job(self, job_id: str) -> dict[str, Any]: ...

    def list_job_executions_for_job(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]: ...

    def describe_job_execution(self, job_id: str, thing_name: str) -> dict[str, Any]: ...

    def cancel_job(self, job_id: str, *, force: bool = False, comment: str = "") -> None: ...

    def cancel_job_execution(self, job_id: str, thing_name: str, *, force: bool = False) -> None: ...


@dataclass(frozen=True)
class ModelVersion:
    group: str
    version: int
    arn: str
    model_url: str
    approval: str  # Approved | Rejected | PendingManualApproval
    metrics: Mapping[str, float] = field(default_factory=dict)


class ModelRegistry(Protocol):
    """Model package groups and versions with metrics and approval (SageMaker Model Registry)."""

    def ensure_group(self, group: str, description: str = "") -> None: ...

    def register(
        self, group: str, model_url: str, metrics: Mapping[str, float], approval: str = "PendingManualApproval"
    ) -> ModelVersion: ...

    def set_approval(self, version: ModelVersion, approval: str) -> ModelVersion: ...

    def versions(self, group: str, approval: str | None = None) -> list[ModelVersion]: ...

    def latest_approved(self, group: str) -> ModelVersion | None: ...


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Time as the product sees it: the wall clock, or a virtual clock that tests advance.

    Timeouts, rollout rates and retries all go through a Clock so that a scenario can run
    simulated hours in seconds (`simulators/clock.py` has `VirtualClock`).
    """

    def now(self) -> float:
        """Epoch seconds."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` once, `delay` seconds from now (on the clock's own thread)."""
        ...


class InferenceClient(Protocol):
    """The edge agent as the edge app uses it (`GrpcEdgeAgentClient` is the real one).

    Errors are `AgentError` subclasses carrying the gRPC status (`system/errors.py`).
    """

    def load_model(self, name: str, url: str) -> Any: ...

    def unload_model(self, name: str) -> None: ...

    def list_models(self) -> Sequence[Any]:
        """Loaded models; each has `.name` (the identifier) and `.url`."""
        ...

    def predict(self, name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        """Outputs by name (numpy arrays)."""
        ...

    def capture_data(
        self,
        model_name: str,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        *,
        capture_id: str | None = None,
        inference_time: float | None = None,
    ) -> str: ...
