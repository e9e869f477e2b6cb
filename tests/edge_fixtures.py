"""Edge-app test helpers: the model zoo of `simulators/model_zoo.py`, and roster entries."""

from __future__ import annotations

from pathlib import Path

from simulators.model_zoo import (
    export_broken_package,
    export_classifier_package,
    export_segmenter_package,
    write_images,
)
from system.agent.package import read_package
from system.edge.roster import ServingModel

__all__ = [
    "export_broken_package",
    "export_classifier_package",
    "export_segmenter_package",
    "serving_model",
    "write_images",
]


def serving_model(package: Path, identifier: str) -> ServingModel:
    """The roster entry for `package` loaded in the agent as `identifier`."""
    manifest = read_package(str(package)).manifest
    return ServingModel(
        name=manifest.name, version=manifest.version, identifier=identifier, package_dir=package, manifest=manifest
    )
