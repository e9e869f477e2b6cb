"""ONNX runtime (onnxruntime, CPU). Sessions are thread-safe, so one serves all Predicts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from system.agent.package import VerifiedPackage
from system.agent.runtimes import check_declared
from system.agent.tensors import TensorSpec
from system.errors import PackageRejectedError

_ONNX_TYPES = {
    "tensor(uint8)": "UINT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FLOAT16",
    "tensor(float)": "FLOAT32",
    "tensor(double)": "FLOAT64",
}


def _spec(arg: ort.NodeArg) -> TensorSpec:
    if arg.type not in _ONNX_TYPES:
        raise PackageRejectedError(f"tensor '{arg.name}': ONNX type {arg.type} has no Edge Agent DataType")
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in arg.shape)
    return TensorSpec(arg.name, _ONNX_TYPES[arg.type], shape)


class OnnxRuntime:
    def __init__(self, package: VerifiedPackage) -> None:
        manifest = package.manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(package.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise PackageRejectedError(f"package '{package.folder}': cannot load ONNX model: {exc}") from exc
        by_name_in = {arg.name: _spec(arg) for arg in self._session.get_inputs()}
        by_name_out = {arg.name: _spec(arg) for arg in self._session.get_outputs()}
        url = str(package.folder)
        missing = [s.name for s in manifest.inputs if s.name not in by_name_in] + [
            s.name for s in manifest.outputs if s.name not in by_name_out
        ]
        if missing or len(by_name_in) != len(manifest.inputs):
            raise PackageRejectedError(
                f"package '{url}': ONNX model has inputs {sorted(by_name_in)} and outputs {sorted(by_name_out)}; "
                "the manifest declares others"
            )
        check_declared("input", manifest.inputs, [by_name_in[s.name] for s in manifest.inputs], url)
        check_declared("output", manifest.outputs, [by_name_out[s.name] for s in manifest.outputs], url)
        self._input_names = [s.name for s in manifest.inputs]
        self._output_names = [s.name for s in manifest.outputs]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(zip(self._input_names, inputs, strict=True))
        return [np.asarray(out) for out in self._session.run(self._output_names, feeds)]

    def close(self) -> None:
        del self._session
