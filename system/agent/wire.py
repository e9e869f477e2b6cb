"""Conversions between agent.proto messages and edgesim values, shared by servicer and client."""

from __future__ import annotations

from typing import cast

import numpy as np

from system.agent.tensors import DTYPE_NAMES, DTYPE_VALUES, DTYPES, TensorSpec, dtype_name_of
from system.proto import agent_pb2 as pb


def wire_dtype(name: str) -> pb.DataType:
    """The DataType enum value of a DataType name (typed for the generated stubs)."""
    return cast(pb.DataType, DTYPE_VALUES[name])


def metadata(name: str, dtype: str, shape: tuple[int, ...] | list[int]) -> pb.TensorMetadata:
    return pb.TensorMetadata(name=name.encode(), data_type=wire_dtype(dtype), shape=list(shape))


def spec_metadata(spec: TensorSpec) -> pb.TensorMetadata:
    return metadata(spec.name, spec.dtype, spec.shape)


def spec_of(meta: pb.TensorMetadata) -> TensorSpec:
    return TensorSpec(meta.name.decode(errors="replace"), DTYPE_NAMES.get(meta.data_type, "FLOAT32"), tuple(meta.shape))


def inline_tensor(name: str, array: np.ndarray) -> pb.Tensor:
    """A Tensor carrying `array` as byte_data, its metadata taken from the array."""
    array = np.ascontiguousarray(array)
    return pb.Tensor(tensor_metadata=metadata(name, dtype_name_of(array.dtype), array.shape), byte_data=array.tobytes())


def to_array(tensor: pb.Tensor) -> np.ndarray:
    """The array of an inline tensor (a read-only view of its bytes)."""
    meta = tensor.tensor_metadata
    return np.frombuffer(tensor.byte_data, dtype=DTYPES[DTYPE_NAMES[meta.data_type]]).reshape(tuple(meta.shape))
