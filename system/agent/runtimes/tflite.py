"""TFLite runtime on ai-edge-litert's interpreter (XNNPACK), through a signature when it has one.

An interpreter is not thread-safe, so each model keeps a small pool of interpreters: Predicts
on the same model run in parallel up to the pool size, then queue.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from system.agent.package import VerifiedPackage
from system.agent.runtimes import check_declared
from system.agent.tensors import TensorSpec, dtype_name_of
from system.errors import PackageRejectedError

POOL_SIZE = 2


def _spec(name: str, detail: dict[str, Any]) -> TensorSpec:
    try:
        dtype = dtype_name_of(np.dtype(detail["dtype"]))
    except ValueError as exc:
        raise PackageRejectedError(f"tensor '{name}': {exc}") from exc
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    return TensorSpec(name, dtype, tuple(int(d) for d in shape))


class _Slot:
    """One interpreter and, if the model has one, the runner of the manifest's signature."""

    def __init__(self, path: str, signature: str) -> None:
        self.interpreter = Interpreter(model_path=path, num_threads=2)
        self.runner: Any = None
        if signature in self.interpreter.get_signature_list():
            self.runner = self.interpreter.get_signature_runner(signature)
        else:
            self.interpreter.allocate_tensors()


class TfliteRuntime:
    def __init__(self, package: VerifiedPackage) -> None:
        manifest = package.manifest
        url = str(package.folder)
        try:
            slots = [_Slot(str(package.model_path), manifest.signature) for _ in range(POOL_SIZE)]
        except (ValueError, RuntimeError) as exc:
            raise PackageRejectedError(f"package '{url}': cannot load TFLite model: {exc}") from exc
        first = slots[0]
        if first.runner is not None:
            in_details = first.runner.get_input_details()
            out_details = first.runner.get_output_details()
            missing = [s.name for s in manifest.inputs if s.name not in in_details] + [
                s.name for s in manifest.outputs if s.name not in out_details
            ]
            if missing or len(in_details) != len(manifest.inputs) or len(out_details) != len(manifest.outputs):
                raise PackageRejectedError(
                    f"package '{url}': TFLite signature '{manifest.signature}' has inputs {sorted(in_details)} "
                    f"and outputs {sorted(out_details)}; the manifest declares others"
                )
            actual_in = [_spec(s.name, in_details[s.name]) for s in manifest.inputs]
            actual_out = [_spec(s.name, out_details[s.name]) for s in manifest.outputs]
        else:
            # No signature: tensors are matched by position, their TFLite names are internal.
            actual_in = [_spec("", d) for d in first.interpreter.get_input_details()]
            actual_out = [_spec("", d) for d in first.interpreter.get_output_details()]
        check_declared("input", manifest.inputs, actual_in, url)
        check_declared("output", manifest.outputs, actual_out, url)
        self._input_names = [s.name for s in manifest.inputs]
        self._output_names = [s.name for s in manifest.outputs]
        self._pool: queue.Queue[_Slot] = queue.Queue()
        for slot in slots:
            self._pool.put(slot)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        slot = self._pool.get()
        try:
            if slot.runner is not None:
                result = slot.runner(**dict(zip(self._input_names, inputs, strict=True)))
                return [np.array(result[name]) for name in self._output_names]
            interpreter = slot.interpreter
            for detail, array in zip(interpreter.get_input_details(), inputs, strict=True):
                if tuple(detail["shape"]) != array.shape:
                    interpreter.resize_tensor_input(detail["index"], array.shape)
                    interpreter.allocate_tensors()
                interpreter.set_tensor(detail["index"], array)
            interpreter.invoke()
            return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]
        finally:
            self._pool.put(slot)

    def close(self) -> None:
        while not self._pool.empty():
            self._pool.get_nowait()
