"""GrpcEdgeAgentClient: the typed client of the Edge Agent that the rest of edgesim uses.

Unlike the seed's `edgeagentclient.py` it never returns None for a failure: every gRPC error
becomes the matching edgesim error (ModelNotFoundError, InvalidArgumentError...), with the
agent's message.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
import numpy as np

from system.agent.tensors import TensorSpec, dtype_name_of
from system.agent.wire import inline_tensor, metadata, spec_of, to_array
from system.errors import (
    AgentError,
    AgentInternalError,
    AgentUnavailableError,
    CaptureAlreadyExistsError,
    CaptureNotFoundError,
    InvalidArgumentError,
    ModelAlreadyLoadedError,
    ModelNotFoundError,
    OutOfRangeError,
    PackageNotFoundError,
    PackageRejectedError,
    ResourceExhaustedError,
)
from system.proto import agent_pb2 as pb
from system.proto import agent_pb2_grpc

if TYPE_CHECKING:
    from system.agent.shared_memory import SharedMemoryWriter

_ERRORS: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: ModelNotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: ModelAlreadyLoadedError,
    grpc.StatusCode.FAILED_PRECONDITION: PackageRejectedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRangeError,
    grpc.StatusCode.UNAVAILABLE: AgentUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: AgentUnavailableError,
}
_CAPTURE_ERRORS: dict[grpc.StatusCode, type[AgentError]] = {
    grpc.StatusCode.ALREADY_EXISTS: CaptureAlreadyExistsError,
}


@dataclass(frozen=True)
class ModelInfo:
    name: str
    url: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def _info(model: pb.Model) -> ModelInfo:
    return ModelInfo(
        name=model.name,
        url=model.url,
        inputs=tuple(spec_of(m) for m in model.input_tensor_metadatas),
        outputs=tuple(spec_of(m) for m in model.output_tensor_metadatas),
    )


def _translate(exc: grpc.RpcError, table: Mapping[grpc.StatusCode, type[AgentError]] = _ERRORS) -> AgentError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    error_type = table.get(code) or _ERRORS.get(code, AgentInternalError)
    return error_type(f"{code.name}: {details}")


class GrpcEdgeAgentClient:
    """Client of one agent. Thread-safe; `close()` frees its channel and shared memory."""

    def __init__(self, target: str, timeout: float = 30.0) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
                # gRPC backs off up to 120 s between reconnects by default: after a long agent outage
                # the edge app would not see the restarted agent for two minutes. A local socket is
                # cheap to retry.
                ("grpc.max_reconnect_backoff_ms", 5_000),
            ],
        )
        self._stub = agent_pb2_grpc.AgentStub(self._channel)
        self._shm: SharedMemoryWriter | None = None

    def wait_ready(self, timeout: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise AgentUnavailableError(f"no agent answering at {self.target} after {timeout:.0f} s") from exc

    def load_model(self, name: str, url: str) -> ModelInfo:
        try:
            return _info(
                self._stub.LoadModel(pb.LoadModelRequest(name=name, url=url), timeout=max(self.timeout, 300)).model
            )
        except grpc.RpcError as exc:
            raise _translate(exc, {grpc.StatusCode.NOT_FOUND: PackageNotFoundError}) from None

    def unload_model(self, name: str) -> None:
        try:
            self._stub.UnLoadModel(pb.UnLoadModelRequest(name=name), timeout=max(self.timeout, 300))
        except grpc.RpcError as exc:
            raise _translate(exc) from None

    def list_models(self) -> list[ModelInfo]:
        try:
            return [_info(m) for m in self._stub.ListModels(pb.ListModelsRequest(), timeout=self.timeout).models]
        except grpc.RpcError as exc:
            raise _translate(exc) from None

    def describe_model(self, name: str) -> ModelInfo:
        try:
            return _info(self._stub.DescribeModel(pb.DescribeModelRequest(name=name), timeout=self.timeout).model)
        except grpc.RpcError as exc:
            raise _translate(exc) from None

    def predict(
        self,
        name: str,
        inputs: np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray],
        *,
        shared_memory: bool = False,
    ) -> dict[str, np.ndarray]:
        """Run `name` on `inputs` (one array, a list in input order, or a dict by input name).

        Each array's dtype and shape are sent as its metadata. Returns outputs by name.
        """
        if isinstance(inputs, np.ndarray):
            named: list[tuple[str, np.ndarray]] = [("", inputs)]
        elif isinstance(inputs, Mapping):
            named = list(inputs.items())
        else:
            named = [("", array) for array in inputs]
        request = pb.PredictRequest(name=name)
        for slot, (input_name, array) in enumerate(named):
            array = np.ascontiguousarray(array)
            tensor = request.tensors.add()  # filled in place: appending a built Tensor would copy it
            tensor.tensor_metadata.CopyFrom(metadata(input_name, dtype_name_of(array.dtype), array.shape))
            if not shared_memory:
                tensor.byte_data = array.tobytes()
                continue
            if self._shm is None:
                from system.agent.shared_memory import SharedMemoryWriter  # sysv_ipc: edgesim[device]

                self._shm = SharedMemoryWriter()
            segment_id, size = self._shm.write(slot, array.data.cast("B"))
            tensor.shared_memory_handle.CopyFrom(pb.SharedMemoryHandle(size=size, offset=0, segment_id=segment_id))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _translate(exc) from None
        return {t.tensor_metadata.name.decode(errors="replace"): to_array(t) for t in response.tensors}

    def capture_data(
        self,
        model_name: str,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        *,
        capture_id: str | None = None,
        inference_time: float | None = None,
    ) -> str:
        """Queue a capture; returns its id (a new UUID unless given)."""
        capture_id = str(uuid.uuid4()) if capture_id is None else capture_id
        stamp = time.time() if inference_time is None else inference_time
        request = pb.CaptureDataRequest(
            model_name=model_name,
            capture_id=capture_id,
            inference_timestamp=pb.Timestamp(seconds=int(stamp), nanos=int((stamp % 1) * 1e9)),
        )
        for target, arrays in ((request.input_tensors, inputs), (request.output_tensors, outputs)):
            target.extend(inline_tensor(tensor_name, array) for tensor_name, array in arrays.items())
        try:
            self._stub.CaptureData(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise _translate(exc, _CAPTURE_ERRORS) from None
        return capture_id

    def capture_status(self, capture_id: str) -> str:
        """IN_PROGRESS, SUCCESS or FAILURE; CaptureNotFoundError for an unknown id."""
        try:
            response = self._stub.GetCaptureDataStatus(
                pb.GetCaptureDataStatusRequest(capture_id=capture_id), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise _translate(exc, {grpc.StatusCode.NOT_FOUND: CaptureNotFoundError}) from None
        return str(pb.CaptureDataStatus.Name(response.status))

    def close(self) -> None:
        if self._shm is not None:
            self._shm.close()
            self._shm = None
        self._channel.close()

    def __enter__(self) -> GrpcEdgeAgentClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
