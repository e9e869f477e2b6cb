"""Light model packages: a real package layout (manifest, digests) around a placeholder model file.

A light device downloads, verifies, extracts and "loads" them like a full device does a real one;
only `SimulatedRuntime` can load them (the placeholder is not a model: a real agent refuses it).
They are a few hundred bytes, so a fleet of 10,000 downloads 10,000 of them from the object store
in seconds. The names, shapes and dtypes are those of the seed's two models.
"""

from __future__ import annotations

from pathlib import Path

from system.agent.package import write_manifest
from system.agent.tensors import TensorSpec

_SPECS = {
    "img-classification": (
        [TensorSpec("input_image", "FLOAT32", (1, 64, 64, 3))],
        [TensorSpec("probabilities", "FLOAT32", (1, 2))],
    ),
    "unet": (
        [TensorSpec("input_image", "FLOAT32", (1, 64, 64, 3))],
        [TensorSpec("mask", "FLOAT32", (1, 64, 64, 1))],
    ),
}


def light_package(folder: Path, model: str, version: str) -> Path:
    """Write a light package of `model` (a seed model name) at `version` into `folder`."""
    inputs, outputs = _SPECS[model]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.tflite").write_bytes(f"edgesim light model {model} {version}\n".encode())
    write_manifest(
        folder,
        name=model,
        version=version,
        framework="tflite",
        model="model.tflite",
        inputs=inputs,
        outputs=outputs,
        options={"light": True},
    )
    return folder


def light_archive(root: Path, model: str, version: str) -> bytes:
    """The .tar.gz a job document points at (built in `root/<model>-<version>`)."""
    from simulators.harness.world import tar_folder  # here: the world imports this module

    return tar_folder(light_package(root / f"{model}-{version}", model, version))
