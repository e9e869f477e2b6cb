"""The `AWS.SageMaker.Edge.Agent` gRPC service over the model table and the capture service.

Each RPC maps edgesim errors to the status codes the original agent documents
(seed-behaviours.md section 1) with a message that says what to fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar, cast

import grpc
import numpy as np

from system.agent.capture import CapturedItem, CaptureRecord, CaptureService
from system.agent.models import LoadedModel, ModelTable, check_model_name, run_model
from system.agent.shared_memory import SharedMemoryReader
from system.agent.tensors import DTYPE_NAMES, DTYPES, TensorSpec, decode_payload
from system.agent.wire import inline_tensor, spec_metadata
from system.config import AgentSettings
from system.errors import AgentError, InvalidArgumentError, ModelNotFoundError, OutOfRangeError
from system.logs import fields
from system.proto import agent_pb2 as pb
from system.proto import agent_pb2_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")
_CAPTURE_ID_MAX = 128


def model_message(model: LoadedModel) -> pb.Model:
    return pb.Model(
        url=model.url,
        name=model.name,
        input_tensor_metadatas=[spec_metadata(s) for s in model.manifest.inputs],
        output_tensor_metadatas=[spec_metadata(s) for s in model.manifest.outputs],
    )


def _sent_dtype(tensor: pb.Tensor) -> str | None:
    if not tensor.HasField("tensor_metadata"):
        return None
    value = tensor.tensor_metadata.data_type
    if value not in DTYPE_NAMES:
        raise InvalidArgumentError(f"tensor data_type {value} is not a DataType")
    return DTYPE_NAMES[value]


def _payload(tensor: pb.Tensor, expected: int, what: str, shared: SharedMemoryReader) -> bytes:
    """The tensor's payload: its inline bytes, or a copy out of the client's shared memory."""
    which = tensor.WhichOneof("data")
    if which == "byte_data":
        return tensor.byte_data
    if which == "shared_memory_handle":
        handle = tensor.shared_memory_handle
        return shared.read(handle.segment_id, handle.offset, handle.size, expected)
    raise InvalidArgumentError(f"{what} carries no data: set byte_data or shared_memory_handle")


def _match_inputs(specs: tuple[TensorSpec, ...], tensors: list[pb.Tensor]) -> list[tuple[TensorSpec, pb.Tensor]]:
    """Pair request tensors with model inputs: by name when named, else by position."""
    if len(tensors) != len(specs):
        raise InvalidArgumentError(f"the model takes {len(specs)} input tensor(s), the request has {len(tensors)}")
    by_name = {s.name: s for s in specs}
    pairs = []
    for index, tensor in enumerate(tensors):
        name = tensor.tensor_metadata.name.decode(errors="replace") if tensor.HasField("tensor_metadata") else ""
        if not name:
            pairs.append((specs[index], tensor))
        elif name in by_name:
            pairs.append((by_name[name], tensor))
        else:
            raise InvalidArgumentError(f"the model has no input named '{name}'; its inputs are {sorted(by_name)}")
    if len({spec.name for spec, _ in pairs}) != len(pairs):
        raise InvalidArgumentError("the request names the same input tensor twice")
    return sorted(pairs, key=lambda pair: specs.index(pair[0]))


class AgentServicer(agent_pb2_grpc.AgentServicer):  # type: ignore[misc]  # generated base is untyped
    def __init__(
        self,
        settings: AgentSettings,
        models: ModelTable,
        capture: CaptureService,
        shared_memory: SharedMemoryReader,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._models = models
        self._capture = capture
        self._shared = shared_memory
        self._clock = clock

    def _call(self, context: grpc.ServicerContext, rpc: str, body: Callable[[], T]) -> T:
        try:
            return body()
        except AgentError as exc:
            log.info("rpc refused", extra=fields(rpc=rpc, code=exc.code, error=exc.message))
            context.abort(getattr(grpc.StatusCode, exc.code), exc.message)
        except Exception as exc:
            log.exception("rpc failed", extra=fields(rpc=rpc))
            context.abort(grpc.StatusCode.INTERNAL, f"{rpc} failed: {type(exc).__name__}: {exc}")
        raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises

    # Model control -------------------------------------------------------------------------
    def LoadModel(self, request: pb.LoadModelRequest, context: grpc.ServicerContext) -> pb.LoadModelResponse:
        return self._call(
            context,
            "LoadModel",
            lambda: pb.LoadModelResponse(model=model_message(self._models.load(request.name, request.url))),
        )

    def UnLoadModel(self, request: pb.UnLoadModelRequest, context: grpc.ServicerContext) -> pb.UnLoadModelResponse:
        def body() -> pb.UnLoadModelResponse:
            self._models.unload(request.name)
            return pb.UnLoadModelResponse()

        return self._call(context, "UnLoadModel", body)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        return self._call(
            context, "ListModels", lambda: pb.ListModelsResponse(models=[model_message(m) for m in self._models.list()])
        )

    def DescribeModel(
        self, request: pb.DescribeModelRequest, context: grpc.ServicerContext
    ) -> pb.DescribeModelResponse:
        def body() -> pb.DescribeModelResponse:
            check_model_name(request.name)
            return pb.DescribeModelResponse(model=model_message(self._models.get(request.name)))

        return self._call(context, "DescribeModel", body)

    # Inference -----------------------------------------------------------------------------
    def Predict(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        return self._call(context, "Predict", lambda: self._predict(request))

    def _predict(self, request: pb.PredictRequest) -> pb.PredictResponse:
        with self._models.using(request.name) as model:
            arrays = []
            for spec, tensor in _match_inputs(model.manifest.inputs, list(request.tensors)):
                sent = _sent_dtype(tensor)
                requested = tuple(tensor.tensor_metadata.shape) if tensor.HasField("tensor_metadata") else None
                shape = spec.resolve_shape(requested)
                expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[sent or spec.dtype].itemsize
                payload = _payload(tensor, expected, f"input '{spec.name}'", self._shared)
                arrays.append(
                    decode_payload(spec, payload, sent, shape, accept_float32=self._settings.accept_float32_payloads)
                )
            outputs = run_model(model, arrays)
            # Outputs are returned in the declared dtype, whatever the runtime produced.
            return pb.PredictResponse(
                tensors=[
                    inline_tensor(spec.name, np.asarray(out, dtype=spec.numpy_dtype))
                    for spec, out in zip(model.manifest.outputs, outputs, strict=True)
                ]
            )

    # Data capture --------------------------------------------------------------------------
    def CaptureData(self, request: pb.CaptureDataRequest, context: grpc.ServicerContext) -> pb.CaptureDataResponse:
        def body() -> pb.CaptureDataResponse:
            self._capture.submit(self._capture_record(request))
            return pb.CaptureDataResponse()

        return self._call(context, "CaptureData", body)

    def _capture_record(self, request: pb.CaptureDataRequest) -> CaptureRecord:
        capture_id = request.capture_id
        if (
            not capture_id
            or len(capture_id) > _CAPTURE_ID_MAX
            or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in capture_id)
        ):
            raise InvalidArgumentError(
                f"capture_id {capture_id!r} is invalid: use 1-{_CAPTURE_ID_MAX} characters of "
                "A-Z a-z 0-9 - _ . (a UUID)"
            )
        try:
            self._models.get(request.model_name)
        except ModelNotFoundError as exc:
            raise ModelNotFoundError(f"cannot capture for '{request.model_name}': no such model is loaded") from exc
        now = self._clock()
        if request.HasField("inference_timestamp"):
            stamp = request.inference_timestamp.seconds + request.inference_timestamp.nanos / 1e9
            if stamp > now + self._settings.capture.max_future_skew_seconds:
                raise OutOfRangeError(f"inference_timestamp {stamp:.3f} is {stamp - now:.1f} s in the future")
        else:
            stamp = now
        return CaptureRecord(
            model_name=request.model_name,
            capture_id=capture_id,
            inference_time=stamp,
            inputs=[self._captured_tensor(t, f"input_tensors[{i}]") for i, t in enumerate(request.input_tensors)],
            outputs=[self._captured_tensor(t, f"output_tensors[{i}]") for i, t in enumerate(request.output_tensors)],
            aux_inputs=[self._captured_aux(a, f"inputs[{i}]") for i, a in enumerate(request.inputs)],
            aux_outputs=[self._captured_aux(a, f"outputs[{i}]") for i, a in enumerate(request.outputs)],
        )

    def _captured_tensor(self, tensor: pb.Tensor, what: str) -> CapturedItem:
        if not tensor.HasField("tensor_metadata"):
            raise InvalidArgumentError(f"{what}: tensor_metadata (name, data_type, shape) is required for capture")
        meta = tensor.tensor_metadata
        dtype = _sent_dtype(tensor) or "FLOAT32"
        shape = tuple(meta.shape)
        if any(d < 0 for d in shape):
            raise InvalidArgumentError(f"{what}: shape {list(shape)} has a negative dimension")
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize
        data = _payload(tensor, expected, what, self._shared)
        if len(data) != expected:
            raise InvalidArgumentError(
                f"{what}: {len(data)} bytes do not match {dtype}[{','.join(map(str, shape))}] ({expected} bytes)"
            )
        content_type = f"Tensor[{dtype}; {', '.join(str(d) for d in shape)}]"
        return CapturedItem(meta.name.decode(errors="replace"), data, content_type)

    def _captured_aux(self, aux: pb.AuxilaryData, what: str) -> CapturedItem:
        which = aux.WhichOneof("data")
        if which == "byte_data":
            data = aux.byte_data
        elif which == "shared_memory_handle":
            handle = aux.shared_memory_handle
            if not handle.size:
                raise InvalidArgumentError(f"{what}: a shared memory handle for auxiliary data needs its size")
            data = self._shared.read(handle.segment_id, handle.offset, handle.size, handle.size)
        else:
            raise InvalidArgumentError(f"{what}: auxiliary data carries no data")
        encoding = pb.Encoding.Name(aux.encoding) if aux.encoding in pb.Encoding.values() else "NONE"
        return CapturedItem(aux.name, data, encoding, encoding=encoding)

    def GetCaptureDataStatus(
        self, request: pb.GetCaptureDataStatusRequest, context: grpc.ServicerContext
    ) -> pb.GetCaptureDataStatusResponse:
        return self._call(
            context,
            "GetCaptureDataStatus",
            lambda: pb.GetCaptureDataStatusResponse(
                status=cast(pb.CaptureDataStatus, pb.CaptureDataStatus.Value(self._capture.status(request.capture_id)))
            ),
        )
