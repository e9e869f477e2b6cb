"""Tensor metadata and the conversions between wire tensors and numpy arrays.

The wire format is the Edge Agent's `Tensor`: `TensorMetadata` (name, DataType, shape) plus the
raw bytes in C order, inline (`byte_data`) or in a System V shared memory segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from system.errors import InvalidArgumentError

# DataType enum of agent.proto, by value, with its numpy dtype (little-endian, as on the wire).
DTYPES: dict[str, np.dtype] = {
    "UINT8": np.dtype("<u1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FLOAT16": np.dtype("<f2"),
    "FLOAT32": np.dtype("<f4"),
    "FLOAT64": np.dtype("<f8"),
}
DTYPE_VALUES = {name: value for value, name in enumerate(DTYPES)}
DTYPE_NAMES = {value: name for name, value in DTYPE_VALUES.items()}


def dtype_name_of(dtype: np.dtype | type) -> str:
    """The DataType name of a numpy dtype; raises ValueError for a dtype the API cannot carry."""
    dtype = np.dtype(dtype).newbyteorder("<")
    for name, candidate in DTYPES.items():
        if candidate == dtype:
            return name
    raise ValueError(f"dtype {np.dtype(dtype).name} has no Edge Agent DataType")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, DataType name and shape (-1 marks a dynamic dimension)."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return DTYPES[self.dtype]

    @property
    def is_static(self) -> bool:
        return all(dim >= 0 for dim in self.shape)

    def describe(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"

    def resolve_shape(self, requested: tuple[int, ...] | None) -> tuple[int, ...]:
        """The concrete shape of a request: `requested` if it fits this spec, else an error."""
        if requested is None or len(requested) == 0:
            if not self.is_static:
                raise InvalidArgumentError(
                    f"tensor '{self.name}' has dynamic shape {list(self.shape)}: the request must give its shape"
                )
            return self.shape
        if len(requested) != len(self.shape) or any(
            want >= 0 and got != want for got, want in zip(requested, self.shape, strict=True)
        ):
            raise InvalidArgumentError(
                f"tensor '{self.name}': shape {list(requested)} does not match the model's {list(self.shape)}"
            )
        if any(dim < 0 for dim in requested):
            raise InvalidArgumentError(f"tensor '{self.name}': shape {list(requested)} has a negative dimension")
        return requested


def element_count(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def convert_exactly(array: np.ndarray, target: np.dtype, tensor_name: str) -> np.ndarray:
    """Cast `array` to `target` only if every value survives unchanged; else INVALID_ARGUMENT."""
    if array.dtype == target:
        return array
    with np.errstate(all="ignore"):
        converted = array.astype(target)
        back = converted.astype(array.dtype)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        if np.issubdtype(target, np.integer):
            raise InvalidArgumentError(
                f"tensor '{tensor_name}': {array.dtype.name} payload holds NaN or infinity, "
                f"which {target.name} cannot represent"
            )
        finite = np.isfinite(array)
        same = np.array_equal(back[finite], array[finite]) and np.array_equal(np.isnan(back), np.isnan(array))
    else:
        same = np.array_equal(back, array)
    if not same:
        raise InvalidArgumentError(
            f"tensor '{tensor_name}': the {array.dtype.name} payload cannot be converted to the model's "
            f"{target.name} without changing values (fractions or values out of range); send {target.name} data"
        )
    return converted


def decode_payload(
    spec: TensorSpec,
    payload: memoryview | bytes,
    sent_dtype: str | None,
    shape: tuple[int, ...],
    *,
    accept_float32: bool,
) -> np.ndarray:
    """Turn request bytes into an array of `spec`'s dtype and `shape`, or raise INVALID_ARGUMENT.

    `sent_dtype` is the DataType the client declared (None: the model's). When the client
    declares a dtype other than the model's, the values are converted if that is exact. The
    seed's client declares the model's dtype but sends float32 bytes; with `accept_float32`
    such a payload (recognised by its length) is converted the same way. For INT32 models the
    two cannot be told apart by length, so their bytes are taken as int32 (see docs/agent.md).
    """
    declared = sent_dtype or spec.dtype
    count = element_count(shape)
    nbytes = len(payload)
    declared_dtype = DTYPES[declared]
    if nbytes == count * declared_dtype.itemsize:
        wire_dtype = declared_dtype
    elif accept_float32 and declared != "FLOAT32" and nbytes == count * 4:
        wire_dtype = DTYPES["FLOAT32"]
    else:
        hint = ""
        if nbytes == count * 4 and declared != "FLOAT32":
            hint = " (the payload is float32-sized; float32 payload conversion is turned off)"
        raise InvalidArgumentError(
            f"tensor '{spec.name}': {nbytes} bytes do not match {declared}[{','.join(map(str, shape))}], "
            f"which needs {count * declared_dtype.itemsize} bytes{hint}"
        )
    array = np.frombuffer(payload, dtype=wire_dtype, count=count).reshape(shape)
    return convert_exactly(array, spec.numpy_dtype, spec.name)
