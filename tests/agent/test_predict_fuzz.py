"""hypothesis: random shapes, dtypes and byte lengths sent to Predict only ever produce OK or
INVALID_ARGUMENT, random shared-memory handles INVALID_ARGUMENT, random CaptureData requests OK or a
documented code, and the server stays up."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from system.proto import agent_pb2 as pb
from tests.agent.helpers import raw_stub


@pytest.fixture(scope="module")
def fuzz_agent(tmp_path_factory, zoo):
    import tempfile
    from pathlib import Path

    from system.agent.server import EdgeAgent
    from system.config import AgentSettings, CaptureSettings

    folder = Path(tempfile.mkdtemp(prefix="es-fuzz-"))
    agent = EdgeAgent(
        AgentSettings(socket_path=str(folder / "a.sock"), capture=CaptureSettings(disk_path=str(folder / "cap")))
    )
    agent.start()
    stub = raw_stub(agent.target)
    stub.LoadModel(pb.LoadModelRequest(name="f32", url=str(zoo.packages["tensorflow"])))
    stub.LoadModel(pb.LoadModelRequest(name="u8", url=str(zoo.uint8_package)))
    stub.LoadModel(pb.LoadModelRequest(name="lite", url=str(zoo.packages["tflite"])))
    yield agent, stub
    agent.stop(grace=1.0)


tensors = st.builds(
    lambda name, dtype, shape, payload, with_meta: pb.Tensor(
        tensor_metadata=pb.TensorMetadata(name=name, data_type=dtype, shape=shape) if with_meta else None,
        byte_data=payload,
    ),
    name=st.sampled_from([b"", b"input_image", b"x", b"\xff\xfe"]),
    dtype=st.integers(min_value=-1, max_value=9),
    shape=st.one_of(st.just([1, 32, 32, 3]), st.lists(st.integers(min_value=-3, max_value=40), max_size=5)),
    payload=st.one_of(
        st.binary(max_size=64),
        st.sampled_from([3072, 3072 * 2, 3072 * 4, 3072 * 8, 3071 * 4]).map(lambda n: bytes(n)),
        st.builds(
            lambda v: np.full((1, 32, 32, 3), v, np.float32).tobytes(),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
        ),
    ),
    with_meta=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(["f32", "u8", "lite"]), request_tensors=st.lists(tensors, max_size=3))
def test_random_predicts_end_ok_or_invalid_argument(fuzz_agent, model: str, request_tensors: list) -> None:
    _, stub = fuzz_agent
    try:
        response = stub.Predict(pb.PredictRequest(name=model, tensors=request_tensors), timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc.details()
    else:
        assert len(response.tensors) == 1
        assert np.frombuffer(response.tensors[0].byte_data, np.float32).shape == (2,)


# A random System V segment id attaches to nothing (or is refused read-only): never a crash.
shm_handles = st.builds(
    lambda size, offset, segment: pb.SharedMemoryHandle(size=size, offset=offset, segment_id=segment),
    size=st.integers(min_value=0, max_value=2**64 - 1),
    offset=st.integers(min_value=0, max_value=2**64 - 1),
    segment=st.integers(min_value=0, max_value=2**64 - 1),
)
aux_data = st.builds(
    lambda name, encoding, data, handle: (
        pb.AuxilaryData(name=name, encoding=encoding, byte_data=data)
        if handle is None
        else pb.AuxilaryData(name=name, encoding=encoding, shared_memory_handle=handle)
    ),
    name=st.text(max_size=12),
    encoding=st.integers(min_value=-1, max_value=5),
    data=st.binary(max_size=64),
    handle=st.none() | shm_handles,
)
# What CaptureData may answer (seed-behaviours.md section 1); UNKNOWN or INTERNAL would be a crash.
CAPTURE_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    model=st.sampled_from(["f32", "u8", "missing", ""]),
    capture_id=st.text(max_size=40),
    seconds=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    nanos=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    inputs=st.lists(tensors, max_size=2),
    outputs=st.lists(tensors, max_size=2),
    shm_inputs=st.lists(shm_handles.map(lambda h: pb.Tensor(shared_memory_handle=h)), max_size=1),
    aux=st.lists(aux_data, max_size=2),
)
def test_random_capture_data_ends_ok_or_a_documented_code(
    fuzz_agent, model, capture_id, seconds, nanos, inputs, outputs, shm_inputs, aux
) -> None:
    _, stub = fuzz_agent
    request = pb.CaptureDataRequest(
        model_name=model,
        capture_id=capture_id,
        inference_timestamp=pb.Timestamp(seconds=seconds, nanos=nanos),
        input_tensors=inputs + shm_inputs,
        output_tensors=outputs,
        inputs=aux,
        outputs=aux[:1],
    )
    try:
        stub.CaptureData(request, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() in CAPTURE_CODES, (exc.code(), exc.details())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(handle=shm_handles, with_meta=st.booleans())
def test_a_predict_with_a_random_shared_memory_handle_is_invalid_argument(fuzz_agent, handle, with_meta) -> None:
    _, stub = fuzz_agent
    meta = pb.TensorMetadata(name=b"input_image", data_type=pb.FLOAT32, shape=[1, 32, 32, 3]) if with_meta else None
    with pytest.raises(grpc.RpcError) as raised:
        stub.Predict(
            pb.PredictRequest(name="f32", tensors=[pb.Tensor(tensor_metadata=meta, shared_memory_handle=handle)]),
            timeout=30,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()


def test_server_is_still_serving_after_the_fuzzing(fuzz_agent) -> None:
    agent, stub = fuzz_agent
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(agent.target))
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    x = np.zeros((1, 32, 32, 3), np.float32)
    assert stub.Predict(pb.PredictRequest(name="f32", tensors=[pb.Tensor(byte_data=x.tobytes())]), timeout=10)
