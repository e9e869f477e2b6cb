"""Model runtimes: one small adapter per framework, chosen by the package's `framework`.

Each runtime opens a verified package, reports the tensors the model itself declares (checked
against the manifest so a package cannot lie about its model), and runs a batch of inputs.
Frameworks are imported lazily: a device that serves only TFLite never imports TensorFlow.
Serving goes through a signature, a tf.function or an interpreter, never `model.predict`
(about 60 ms of overhead a call on the reference machine, feasibility.md section 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from system.agent.gc_freeze import freeze_framework
from system.agent.package import VerifiedPackage
from system.agent.tensors import TensorSpec
from system.config import AgentSettings
from system.errors import PackageRejectedError


class ModelRuntime(Protocol):
    """A loaded model. `run` takes and returns arrays in the manifest's input/output order."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


def check_declared(kind: str, declared: tuple[TensorSpec, ...], actual: list[TensorSpec], url: str) -> None:
    """Refuse a package whose manifest disagrees with the tensors its model really has.

    The model may be more general than the manifest (a dynamic dimension where the manifest
    fixes one), never the other way round. Names are compared only when `actual` has them.
    """
    if len(declared) != len(actual):
        raise PackageRejectedError(
            f"package '{url}': manifest declares {len(declared)} {kind}s, the model has {len(actual)}"
        )
    for want, got in zip(declared, actual, strict=True):
        if got.name and want.name != got.name:
            raise PackageRejectedError(
                f"package '{url}': manifest {kind} '{want.name}' but the model's {kind} is named '{got.name}'"
            )
        shape_ok = len(want.shape) == len(got.shape) and all(
            g < 0 or w == g for w, g in zip(want.shape, got.shape, strict=True)
        )
        if want.dtype != got.dtype or not shape_ok:
            raise PackageRejectedError(
                f"package '{url}': manifest {kind} '{want.name}' is {want.describe()}, the model's is {got.describe()}"
            )


# The import a framework's runtime brings into this process (MXNet runs in a worker process: nothing to freeze).
_FREEZE_AS = {"tensorflow": "tensorflow", "keras": "tensorflow", "tflite": "tflite", "onnx": "onnx"}


def open_runtime(package: VerifiedPackage, settings: AgentSettings) -> ModelRuntime:
    """Open `package` with the runtime of its framework; FAILED_PRECONDITION if that fails."""
    framework = package.manifest.framework
    try:
        opener = _opener(framework, settings)
        if opener is None:
            raise PackageRejectedError(f"package '{package.folder}': no runtime for framework {framework!r}")
        frozen_as = _FREEZE_AS.get(framework)
        if settings.gc_freeze and frozen_as is not None:
            freeze_framework(frozen_as)  # imported by now, no model of it open yet (gc_freeze.py)
        return opener(package)  # may import more (the Keras runtime imports keras here)
    except ImportError as exc:
        raise PackageRejectedError(
            f"package '{package.folder}': the {framework} runtime is not installed on this device ({exc}); "
            "install edgesim[device]"
        ) from exc


def _opener(framework: str, settings: AgentSettings) -> Callable[[VerifiedPackage], ModelRuntime] | None:
    """The runtime constructor of `framework`, importing it (and its framework) on first use."""
    if framework in ("tensorflow", "keras"):
        from system.agent.runtimes.tensorflow import open_tensorflow

        return open_tensorflow
    if framework == "tflite":
        from system.agent.runtimes.tflite import TfliteRuntime

        return TfliteRuntime
    if framework == "onnx":
        from system.agent.runtimes.onnx import OnnxRuntime

        return OnnxRuntime
    if framework == "mxnet":
        from system.agent.runtimes.mxnet import MxnetRuntime

        return lambda package: MxnetRuntime(package, settings.mxnet_python)
    return None
