"""TensorFlow runtimes: a SavedModel signature, or a Keras `.keras` file behind a tf.function."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from system.agent.package import VerifiedPackage
from system.agent.runtimes import ModelRuntime, check_declared
from system.agent.tensors import TensorSpec, dtype_name_of
from system.errors import PackageRejectedError


def _spec_of(name: str, tf_spec: Any) -> TensorSpec:
    """A TensorSpec from a tf.TensorSpec or a KerasTensor (whose dtype is a string)."""
    try:
        dtype = dtype_name_of(np.dtype(tf.as_dtype(tf_spec.dtype).as_numpy_dtype))
    except (TypeError, ValueError) as exc:
        raise PackageRejectedError(f"tensor '{name}': {exc}") from exc
    dims = tf_spec.shape.as_list() if hasattr(tf_spec.shape, "as_list") else list(tf_spec.shape)
    shape = tuple(-1 if dim is None else int(dim) for dim in dims)
    return TensorSpec(name, dtype, shape)


class SavedModelRuntime:
    """Serves one signature of a SavedModel (thread-safe: concrete functions are)."""

    def __init__(self, package: VerifiedPackage) -> None:
        manifest = package.manifest
        try:
            self._loaded = tf.saved_model.load(str(package.model_path))
            self._fn = self._loaded.signatures[manifest.signature]
        except KeyError as exc:
            raise PackageRejectedError(
                f"package '{package.folder}': SavedModel has no signature '{manifest.signature}'"
            ) from exc
        except Exception as exc:
            raise PackageRejectedError(f"package '{package.folder}': cannot load SavedModel: {exc}") from exc
        _, kwargs = self._fn.structured_input_signature
        outputs = self._fn.structured_outputs
        by_name_in = {name: _spec_of(name, spec) for name, spec in kwargs.items()}
        by_name_out = {name: _spec_of(name, spec) for name, spec in outputs.items()}
        missing = [s.name for s in manifest.inputs if s.name not in by_name_in] + [
            s.name for s in manifest.outputs if s.name not in by_name_out
        ]
        if missing or len(by_name_in) != len(manifest.inputs) or len(by_name_out) != len(manifest.outputs):
            raise PackageRejectedError(
                f"package '{package.folder}': signature '{manifest.signature}' has inputs {sorted(by_name_in)} "
                f"and outputs {sorted(by_name_out)}; the manifest declares others"
            )
        check_declared("input", manifest.inputs, [by_name_in[s.name] for s in manifest.inputs], str(package.folder))
        check_declared("output", manifest.outputs, [by_name_out[s.name] for s in manifest.outputs], str(package.folder))
        self._input_names = [s.name for s in manifest.inputs]
        self._output_names = [s.name for s in manifest.outputs]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = self._fn(
            **{name: tf.convert_to_tensor(arr) for name, arr in zip(self._input_names, inputs, strict=True)}
        )
        return [result[name].numpy() for name in self._output_names]

    def close(self) -> None:
        del self._fn
        del self._loaded


class KerasRuntime:
    """Serves a `.keras` model through a tf.function with a fixed input signature."""

    def __init__(self, package: VerifiedPackage) -> None:
        import keras

        manifest = package.manifest
        try:
            self._model = keras.models.load_model(str(package.model_path), compile=False)
        except Exception as exc:
            raise PackageRejectedError(f"package '{package.folder}': cannot load Keras model: {exc}") from exc
        actual_in = [_spec_of(s.name, t) for s, t in zip(manifest.inputs, self._model.inputs, strict=False)]
        actual_out = [_spec_of(s.name, t) for s, t in zip(manifest.outputs, self._model.outputs, strict=False)]
        if len(self._model.inputs) != len(manifest.inputs) or len(self._model.outputs) != len(manifest.outputs):
            raise PackageRejectedError(
                f"package '{package.folder}': the Keras model has {len(self._model.inputs)} inputs and "
                f"{len(self._model.outputs)} outputs; the manifest declares {len(manifest.inputs)} "
                f"and {len(manifest.outputs)}"
            )
        check_declared("input", manifest.inputs, actual_in, str(package.folder))
        check_declared("output", manifest.outputs, actual_out, str(package.folder))
        signature = [
            tf.TensorSpec([None if d < 0 else d for d in s.shape], s.numpy_dtype, name=s.name) for s in manifest.inputs
        ]
        model = self._model
        single_input = len(signature) == 1

        @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
        def serve(*args: tf.Tensor) -> Any:
            return model(args[0] if single_input else list(args), training=False)

        self._serve = serve

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        result = self._serve(*inputs)
        if isinstance(result, dict):
            result = list(result.values())
        if not isinstance(result, (list, tuple)):
            result = [result]
        return [tensor.numpy() for tensor in result]

    def close(self) -> None:
        del self._serve
        del self._model


def open_tensorflow(package: VerifiedPackage) -> ModelRuntime:
    if package.manifest.framework == "keras":
        return KerasRuntime(package)
    return SavedModelRuntime(package)
