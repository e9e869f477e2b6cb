"""The agent API is wire-compatible with SageMaker Edge Agent 1.20210820 (DESIGN.md section 3.1).

The expected tables are written out from seed-behaviours.md section 1, independently of our
agent.proto, so any drift in a name, number or type fails here.
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor as F

from system.proto import agent_pb2

ROOT = Path(__file__).resolve().parents[2]

T_BYTES, T_STRING, T_ENUM, T_MSG = F.TYPE_BYTES, F.TYPE_STRING, F.TYPE_ENUM, F.TYPE_MESSAGE
T_I32, T_I64, T_U64 = F.TYPE_INT32, F.TYPE_INT64, F.TYPE_UINT64
REPEATED = "repeated"

# message -> {field: (number, type, type name or None, repeated?)}
EXPECTED_MESSAGES = {
    "TensorMetadata": {
        "name": (1, T_BYTES, None, False),
        "data_type": (2, T_ENUM, "DataType", False),
        "shape": (3, T_I32, None, True),
    },
    "SharedMemoryHandle": {
        "size": (1, T_U64, None, False),
        "offset": (2, T_U64, None, False),
        "segment_id": (3, T_U64, None, False),
    },
    "Tensor": {
        "tensor_metadata": (1, T_MSG, "TensorMetadata", False),
        "byte_data": (4, T_BYTES, None, False),
        "shared_memory_handle": (5, T_MSG, "SharedMemoryHandle", False),
    },
    "Model": {
        "url": (1, T_STRING, None, False),
        "name": (2, T_STRING, None, False),
        "input_tensor_metadatas": (3, T_MSG, "TensorMetadata", True),
        "output_tensor_metadatas": (4, T_MSG, "TensorMetadata", True),
    },
    "PredictRequest": {"name": (1, T_STRING, None, False), "tensors": (2, T_MSG, "Tensor", True)},
    "PredictResponse": {"tensors": (1, T_MSG, "Tensor", True)},
    "LoadModelRequest": {"url": (1, T_STRING, None, False), "name": (2, T_STRING, None, False)},
    "LoadModelResponse": {"model": (1, T_MSG, "Model", False)},
    "UnLoadModelRequest": {"name": (1, T_STRING, None, False)},
    "UnLoadModelResponse": {},
    "ListModelsRequest": {},
    "ListModelsResponse": {"models": (1, T_MSG, "Model", True)},
    "DescribeModelRequest": {"name": (1, T_STRING, None, False)},
    "DescribeModelResponse": {"model": (1, T_MSG, "Model", False)},
    "AuxilaryData": {
        "name": (1, T_STRING, None, False),
        "encoding": (2, T_ENUM, "Encoding", False),
        "byte_data": (3, T_BYTES, None, False),
        "shared_memory_handle": (4, T_MSG, "SharedMemoryHandle", False),
    },
    "CaptureDataRequest": {
        "model_name": (1, T_STRING, None, False),
        "capture_id": (2, T_STRING, None, False),
        "inference_timestamp": (3, T_MSG, "Timestamp", False),
        "input_tensors": (4, T_MSG, "Tensor", True),
        "output_tensors": (5, T_MSG, "Tensor", True),
        "inputs": (6, T_MSG, "AuxilaryData", True),
        "outputs": (7, T_MSG, "AuxilaryData", True),
    },
    "CaptureDataResponse": {},
    "GetCaptureDataStatusRequest": {"capture_id": (1, T_STRING, None, False)},
    "GetCaptureDataStatusResponse": {"status": (1, T_ENUM, "CaptureDataStatus", False)},
    "Timestamp": {"seconds": (1, T_I64, None, False), "nanos": (2, T_I32, None, False)},
}
EXPECTED_ENUMS = {
    "DataType": {"UINT8": 0, "INT16": 1, "INT32": 2, "INT64": 3, "FLOAT16": 4, "FLOAT32": 5, "FLOAT64": 6},
    "Encoding": {"CSV": 0, "JSON": 1, "NONE": 2, "BASE64": 3},
    "CaptureDataStatus": {"FAILURE": 0, "SUCCESS": 1, "IN_PROGRESS": 2, "NOT_FOUND": 3},
}
EXPECTED_RPCS = {
    "Predict": ("PredictRequest", "PredictResponse"),
    "LoadModel": ("LoadModelRequest", "LoadModelResponse"),
    "UnLoadModel": ("UnLoadModelRequest", "UnLoadModelResponse"),
    "ListModels": ("ListModelsRequest", "ListModelsResponse"),
    "DescribeModel": ("DescribeModelRequest", "DescribeModelResponse"),
    "CaptureData": ("CaptureDataRequest", "CaptureDataResponse"),
    "GetCaptureDataStatus": ("GetCaptureDataStatusRequest", "GetCaptureDataStatusResponse"),
}
ONEOFS = {
    "Tensor": {"data": {"byte_data", "shared_memory_handle"}},
    "AuxilaryData": {"data": {"byte_data", "shared_memory_handle"}},
}


def test_package_and_service_names_match_the_original() -> None:
    descriptor = agent_pb2.DESCRIPTOR
    assert descriptor.package == "AWS.SageMaker.Edge"
    service = descriptor.services_by_name["Agent"]
    assert service.full_name == "AWS.SageMaker.Edge.Agent"
    methods = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert methods == EXPECTED_RPCS
    assert all(not m.client_streaming and not m.server_streaming for m in service.methods)


def test_every_message_field_has_the_original_number_type_and_label() -> None:
    assert set(agent_pb2.DESCRIPTOR.message_types_by_name) == set(EXPECTED_MESSAGES)
    for message_name, expected in EXPECTED_MESSAGES.items():
        message = agent_pb2.DESCRIPTOR.message_types_by_name[message_name]
        actual = {}
        for field in message.fields:
            type_name = (
                field.message_type.name if field.message_type else (field.enum_type.name if field.enum_type else None)
            )
            actual[field.name] = (field.number, field.type, type_name, field.is_repeated)
        assert actual == expected, message_name
        oneofs = {o.name: {f.name for f in o.fields} for o in message.oneofs}
        assert oneofs == ONEOFS.get(message_name, {}), message_name


def test_enums_have_the_original_values() -> None:
    enums = agent_pb2.DESCRIPTOR.enum_types_by_name
    assert set(enums) == set(EXPECTED_ENUMS)
    for name, values in EXPECTED_ENUMS.items():
        assert {v.name: v.number for v in enums[name].values} == values


def test_committed_stubs_match_the_proto(tmp_path: Path) -> None:
    """A fresh clone has working stubs: the committed ones are what protoc generates now."""
    out = tmp_path / "gen"
    out.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--grpc_python_out={out}",
            str(ROOT / "system/proto/agent.proto"),
        ],
        check=True,
    )
    for name in ("agent_pb2.py", "agent_pb2.pyi", "agent_pb2_grpc.py"):
        assert filecmp.cmp(out / "system/proto" / name, ROOT / "system/proto" / name, shallow=False), (
            f"system/proto/{name} is stale: run `make proto`"
        )
