"""SimulatedRuntime: a model runtime that loads packages without running them, for light devices.

It stands where the Edge Agent stands for a full device (the `InferenceClient` port), so the OTA
steps, the health check and start-up's `restore_models` run unchanged against it. What it
simulates: a load takes `load_seconds` of (clock) time, which the light driver charges to the LOAD
step; a load can be made to fail (`fail_loads`), a loaded model can be made to answer NaN
(`bad_outputs`, so the health check fails as a broken model's would), and `crash()` forgets every
loaded model, as an agent restarted by its supervisor would. Outputs have the manifest's declared
names, shapes and dtypes, filled with a constant: nothing is computed.

Faults are decided per version, so a fleet can say "version 3 fails to load on these devices".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from system.agent.package import Manifest, read_package
from system.errors import ModelAlreadyLoadedError, ModelNotFoundError, RuntimeFailureError


@dataclass(frozen=True)
class LoadedModel:
    name: str  # the identifier the device loaded it under, e.g. img-classification-2
    url: str
    manifest: Manifest


@dataclass
class RuntimeFaults:
    """What goes wrong on this device's runtime; versions are the packages' manifest versions."""

    fail_loads: set[str] = field(default_factory=set)  # loading these versions raises
    bad_outputs: set[str] = field(default_factory=set)  # these versions load but answer NaN
    # version -> seconds its FIRST load takes instead of the default (a cold cache, a thermal
    # throttle): the attempt that follows, e.g. a retried execution, loads at the normal speed
    slow_first_loads: dict[str, float] = field(default_factory=dict)


class SimulatedRuntime:
    """An `InferenceClient` whose models are manifests; see the module docstring."""

    def __init__(self, load_seconds: float = 2.0, faults: RuntimeFaults | None = None) -> None:
        self.load_seconds = load_seconds
        self.faults = faults or RuntimeFaults()
        self._models: dict[str, LoadedModel] = {}
        self.loads = 0  # loads attempted, successful or not
        self.crashes = 0

    def load_model(self, name: str, url: str) -> LoadedModel:
        self.loads += 1
        if name in self._models:
            raise ModelAlreadyLoadedError(f"model {name!r} is already loaded")
        package = read_package(url)  # the same verification the agent does: manifest and file digests
        if package.manifest.version in self.faults.fail_loads:
            raise RuntimeFailureError(f"the runtime could not load {name}: simulated load failure")
        model = LoadedModel(name, url, package.manifest)
        self._models[name] = model
        return model

    def load_time(self, version: str) -> float:
        """How long loading this version takes on this device now (clock seconds)."""
        return self.faults.slow_first_loads.pop(version, self.load_seconds)

    def unload_model(self, name: str) -> None:
        if self._models.pop(name, None) is None:
            raise ModelNotFoundError(f"model {name!r} is not loaded")

    def list_models(self) -> list[LoadedModel]:
        return list(self._models.values())

    def predict(self, name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"model {name!r} is not loaded")
        fill = np.nan if model.manifest.version in self.faults.bad_outputs else 0.5
        return {
            spec.name: np.full([1 if d == -1 else d for d in spec.shape], fill, dtype=spec.numpy_dtype)
            for spec in model.manifest.outputs
        }

    def capture_data(self, model_name: str, inputs: Any, outputs: Any, **_: Any) -> str:
        raise RuntimeFailureError("a light device does not capture data")

    def crash(self) -> None:
        """The runtime process died and came back empty."""
        self._models.clear()
        self.crashes += 1
