"""Helpers for agent tests: raw stubs (the status codes as a client sees them) and fake runtimes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from system.agent.package import MANIFEST, VerifiedPackage, parse_manifest, write_manifest
from system.agent.runtimes import open_runtime
from system.config import AgentSettings
from system.proto import agent_pb2 as pb
from system.proto import agent_pb2_grpc


def rehash(folder: Path) -> None:
    """Rewrite a package's manifest with fresh checksums (to get a tampered file past verification)."""
    manifest = parse_manifest(json.loads((folder / MANIFEST).read_text()))
    write_manifest(
        folder,
        name=manifest.name,
        version=manifest.version,
        framework=manifest.framework,
        model=manifest.model,
        inputs=list(manifest.inputs),
        outputs=list(manifest.outputs),
    )


def raw_stub(target: str) -> agent_pb2_grpc.AgentStub:
    return agent_pb2_grpc.AgentStub(grpc.insecure_channel(target))


def status_of(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    """The status code and message a raw gRPC call ends with (OK if it succeeds)."""
    try:
        call()
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def tensor(
    array: np.ndarray, name: str = "", data_type: int | None = None, shape: list[int] | None = None
) -> pb.Tensor:
    dtypes = {
        np.dtype("uint8"): 0,
        np.dtype("int16"): 1,
        np.dtype("int32"): 2,
        np.dtype("int64"): 3,
        np.dtype("float16"): 4,
        np.dtype("float32"): 5,
        np.dtype("float64"): 6,
    }
    return pb.Tensor(
        tensor_metadata=pb.TensorMetadata(
            name=name.encode(),
            data_type=dtypes[array.dtype] if data_type is None else data_type,
            shape=list(array.shape) if shape is None else shape,
        ),
        byte_data=array.tobytes(),
    )


class SlowRuntime:
    """Wraps a real runtime and sleeps `delay` seconds per run (after a `started` signal)."""

    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay
        self.started = threading.Event()
        self.closed = False

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.started.set()
        time.sleep(self.delay)
        return list(self.inner.run(inputs))

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def slow_opener(delay: float, runtimes: list[SlowRuntime]) -> Callable[[VerifiedPackage, AgentSettings], Any]:
    def opener(package: VerifiedPackage, settings: AgentSettings) -> Any:
        runtime = SlowRuntime(open_runtime(package, settings), delay)
        runtimes.append(runtime)
        return runtime

    return opener
