"""Every RPC of the agent and every status code it documents, through a real gRPC server."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from system.agent.package import MANIFEST
from system.errors import (
    InvalidArgumentError,
    ModelAlreadyLoadedError,
    ModelNotFoundError,
    PackageNotFoundError,
    PackageRejectedError,
    ResourceExhaustedError,
)
from system.proto import agent_pb2 as pb
from tests.agent.helpers import raw_stub, rehash, status_of, tensor

Code = grpc.StatusCode


def test_load_list_describe_unload_round_trip(start_agent, zoo) -> None:
    agent, client = start_agent()
    info = client.load_model("clf-1", str(zoo.packages["tensorflow"]))
    assert info.name == "clf-1" and info.url == str(zoo.packages["tensorflow"])
    assert [(s.name, s.dtype, s.shape) for s in info.inputs] == [("input_image", "FLOAT32", (1, 32, 32, 3))]
    assert [(s.name, s.dtype, s.shape) for s in info.outputs] == [("output_0", "FLOAT32", (1, 2))]
    assert [m.name for m in client.list_models()] == ["clf-1"]
    assert client.describe_model("clf-1") == info
    client.unload_model("clf-1")
    assert client.list_models() == []


def test_several_models_at_once(start_agent, zoo) -> None:
    _, client = start_agent()
    for framework, url in zoo.packages.items():
        client.load_model(f"clf-{framework}", str(url))
    assert [m.name for m in client.list_models()] == sorted(f"clf-{f}" for f in zoo.packages)


@pytest.mark.parametrize("name", ["", "-clf", "clf-", "clf_1", "clf.1", "clf 1", "ü", "a/b"])
def test_invalid_model_name_is_invalid_argument(start_agent, zoo, name: str) -> None:
    agent, _ = start_agent()
    stub = raw_stub(agent.target)
    code, message = status_of(lambda: stub.LoadModel(pb.LoadModelRequest(name=name, url=str(zoo.packages["keras"]))))
    assert code == Code.INVALID_ARGUMENT and "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$" in message
    assert status_of(lambda: stub.DescribeModel(pb.DescribeModelRequest(name=name)))[0] == Code.INVALID_ARGUMENT


@pytest.mark.parametrize("name", ["a", "A1", "unet-3", "img-classification-1-10", "a--b"])
def test_valid_model_names_load(start_agent, zoo, name: str) -> None:
    _, client = start_agent()
    assert client.load_model(name, str(zoo.packages["tflite"])).name == name


def test_duplicate_name_is_already_exists(start_agent, zoo) -> None:
    agent, client = start_agent()
    client.load_model("clf", str(zoo.packages["tensorflow"]))
    with pytest.raises(ModelAlreadyLoadedError, match="already loaded"):
        client.load_model("clf", str(zoo.packages["tflite"]))
    code, _ = status_of(lambda: raw_stub(agent.target).LoadModel(pb.LoadModelRequest(name="clf", url="/nowhere")))
    assert code == Code.ALREADY_EXISTS


def test_nothing_at_url_is_not_found(start_agent, short_tmp: Path) -> None:
    _, client = start_agent()
    with pytest.raises(PackageNotFoundError, match="no model package"):
        client.load_model("clf", str(short_tmp / "missing"))
    with pytest.raises(PackageNotFoundError):
        client.load_model("clf", "")


def _rewrite_manifest(folder: Path, **changes: object) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.update(changes)
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("no-manifest", "manifest.json is missing"),
        ("bad-json", "invalid manifest.json"),
        ("tampered-file", "checksum mismatch"),
        ("extra-file", "not listed in the manifest"),
        ("missing-file", "is missing"),
        ("symlink", "symbolic link"),
        ("unknown-framework", "framework"),
        ("path-escape", "stay inside the package"),
        ("wrong-input-shape", "the model's is"),
        ("wrong-dtype", "the model's is"),
        ("not-a-folder", "not a folder"),
    ],
)
def test_bad_package_is_failed_precondition_with_the_reason(
    start_agent, zoo, short_tmp: Path, breakage: str, reason: str
) -> None:
    folder = zoo.copy("tensorflow", short_tmp / "pkg")
    manifest = json.loads((folder / MANIFEST).read_text())
    if breakage == "no-manifest":
        (folder / MANIFEST).unlink()
    elif breakage == "bad-json":
        (folder / MANIFEST).write_text("{not json")
    elif breakage == "tampered-file":
        (folder / "saved_model" / "saved_model.pb").write_bytes(b"\x00" * 10)
    elif breakage == "extra-file":
        (folder / "run_me.sh").write_text("echo hi")
    elif breakage == "missing-file":
        (folder / "saved_model" / "fingerprint.pb").unlink()
    elif breakage == "symlink":
        os.symlink("/etc/passwd", folder / "saved_model" / "link")
    elif breakage == "unknown-framework":
        _rewrite_manifest(folder, framework="caffe")
    elif breakage == "path-escape":
        _rewrite_manifest(folder, model="../../etc")
    elif breakage == "wrong-input-shape":
        manifest["inputs"][0]["shape"] = [1, 64, 64, 3]
        _rewrite_manifest(folder, inputs=manifest["inputs"])
    elif breakage == "wrong-dtype":
        manifest["inputs"][0]["dtype"] = "UINT8"
        _rewrite_manifest(folder, inputs=manifest["inputs"])
    elif breakage == "not-a-folder":
        folder = folder / MANIFEST
    agent, client = start_agent()
    with pytest.raises(PackageRejectedError, match=reason):
        client.load_model("clf", str(folder))
    assert client.list_models() == []
    # The name is free again after a failed load.
    assert client.load_model("clf", str(zoo.packages["tensorflow"])).name == "clf"


def test_corrupt_model_file_with_matching_manifest_is_failed_precondition(start_agent, zoo, short_tmp: Path) -> None:
    folder = zoo.copy("tflite", short_tmp / "pkg")
    (folder / "model.tflite").write_bytes(b"not a flatbuffer at all")
    rehash(folder)
    _, client = start_agent()
    with pytest.raises(PackageRejectedError, match="cannot load TFLite model"):
        client.load_model("clf", str(folder))


def test_model_count_budget_is_resource_exhausted(start_agent, zoo) -> None:
    agent, client = start_agent(max_models=2)
    client.load_model("a", str(zoo.packages["tflite"]))
    client.load_model("b", str(zoo.packages["tflite"]))
    with pytest.raises(ResourceExhaustedError, match="limit is 2"):
        client.load_model("c", str(zoo.packages["tflite"]))
    code, _ = status_of(
        lambda: raw_stub(agent.target).LoadModel(pb.LoadModelRequest(name="c", url=str(zoo.packages["tflite"])))
    )
    assert code == Code.RESOURCE_EXHAUSTED
    client.unload_model("a")
    client.load_model("c", str(zoo.packages["tflite"]))


def test_memory_budget_is_resource_exhausted(start_agent, zoo, short_tmp: Path) -> None:
    big = zoo.copy("tflite", short_tmp / "big")
    (big / "padding.bin").write_bytes(os.urandom(700 * 1024))  # a 0.7 MB package
    rehash(big)
    _, client = start_agent(memory_budget_mb=1)
    client.load_model("first", str(big))
    with pytest.raises(ResourceExhaustedError, match="memory budget"):
        client.load_model("second", str(big))
    client.load_model("small", str(zoo.packages["tflite"]))  # a few KB still fit
    client.unload_model("first")
    client.load_model("second", str(big))


def test_unknown_model_is_not_found_on_predict_unload_describe(start_agent) -> None:
    agent, client = start_agent()
    stub = raw_stub(agent.target)
    x = np.zeros((1, 32, 32, 3), np.float32)
    for call in (
        lambda: stub.Predict(pb.PredictRequest(name="ghost", tensors=[tensor(x)])),
        lambda: stub.UnLoadModel(pb.UnLoadModelRequest(name="ghost")),
        lambda: stub.DescribeModel(pb.DescribeModelRequest(name="ghost")),
    ):
        code, message = status_of(call)
        assert code == Code.NOT_FOUND and "ghost" in message
    with pytest.raises(ModelNotFoundError):
        client.predict("ghost", x)


@pytest.mark.parametrize(
    ("request_tensors", "reason"),
    [
        (lambda x: [tensor(x.reshape(1, 16, 64, 3))], "does not match the model's"),
        (lambda x: [tensor(x[:, :16])], "does not match the model's"),
        (lambda x: [tensor(x, shape=[1, 32, 32])], "does not match the model's"),
        (
            lambda x: [pb.Tensor(tensor_metadata=tensor(x).tensor_metadata, byte_data=x.tobytes()[:-4])],
            "bytes do not match",
        ),
        (lambda x: [tensor(x.astype(np.float64), data_type=5)], "bytes do not match"),
        (lambda x: [tensor(x, name="pixels")], "no input named 'pixels'"),
        (lambda x: [tensor(x), tensor(x)], "takes 1 input"),
        (lambda x: [], "takes 1 input"),
        (lambda x: [pb.Tensor(tensor_metadata=tensor(x).tensor_metadata)], "carries no data"),
        (lambda x: [tensor(x, data_type=42)], "not a DataType"),
    ],
)
def test_predict_mismatch_is_invalid_argument_naming_it(start_agent, zoo, request_tensors, reason: str) -> None:
    agent, client = start_agent()
    client.load_model("clf", str(zoo.packages["tensorflow"]))
    x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    code, message = status_of(
        lambda: raw_stub(agent.target).Predict(pb.PredictRequest(name="clf", tensors=request_tensors(x)))
    )
    assert code == Code.INVALID_ARGUMENT, message
    assert reason in message
    with pytest.raises(InvalidArgumentError):
        client.predict("clf", x[:, :16])


def test_bad_shared_memory_handle_is_invalid_argument(start_agent, zoo) -> None:
    import sysv_ipc

    agent, client = start_agent()
    client.load_model("clf", str(zoo.packages["tensorflow"]))
    stub = raw_stub(agent.target)
    meta = pb.TensorMetadata(name=b"input_image", data_type=5, shape=[1, 32, 32, 3])
    bogus = pb.Tensor(tensor_metadata=meta, shared_memory_handle=pb.SharedMemoryHandle(segment_id=2**40))
    code, message = status_of(lambda: stub.Predict(pb.PredictRequest(name="clf", tensors=[bogus])))
    assert code == Code.INVALID_ARGUMENT and "cannot be attached" in message
    segment = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, size=100, mode=0o600)
    try:
        short = pb.Tensor(tensor_metadata=meta, shared_memory_handle=pb.SharedMemoryHandle(segment_id=segment.id))
        code, message = status_of(lambda: stub.Predict(pb.PredictRequest(name="clf", tensors=[short])))
        assert code == Code.INVALID_ARGUMENT and "exceeds" in message
    finally:
        segment.detach()
        segment.remove()


def test_health_service_reports_serving(start_agent) -> None:
    agent, _ = start_agent()
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(agent.target))
    for service in ("", "AWS.SageMaker.Edge.Agent"):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_socket_is_owner_only(start_agent) -> None:
    agent, _ = start_agent()
    mode = stat.S_IMODE(os.stat(agent.settings.socket_path).st_mode)
    assert mode == 0o600


def test_stale_socket_is_replaced_and_live_one_refused(start_agent, short_tmp: Path) -> None:
    import socket

    from system.agent.server import EdgeAgent
    from system.config import AgentSettings, CaptureSettings
    from system.errors import ConfigError

    stale = short_tmp / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))
    leftover.close()  # bound but nobody listening: what a crashed agent leaves
    agent, client = start_agent(socket_path=str(stale))
    assert client.list_models() == []
    second = EdgeAgent(AgentSettings(socket_path=str(stale), capture=CaptureSettings(disk_path=str(short_tmp / "c"))))
    with pytest.raises(ConfigError, match="already serving"):
        second.start()
    second.stop(grace=0)
    assert stale.is_socket()
    assert client.list_models() == []


def test_tcp_address_port_zero(start_agent) -> None:
    agent, client = start_agent(address="127.0.0.1:0")
    assert agent.target.startswith("127.0.0.1:") and not agent.target.endswith(":0")
    assert client.list_models() == []
