"""Shared fixtures: small real TF models exported as edgesim packages, and agents on temp sockets."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.agent.runtimes import open_runtime
from system.agent.server import EdgeAgent
from system.config import AgentSettings, CaptureSettings

FRAMEWORKS = ("tensorflow", "keras", "tflite", "onnx")


def build_classifier(input_shape: tuple[int, int, int] = (32, 32, 3), dtype: str = "float32", seed: int = 7) -> Any:
    """A small CNN with two softmax outputs; a uint8 input is cast and scaled inside the model."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(input_shape, dtype=dtype, name="input_image")
    x = inputs
    if dtype != "float32":
        x = keras.layers.Rescaling(1 / 255.0)(keras.ops.cast(x, "float32"))
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


class ModelZoo:
    """Packages of the same small model in every framework, built once per test session."""

    def __init__(self, root: Path) -> None:
        from system.cloud.packaging import export_package

        self.root = root
        self.model = build_classifier()
        self.uint8_model = build_classifier(dtype="uint8")
        self.packages: dict[str, Path] = {}
        for framework in FRAMEWORKS:
            folder = root / framework
            export_package(self.model, folder, name="clf", version="1", framework=framework)
            self.packages[framework] = folder
        self.uint8_package = root / "uint8"
        export_package(self.uint8_model, self.uint8_package, name="clf-u8", version="1", framework="tensorflow")

    def copy(self, framework: str, dest: Path) -> Path:
        import shutil

        shutil.copytree(self.packages[framework], dest)
        return dest


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> ModelZoo:
    return ModelZoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temp folder: unix socket paths must stay under ~107 bytes."""
    with tempfile.TemporaryDirectory(prefix="es-") as folder:
        yield Path(folder)


AgentFactory = Callable[..., tuple[EdgeAgent, GrpcEdgeAgentClient]]


@pytest.fixture
def start_agent(short_tmp: Path) -> Iterator[AgentFactory]:
    """Factory: start an agent on a temp unix socket (settings overridable); stopped after the test."""
    started: list[tuple[EdgeAgent, GrpcEdgeAgentClient]] = []

    def factory(
        runtime_opener: Any = open_runtime, capture_store: Any = None, **overrides: Any
    ) -> tuple[EdgeAgent, GrpcEdgeAgentClient]:
        capture = overrides.pop("capture", CaptureSettings(disk_path=str(short_tmp / "capture")))
        settings = replace(
            AgentSettings(socket_path=str(short_tmp / f"agent{len(started)}.sock"), grace_seconds=5.0),
            capture=capture,
            **overrides,
        )
        agent = EdgeAgent(settings, capture_store=capture_store, runtime_opener=runtime_opener)
        client = GrpcEdgeAgentClient(agent.start())
        started.append((agent, client))
        return agent, client

    yield factory
    for agent, client in started:
        client.close()
        agent.stop(grace=1.0)
