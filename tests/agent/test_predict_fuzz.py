"""hypothesis: random shapes, dtypes and byte lengths sent to Predict only ever produce OK or
INVALID_ARGUMENT, and the server stays up."""

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


def test_server_is_still_serving_after_the_fuzzing(fuzz_agent) -> None:
    agent, stub = fuzz_agent
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(agent.target))
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    x = np.zeros((1, 32, 32, 3), np.float32)
    assert stub.Predict(pb.PredictRequest(name="f32", tensors=[pb.Tensor(byte_data=x.tobytes())]), timeout=10)
