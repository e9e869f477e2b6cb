"""The health check a new model passes before it may serve: one Predict on a golden input.

The seed swapped models without checking anything (seed-behaviours.md section 2). Here a model
loaded by OTA must answer a Predict whose outputs have the names, shapes and dtypes its manifest
declares and contain only finite values (and, optionally, lie in a range such as [0, 1] for
probabilities). The golden input is the package's own when its manifest lists one
(`options.health = {"input": "health/input.npy", "expected": "health/expected.npy", "atol": 1e-4}`:
the outputs must then match the expected ones), else a fixed pseudo-random tensor of the declared
shape. What is checked is configurable (`HealthCheckSettings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from system.agent.package import Manifest
from system.agent.tensors import TensorSpec
from system.errors import EdgesimError
from system.ports import InferenceClient


class HealthCheckError(EdgesimError):
    """The model answered, but not as a healthy model would; the message says how."""


@dataclass(frozen=True)
class HealthCheckSettings:
    enabled: bool = True
    require_finite: bool = True
    output_range: tuple[float, float] | None = None  # e.g. (0.0, 1.0) for probability outputs
    use_package_golden: bool = True  # the manifest's options.health files, when present
    seed: int = 0


def golden_input(spec: TensorSpec, seed: int) -> np.ndarray:
    """A reproducible input: uniform [0, 1) for float types, small integers otherwise; -1 dims become 1."""
    shape = tuple(1 if d < 0 else d for d in spec.shape)
    rng = np.random.default_rng(seed)
    dtype = spec.numpy_dtype
    if np.issubdtype(dtype, np.floating):
        # Rounding to a narrow type (FLOAT16) turns values near 1 into 1.0: clamp to keep [0, 1).
        below_one = np.nextafter(np.ones((), dtype), np.zeros((), dtype))
        return np.asarray(np.minimum(rng.random(shape).astype(dtype), below_one))
    if dtype == np.bool_:
        return np.zeros(shape, dtype=dtype)
    return rng.integers(0, 2, size=shape).astype(dtype)


def check_model(
    client: InferenceClient, identifier: str, manifest: Manifest, package_dir: Path, settings: HealthCheckSettings
) -> str:
    """Run the check; returns a one-line summary, or raises HealthCheckError (or the agent's AgentError)."""
    if not settings.enabled:
        return "health check disabled"
    golden = manifest.options.get("health") if settings.use_package_golden else None
    expected: dict[str, np.ndarray] | None = None
    atol = 1e-4
    if isinstance(golden, dict) and "input" in golden:
        inputs = {manifest.inputs[0].name: _load_npy(package_dir, str(golden["input"]))}
        if "expected" in golden:
            expected = {manifest.outputs[0].name: _load_npy(package_dir, str(golden["expected"]))}
        atol = float(golden.get("atol", atol))
    else:
        inputs = {spec.name: golden_input(spec, settings.seed) for spec in manifest.inputs}
    outputs = client.predict(identifier, inputs)
    _check_outputs(outputs, manifest.outputs, settings)
    if expected is not None:
        for name, want in expected.items():
            got = np.asarray(outputs[name])
            if got.shape != want.shape:
                raise HealthCheckError(f"output {name!r} has shape {got.shape}, the golden output {want.shape}")
            # float64 first: unsigned integer outputs would wrap around when subtracted
            error = np.abs(got.astype(np.float64) - want.astype(np.float64))
            if not np.all(error <= atol):
                raise HealthCheckError(
                    f"output {name!r} differs from the package's golden output (max error {float(np.max(error)):g})"
                )
    return f"{len(outputs)} output(s) as declared, finite" + (", equal to the golden output" if expected else "")


def _check_outputs(outputs: dict[str, Any], specs: tuple[TensorSpec, ...], settings: HealthCheckSettings) -> None:
    for spec in specs:
        if spec.name not in outputs:
            raise HealthCheckError(f"output {spec.name!r} is missing (got {sorted(outputs)})")
        value = np.asarray(outputs[spec.name])
        if value.dtype != spec.numpy_dtype:
            raise HealthCheckError(f"output {spec.name!r} is {value.dtype}, the manifest declares {spec.dtype}")
        declared = spec.shape
        if len(value.shape) != len(declared) or any(
            d >= 0 and d != v for d, v in zip(declared, value.shape, strict=True)
        ):
            raise HealthCheckError(f"output {spec.name!r} has shape {value.shape}, the manifest declares {declared}")
        if settings.require_finite and np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            bad = int(np.count_nonzero(~np.isfinite(value)))
            raise HealthCheckError(f"output {spec.name!r} has {bad} non-finite value(s) (NaN or infinity)")
        if settings.output_range is not None and value.size:
            low, high = settings.output_range
            smallest, largest = float(value.min()), float(value.max())
            if smallest < low or largest > high:
                raise HealthCheckError(
                    f"output {spec.name!r} spans [{smallest:g}, {largest:g}], outside [{low:g}, {high:g}]"
                )


def _load_npy(package_dir: Path, relative: str) -> np.ndarray:
    path = (package_dir / relative).resolve()
    if package_dir.resolve() not in path.parents:
        raise HealthCheckError(f"golden file {relative!r} is outside the package")
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError) as exc:
        raise HealthCheckError(f"cannot read golden file {relative!r}: {exc}") from exc
