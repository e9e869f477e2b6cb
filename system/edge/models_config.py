"""models_config.json: which models a device serves, in the seed's shape (DESIGN.md section 3.4).

    {"mappings": {"image-classification-app": "img-classification", "image-segmentation-app": "unet"},
     "models": [{"name": "unet", "version": "3", "identifier": "unet-3"}]}

An existing device's file keeps working: missing `mappings` get the seed's defaults, `models`
entries need exactly `name`, `version` (a string) and `identifier`, and unknown top-level keys are
kept when the file is rewritten. Unlike the seed, the file is rewritten atomically at every change
(`system/edge/atomic.py`), so after a kill it names exactly the models that were serving.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from system.edge.atomic import write_json_atomically
from system.edge.roster import DEFAULT_MAPPINGS
from system.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    version: str
    identifier: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "identifier": self.identifier}


@dataclass(frozen=True)
class ModelsConfig:
    mappings: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MAPPINGS))
    models: tuple[ModelEntry, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # unknown top-level keys, preserved

    def entry(self, name: str) -> ModelEntry | None:
        return next((m for m in self.models if m.name == name), None)

    def with_model(self, entry: ModelEntry) -> ModelsConfig:
        """This config with `entry` serving its name (replacing any other version of it, in place)."""
        models = [entry if m.name == entry.name else m for m in self.models]
        if self.entry(entry.name) is None:
            models.append(entry)
        return ModelsConfig(self.mappings, tuple(models), self.extra)

    def without_model(self, name: str) -> ModelsConfig:
        return ModelsConfig(self.mappings, tuple(m for m in self.models if m.name != name), self.extra)

    def to_dict(self) -> dict[str, Any]:
        return {**self.extra, "mappings": dict(self.mappings), "models": [m.to_dict() for m in self.models]}


def parse_models_config(raw: object, where: str = "models_config.json") -> ModelsConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must hold a JSON object")
    mappings = raw.get("mappings", dict(DEFAULT_MAPPINGS))
    if not isinstance(mappings, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in mappings.items()
    ):
        raise ConfigError(f"{where}: 'mappings' must map application names to model names (strings)")
    models_raw = raw.get("models", [])
    if not isinstance(models_raw, list):
        raise ConfigError(f"{where}: 'models' must be a list")
    models: list[ModelEntry] = []
    for index, item in enumerate(models_raw):
        if not isinstance(item, Mapping) or not all(_is_scalar(item.get(k)) for k in ("name", "version")):
            raise ConfigError(f"{where}: models[{index}] needs 'name' and 'version'")
        name, version = str(item["name"]), str(item["version"])
        identifier = item.get("identifier") or f"{name}-{version.replace('.', '-')}"
        if not isinstance(identifier, str):
            raise ConfigError(f"{where}: models[{index}].identifier must be a string")
        if any(m.name == name for m in models):
            raise ConfigError(f"{where}: model {name!r} is listed twice; one version of a model serves at a time")
        models.append(ModelEntry(name, version, identifier))
    extra = {k: v for k, v in raw.items() if k not in ("mappings", "models")}
    return ModelsConfig(dict(mappings), tuple(models), extra)


def _is_scalar(value: object) -> bool:
    """A string or a JSON number, not a boolean: the seed took either and made it a string with str()."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


class ModelsConfigFile:
    """The file on disk; `save` is atomic."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> ModelsConfig:
        """The file's config; the seed's defaults when there is no file yet."""
        if not self.path.exists():
            return ModelsConfig()
        try:
            raw = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from exc
        return parse_models_config(raw, str(self.path))

    def save(self, config: ModelsConfig) -> None:
        write_json_atomically(self.path, config.to_dict())
