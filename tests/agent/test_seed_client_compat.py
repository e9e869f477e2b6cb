"""A client written the way the seed's app/edgeagentclient.py works gets correct results.

The seed's client (seed-behaviours.md section 1): it copies name, dtype and shape from the
model's FIRST input metadata, sends the array as float32 bytes whatever the model declares,
reads the first output tensor's bytes as float32 and reshapes them to the reported shape. With
shm=True it sets only offset=0 and segment_id, leaving size 0.
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import sysv_ipc

from system.proto import agent_pb2 as pb
from system.proto import agent_pb2_grpc


class SeedStyleClient:
    """A transcription of the seed's wrapper's observable behaviour (not its code)."""

    def __init__(self, target: str) -> None:
        self.stub = agent_pb2_grpc.AgentStub(grpc.insecure_channel(target))
        self.model_map: dict[str, dict[str, list[pb.TensorMetadata]]] = {}

    def _refresh(self) -> None:
        models = self.stub.ListModels(pb.ListModelsRequest()).models
        self.model_map = {
            m.name: {"in": list(m.input_tensor_metadatas), "out": list(m.output_tensor_metadatas)} for m in models
        }

    def load_model(self, name: str, path: str) -> dict[str, dict[str, list[pb.TensorMetadata]]]:
        if name not in self.model_map:
            self.stub.LoadModel(pb.LoadModelRequest(url=path, name=name))
            self._refresh()
        return self.model_map

    def predict(self, name: str, x: np.ndarray, shm: bool = False) -> np.ndarray:
        first = self.model_map[name]["in"][0]
        meta = pb.TensorMetadata(name=first.name, data_type=first.data_type, shape=first.shape)
        if shm:
            t = pb.Tensor(tensor_metadata=meta, shared_memory_handle=pb.SharedMemoryHandle(offset=0, segment_id=x))
        else:
            t = pb.Tensor(tensor_metadata=meta, byte_data=x.astype(np.float32).tobytes())
        out = self.stub.Predict(pb.PredictRequest(name=name, tensors=[t])).tensors[0]
        return np.frombuffer(out.byte_data, dtype=np.float32).reshape(tuple(out.tensor_metadata.shape))


@pytest.fixture
def seed_client(start_agent, zoo):
    agent, _ = start_agent()
    return agent, SeedStyleClient(agent.target)


def test_seed_style_client_gets_the_model_output(seed_client, zoo) -> None:
    _, client = seed_client
    client.load_model("img-classification-1", str(zoo.packages["tensorflow"]))
    x = np.random.default_rng(0).random((1, 32, 32, 3)).astype(np.float64)  # the seed passes any array
    y = client.predict("img-classification-1", x)
    np.testing.assert_allclose(y, zoo.model(x.astype(np.float32)).numpy(), atol=1e-5)


def test_seed_style_client_float32_bytes_for_uint8_model_are_converted(seed_client, zoo) -> None:
    _, client = seed_client
    client.load_model("clf-u8", str(zoo.uint8_package))
    pixels = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3)).astype(np.float32)  # 0-255, as the seed's
    y = client.predict("clf-u8", pixels)
    np.testing.assert_allclose(y, zoo.uint8_model(pixels.astype(np.uint8)).numpy(), atol=1e-5)


def test_float32_bytes_that_do_not_fit_uint8_are_refused(seed_client, zoo) -> None:
    _, client = seed_client
    client.load_model("clf-u8", str(zoo.uint8_package))
    for bad in (np.full((1, 32, 32, 3), 0.5, np.float32), np.full((1, 32, 32, 3), 300.0, np.float32)):
        with pytest.raises(grpc.RpcError) as caught:
            client.predict("clf-u8", bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "without changing values" in caught.value.details()


def test_strict_agent_refuses_float32_bytes_for_uint8_model(start_agent, zoo) -> None:
    agent, _ = start_agent(accept_float32_payloads=False)
    client = SeedStyleClient(agent.target)
    client.load_model("clf-u8", str(zoo.uint8_package))
    with pytest.raises(grpc.RpcError) as caught:
        client.predict("clf-u8", np.zeros((1, 32, 32, 3), np.float32))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "float32-sized" in caught.value.details()


def test_seed_style_shared_memory_with_size_zero(seed_client, zoo) -> None:
    _, client = seed_client
    client.load_model("clf", str(zoo.packages["tflite"]))
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    segment = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, size=x.nbytes, mode=0o600)
    try:
        segment.write(x.tobytes())
        y = client.predict("clf", segment.id, shm=True)
    finally:
        segment.detach()
        segment.remove()
    np.testing.assert_allclose(y, zoo.model(x).numpy(), atol=1e-5)


def test_loading_an_already_loaded_name_is_already_exists_like_the_original(seed_client, zoo) -> None:
    agent, client = seed_client
    client.load_model("clf", str(zoo.packages["tensorflow"]))
    fresh = SeedStyleClient(agent.target)  # its cache starts empty, like the seed's after a restart
    with pytest.raises(grpc.RpcError) as caught:
        fresh.load_model("clf", str(zoo.packages["tensorflow"]))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
