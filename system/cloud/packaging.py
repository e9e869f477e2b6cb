"""Build edgesim model packages from a trained Keras model.

This is what replaces SageMaker Neo + Edge packaging (both discontinued): the package holds the
model in the chosen format plus a manifest with tensor metadata, pre-processing and the sha256 of
every file (docs/model-package.md). Neo's compile-for-target step becomes the TFLite conversion,
optionally with post-training quantisation (`QUANTIZATIONS`); system/cloud/edge_package.py archives,
signs and measures the packages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from system.agent.package import Manifest, Preprocessing, write_manifest
from system.agent.tensors import TensorSpec, dtype_name_of

MODEL_FILES = {"tensorflow": "saved_model", "keras": "model.keras", "tflite": "model.tflite", "onnx": "model.onnx"}
# Post-training quantisation of the TFLite model (https://ai.google.dev/edge/litert/models/post_training_quantization):
# none keeps float32 weights; float16 halves the weights (dequantised to float32 at load on CPU);
# int8 quantises weights and activations, calibrated on a representative dataset.
QUANTIZATIONS = ("none", "float16", "int8")


def _signature_specs(saved_model_dir: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    _, kwargs = fn.structured_input_signature

    def spec(name: str, t: Any) -> TensorSpec:
        shape = tuple(-1 if d is None else int(d) for d in t.shape.as_list())
        return TensorSpec(name, dtype_name_of(np.dtype(t.dtype.as_numpy_dtype)), shape)

    inputs = [spec(n, t) for n, t in sorted(kwargs.items())]
    outputs = [spec(n, t) for n, t in sorted(fn.structured_outputs.items())]
    return inputs, outputs


def _fix_batch(specs: list[TensorSpec], batch: int | None) -> list[TensorSpec]:
    """Pin a dynamic batch dimension (the edge serves one image at a time)."""
    if batch is None:
        return specs
    return [
        TensorSpec(s.name, s.dtype, (batch, *s.shape[1:]) if s.shape and s.shape[0] < 0 else s.shape) for s in specs
    ]


def export_package(
    model: Any,
    folder: str | Path,
    *,
    name: str,
    version: str,
    framework: str = "tensorflow",
    preprocessing: Preprocessing | None = None,
    labels: list[str] | None = None,
    batch: int | None = 1,
    quantization: str = "none",
    calibration: np.ndarray | None = None,
) -> Manifest:
    """Write `model` (a Keras model) as an edgesim package in `folder` (which must not exist).

    Tensor names are the SavedModel `serving_default` signature's, for every framework, so that a
    client sees the same names whatever runtime serves the model. `quantization` (TFLite only) is
    one of `QUANTIZATIONS`; int8 needs `calibration`, a batch of typical inputs (N, ...) drawn from
    the training data. A quantised package keeps the float model's input and output tensors, so its
    manifest and pre-processing are those of the float package; `options.quantization` records it.
    """
    if framework not in MODEL_FILES:
        raise ValueError(f"cannot export framework {framework!r}; choose one of {', '.join(MODEL_FILES)}")
    check_quantization(framework, quantization, calibration)
    folder = Path(folder)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / "saved_model"
        model.export(str(saved), verbose=False)
        inputs, outputs = _signature_specs(saved)
        inputs, outputs = _fix_batch(inputs, batch), _fix_batch(outputs, batch)
        target = folder / MODEL_FILES[framework]
        if framework == "tensorflow":
            shutil.copytree(saved, target)
        elif framework == "keras":
            model.save(str(target))
        elif framework == "tflite":
            target.write_bytes(_to_tflite(saved, quantization, calibration, inputs))
        else:
            _to_onnx(model, inputs, outputs, target)
    return write_manifest(
        folder,
        name=name,
        version=version,
        framework=framework,
        model=MODEL_FILES[framework],
        inputs=inputs,
        outputs=outputs,
        preprocessing=preprocessing,
        labels=labels,
        options={"quantization": quantization} if quantization != "none" else None,
    )


def check_quantization(framework: str, quantization: str, calibration: np.ndarray | None) -> None:
    """Refuse a bad request before the (slow) export starts."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
    if quantization != "none" and framework != "tflite":
        raise ValueError(f"quantization {quantization!r} applies to the tflite framework, not {framework!r}")
    if quantization == "int8" and (calibration is None or len(calibration) == 0):
        raise ValueError("int8 quantization needs calibration data: a batch of typical inputs from the training set")


def _to_tflite(
    saved_model_dir: Path,
    quantization: str = "none",
    calibration: np.ndarray | None = None,
    inputs: list[TensorSpec] | None = None,
) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        if calibration is None or not inputs or len(inputs) != 1:
            raise ValueError("int8 calibration data is one array, for a model with exactly one input")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration, inputs[0])
        # Integer kernels only (the conversion fails rather than leave an op in float), but the
        # inference input/output types stay float32: the converter adds a quantise op at the input
        # and a dequantise op at the output, so clients and pre-processing do not change.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return bytes(converter.convert())


def _representative(calibration: np.ndarray, spec: TensorSpec) -> Any:
    """The converter's representative dataset: one sample at a time, in the input's dtype and shape."""
    samples = np.asarray(calibration, dtype=spec.numpy_dtype)
    want, got = spec.shape[1:], samples.shape[1:]
    if len(got) != len(want) or any(d >= 0 and d != s for d, s in zip(want, got, strict=True)):
        raise ValueError(f"calibration samples have shape {samples.shape[1:]}; input {spec.name!r} takes {want}")

    def dataset() -> Iterator[list[np.ndarray]]:
        for sample in samples:
            yield [sample[np.newaxis]]

    return dataset


def _to_onnx(model: Any, inputs: list[TensorSpec], outputs: list[TensorSpec], target: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec([None if d < 0 else d for d in s.shape], s.numpy_dtype, name=s.name) for s in inputs]

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def serve(*args: tf.Tensor) -> Any:
        return model(args[0] if len(args) == 1 else list(args), training=False)

    model_proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=17)
    graph = model_proto.graph
    # tf2onnx names outputs after graph tensors ("Identity:0"); use the signature's names.
    renames = {out.name: spec.name for out, spec in zip(graph.output, outputs, strict=True)}
    for node in graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for out in graph.output:
        out.name = renames[out.name]
    target.write_bytes(model_proto.SerializeToString())
