"""Which model serves which application on this device: the live side of models_config.json.

`mappings` (seed shape, DESIGN.md section 3.4) maps an application to a model name:
`image-classification-app -> img-classification`, `image-segmentation-app -> unet`. At most one
version of each model name serves at a time; an OTA swap replaces it in one step (`switch`), so
the inference loop and the web UI read either the old or the new model, never neither.
Thread-safe: the OTA worker writes, the inference loop and web threads read.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from system.agent.package import Manifest

APP_CLASSIFICATION = "image-classification-app"
APP_SEGMENTATION = "image-segmentation-app"
DEFAULT_MAPPINGS: Mapping[str, str] = {APP_CLASSIFICATION: "img-classification", APP_SEGMENTATION: "unet"}


@dataclass(frozen=True)
class ServingModel:
    """One model version loaded in the agent and serving its application."""

    name: str  # the model name of the mappings, e.g. "unet"
    version: str  # as the job document wrote it, e.g. "1.10"
    identifier: str  # the agent's model name, e.g. "unet-1-10"
    package_dir: Path  # the extracted package the agent loaded
    manifest: Manifest  # its manifest: tensors, preprocessing, labels

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "identifier": self.identifier,
            "framework": self.manifest.framework,
            "package_dir": str(self.package_dir),
        }


class ModelRoster:
    """The serving model of each model name, plus a generation counter that moves on every change."""

    def __init__(self, mappings: Mapping[str, str] | None = None) -> None:
        self._mappings = dict(DEFAULT_MAPPINGS if mappings is None else mappings)
        self._serving: dict[str, ServingModel] = {}
        self._lock = threading.Lock()
        self._generation = 0

    @property
    def mappings(self) -> dict[str, str]:
        return dict(self._mappings)

    @property
    def generation(self) -> int:
        """Increases on every switch or removal (the web UI uses it to notice a swap)."""
        return self._generation

    def supports(self, model_name: str) -> bool:
        return model_name in self._mappings.values()

    def for_app(self, app: str) -> ServingModel | None:
        """The model serving `app`, or None when its model is not deployed yet."""
        with self._lock:
            name = self._mappings.get(app)
            return self._serving.get(name) if name is not None else None

    def by_name(self, model_name: str) -> ServingModel | None:
        with self._lock:
            return self._serving.get(model_name)

    def all(self) -> list[ServingModel]:
        """Serving models in mapping order (the order models_config.json lists them)."""
        with self._lock:
            order = {name: i for i, name in enumerate(self._mappings.values())}
            return sorted(self._serving.values(), key=lambda m: (order.get(m.name, len(order)), m.name))

    def switch(self, model: ServingModel) -> ServingModel | None:
        """Make `model` serve its name; returns the model it replaced (None for a first deployment)."""
        if not self.supports(model.name):
            raise ValueError(f"model {model.name!r} is not in the mappings {self._mappings}")
        with self._lock:
            previous = self._serving.get(model.name)
            self._serving[model.name] = model
            self._generation += 1
            return previous

    def remove(self, model_name: str) -> ServingModel | None:
        with self._lock:
            removed = self._serving.pop(model_name, None)
            if removed is not None:
                self._generation += 1
            return removed
