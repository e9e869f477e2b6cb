"""CaptureData and GetCaptureDataStatus: statuses, codes, flushing and the Edge Manager layout."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import grpc
import numpy as np
import pytest

from simulators.object_store import InMemoryObjectStore
from system.config import CaptureSettings
from system.errors import (
    CaptureAlreadyExistsError,
    CaptureNotFoundError,
    InvalidArgumentError,
    ModelNotFoundError,
    OutOfRangeError,
    ResourceExhaustedError,
)
from system.proto import agent_pb2 as pb
from tests.agent.helpers import raw_stub, status_of

X = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
Y = np.array([[0.25, 0.75]], np.float32)


def wait_status(client, capture_id: str, wanted: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    status = client.capture_status(capture_id)
    while status != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
        status = client.capture_status(capture_id)
    return status


@pytest.fixture
def capture_agent(start_agent, zoo):
    def factory(store=None, **capture):
        settings = CaptureSettings(
            **{"push_period_seconds": 0.2, "fleet_name": "line-1", "device_name": "dev-7", **capture}
        )
        store = store or InMemoryObjectStore()
        agent, client = start_agent(capture=settings, capture_store=store)
        client.load_model("clf", str(zoo.packages["tensorflow"]))
        return agent, client, store

    return factory


def test_capture_goes_in_progress_then_success_in_the_edge_manager_layout(capture_agent) -> None:
    agent, client, store = capture_agent(batch_size=5, push_period_seconds=0.3)
    stamp = time.time() - 5
    capture_id = client.capture_data("clf", {"input": X}, {"output": Y}, inference_time=stamp)
    assert client.capture_status(capture_id) == "IN_PROGRESS"
    assert wait_status(client, capture_id, "SUCCESS") == "SUCCESS"
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(stamp))
    prefix = f"edge-agent-inference-data-capture/line-1/clf/{hour}/"
    batches = [k for k in store.list_keys(prefix) if k.endswith(".jsonl")]
    assert len(batches) == 1 and batches[0].startswith(prefix + "dev-7-")
    record = json.loads(store.get_bytes(batches[0]).decode().splitlines()[0])
    assert record["eventMetadata"]["eventId"] == capture_id
    (inp,), (out,) = record["deviceFleetInputs"], record["deviceFleetOutputs"]
    assert inp["observedContentType"] == "Tensor[FLOAT32; 1, 32, 32, 3]" and inp["name"] == "input"
    # 12 KB input is over the 3 KB embed limit: a separate object; the 8-byte output is embedded.
    assert np.array_equal(np.frombuffer(store.get_bytes(inp["dataRef"]), np.float32).reshape(X.shape), X)
    assert np.array_equal(np.frombuffer(base64.b64decode(out["data"]), np.float32).reshape(Y.shape), Y)
    assert out["observedContentType"] == "Tensor[FLOAT32; 1, 2]" and out["mode"] == "OUTPUT"


def test_a_full_batch_is_written_before_the_push_period(capture_agent) -> None:
    _, client, store = capture_agent(batch_size=3, push_period_seconds=60)
    ids = [client.capture_data("clf", {"input": Y}, {"output": Y}) for _ in range(3)]
    assert all(wait_status(client, i, "SUCCESS", timeout=5) == "SUCCESS" for i in ids)
    lines = [
        line
        for key in store.list_keys()
        if key.endswith(".jsonl")
        for line in store.get_bytes(key).decode().splitlines()
    ]
    assert sorted(json.loads(line)["eventMetadata"]["eventId"] for line in lines) == sorted(ids)


def test_auxiliary_data_is_captured(capture_agent) -> None:
    agent, client, store = capture_agent()
    capture_id = str(uuid.uuid4())
    request = pb.CaptureDataRequest(
        model_name="clf",
        capture_id=capture_id,
        inputs=[pb.AuxilaryData(name="camera", encoding=pb.JSON, byte_data=b'{"line": 3}')],
    )
    raw_stub(agent.target).CaptureData(request)
    assert wait_status(client, capture_id, "SUCCESS") == "SUCCESS"
    key = next(k for k in store.list_keys() if k.endswith(".jsonl"))
    aux = json.loads(store.get_bytes(key))["deviceFleetAuxiliaryInputs"][0]
    assert aux["name"] == "camera" and aux["encoding"] == "JSON"
    assert base64.b64decode(aux["data"]) == b'{"line": 3}'


def test_reused_capture_id_is_already_exists(capture_agent) -> None:
    _, client, _ = capture_agent()
    capture_id = client.capture_data("clf", {"input": Y}, {"output": Y})
    with pytest.raises(CaptureAlreadyExistsError):
        client.capture_data("clf", {"input": Y}, {"output": Y}, capture_id=capture_id)


def test_future_timestamp_is_out_of_range(capture_agent) -> None:
    _, client, _ = capture_agent()
    with pytest.raises(OutOfRangeError, match="in the future"):
        client.capture_data("clf", {"input": Y}, {"output": Y}, inference_time=time.time() + 3600)


def test_unknown_capture_id_is_not_found(capture_agent) -> None:
    agent, client, _ = capture_agent()
    with pytest.raises(CaptureNotFoundError):
        client.capture_status("never-seen")
    code, _ = status_of(
        lambda: raw_stub(agent.target).GetCaptureDataStatus(pb.GetCaptureDataStatusRequest(capture_id="never-seen"))
    )
    assert code == grpc.StatusCode.NOT_FOUND


def test_unknown_model_is_not_found(capture_agent) -> None:
    _, client, _ = capture_agent()
    with pytest.raises(ModelNotFoundError, match="ghost"):
        client.capture_data("ghost", {"input": Y}, {"output": Y})


@pytest.mark.parametrize("capture_id", ["", "a/b", "../../etc", "x" * 129, "id with space"])
def test_bad_capture_id_is_invalid_argument(capture_agent, capture_id: str) -> None:
    _, client, _ = capture_agent()
    with pytest.raises(InvalidArgumentError, match="capture_id"):
        client.capture_data("clf", {"input": Y}, {"output": Y}, capture_id=capture_id)


def test_bad_tensor_is_invalid_argument(capture_agent) -> None:
    agent, _, _ = capture_agent()
    broken = pb.Tensor(tensor_metadata=pb.TensorMetadata(name=b"input", data_type=5, shape=[1, 4]), byte_data=b"abc")
    code, message = status_of(
        lambda: raw_stub(agent.target).CaptureData(
            pb.CaptureDataRequest(model_name="clf", capture_id="c1", input_tensors=[broken])
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "bytes do not match" in message


class BlockingStore(InMemoryObjectStore):
    """Writes wait until released: the flusher is stuck, so the buffer fills."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def put_bytes(self, key: str, data: bytes) -> None:
        self.release.wait(30)
        super().put_bytes(key, data)


def test_full_buffer_is_resource_exhausted_and_drains_later(capture_agent) -> None:
    store = BlockingStore()
    _, client, _ = capture_agent(store=store, buffer_size=3, batch_size=1, push_period_seconds=0.05)
    first = client.capture_data("clf", {"input": Y}, {"output": Y})  # taken by the flusher, which blocks
    time.sleep(0.2)
    waiting = [client.capture_data("clf", {"input": Y}, {"output": Y}) for _ in range(3)]
    with pytest.raises(ResourceExhaustedError, match="buffer full"):
        client.capture_data("clf", {"input": Y}, {"output": Y})
    store.release.set()
    for capture_id in [first, *waiting]:
        assert wait_status(client, capture_id, "SUCCESS") == "SUCCESS"


def test_failed_write_gives_failure_status(capture_agent) -> None:
    store = InMemoryObjectStore()
    store.fail_puts = 100
    _, client, _ = capture_agent(store=store)
    capture_id = client.capture_data("clf", {"input": Y}, {"output": Y})
    assert wait_status(client, capture_id, "FAILURE") == "FAILURE"


def test_stop_flushes_what_is_buffered(capture_agent) -> None:
    agent, client, store = capture_agent(batch_size=10, push_period_seconds=3600)
    client.capture_data("clf", {"input": Y}, {"output": Y})
    agent.stop(grace=1.0)
    assert any(key.endswith(".jsonl") for key in store.list_keys())


def test_disk_destination_writes_files(start_agent, zoo, short_tmp) -> None:
    _, client = start_agent(capture=CaptureSettings(disk_path=str(short_tmp / "disk"), push_period_seconds=0.1))
    client.load_model("clf", str(zoo.packages["tflite"]))
    capture_id = client.capture_data("clf", {"input": Y}, {"output": Y})
    assert wait_status(client, capture_id, "SUCCESS") == "SUCCESS"
    files = list((short_tmp / "disk" / "edge-agent-inference-data-capture").rglob("*.jsonl"))
    assert len(files) == 1 and capture_id in files[0].read_text()
