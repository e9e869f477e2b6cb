"""The agent's loaded models: load, unload and use them safely from many threads.

Rules (issue 3): Predicts on different models run in parallel; a Load or UnLoad never fails an
in-flight Predict of another model; an UnLoad removes the name at once (later Predicts get
NOT_FOUND), waits for the model's in-flight Predicts, then frees it. Loading happens outside
the lock, with the name reserved so that two concurrent loads of one name cannot both win.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from system.agent.load_priority import fast_gil_handoff
from system.agent.package import Manifest, VerifiedPackage, read_package
from system.agent.runtimes import ModelRuntime, open_runtime
from system.config import AgentSettings
from system.errors import (
    InvalidArgumentError,
    ModelAlreadyLoadedError,
    ModelNotFoundError,
    PackageRejectedError,
    ResourceExhaustedError,
    RuntimeFailureError,
)
from system.killpoints import kill_point
from system.logs import fields

log = logging.getLogger(__name__)

# The model-name rule of the original agent (agent.proto, LoadModel).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")

RuntimeOpener = Callable[[VerifiedPackage, AgentSettings], ModelRuntime]


def check_model_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise InvalidArgumentError(f"model name {name!r} is invalid: it must match ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


@dataclass
class LoadedModel:
    name: str
    url: str
    manifest: Manifest
    size_bytes: int
    runtime: ModelRuntime
    loaded_at: float = field(default_factory=time.time)
    in_flight: int = 0
    predictions: int = 0


class ModelTable:
    """Loaded models by name, with budgets and in-flight accounting."""

    def __init__(self, settings: AgentSettings, opener: RuntimeOpener = open_runtime) -> None:
        self._settings = settings
        self._open = opener
        self._models: dict[str, LoadedModel] = {}
        self._reserved: dict[str, int] = {}  # names being loaded -> their package size
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)

    def load(self, name: str, url: str) -> LoadedModel:
        check_model_name(name)
        with self._lock:
            if name in self._models or name in self._reserved:
                raise ModelAlreadyLoadedError(f"a model named '{name}' is already loaded")
        package = read_package(url)  # NOT_FOUND / FAILED_PRECONDITION, before any budget is taken
        self._reserve(name, package.size_bytes)
        try:
            started = time.perf_counter()
            with fast_gil_handoff(self._settings.load_switch_interval_ms / 1000):
                runtime = self._open(package, self._settings)
                if self._settings.warmup:
                    _warm_up(runtime, package.manifest, url)
        except BaseException:
            with self._lock:
                self._reserved.pop(name, None)
            raise
        kill_point("agent.load.opened")
        model = LoadedModel(name, url, package.manifest, package.size_bytes, runtime)
        with self._lock:
            self._reserved.pop(name, None)
            self._models[name] = model
        kill_point("agent.load.registered")
        log.info(
            "model loaded",
            extra=fields(
                model=name,
                url=url,
                framework=package.manifest.framework,
                version=package.manifest.version,
                size_bytes=package.size_bytes,
                load_ms=round((time.perf_counter() - started) * 1000, 1),
            ),
        )
        return model

    def _reserve(self, name: str, size: int) -> None:
        with self._lock:
            if name in self._models or name in self._reserved:
                raise ModelAlreadyLoadedError(f"a model named '{name}' is already loaded")
            count = len(self._models) + len(self._reserved)
            if count >= self._settings.max_models:
                raise ResourceExhaustedError(
                    f"cannot load '{name}': {count} models are loaded, the limit is {self._settings.max_models}"
                )
            budget = self._settings.memory_budget_mb * 1024 * 1024
            used = sum(m.size_bytes for m in self._models.values()) + sum(self._reserved.values())
            if budget and used + size > budget:
                raise ResourceExhaustedError(
                    f"cannot load '{name}' ({size} bytes): {used} of the {budget}-byte memory budget is in use"
                )
            self._reserved[name] = size

    def unload(self, name: str) -> None:
        """Remove `name` now; return once its in-flight Predicts have finished and it is freed."""
        with self._lock:
            model = self._models.pop(name, None)
            if model is None:
                raise ModelNotFoundError(f"no model named '{name}' is loaded")
            while model.in_flight:
                self._idle.wait()
        model.runtime.close()
        kill_point("agent.unload.done")
        log.info("model unloaded", extra=fields(model=name, predictions=model.predictions))

    def get(self, name: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise ModelNotFoundError(f"no model named '{name}' is loaded")
        return model

    def list(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.name)

    @contextmanager
    def using(self, name: str) -> Iterator[LoadedModel]:
        """Hold `name` for one Predict: an UnLoad waits until the block exits."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise ModelNotFoundError(f"no model named '{name}' is loaded")
            model.in_flight += 1
        try:
            yield model
        finally:
            with self._lock:
                model.in_flight -= 1
                model.predictions += 1
                if model.in_flight == 0:
                    self._idle.notify_all()

    def unload_all(self) -> None:
        for model in self.list():
            try:
                self.unload(model.name)
            except ModelNotFoundError:
                continue  # unloaded concurrently: nothing left to free


def run_model(model: LoadedModel, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run the runtime, turning any framework failure into one typed error."""
    try:
        return model.runtime.run(inputs)
    except Exception as exc:
        raise RuntimeFailureError(f"model '{model.name}' failed: {type(exc).__name__}: {exc}") from exc


def _warm_up(runtime: ModelRuntime, manifest: Manifest, url: str) -> None:
    """One inference on zeros so that graph tracing is paid at load, not by the first Predict.

    A model that cannot run on a well-formed input is refused (and closed) instead of loaded.
    """
    if not all(spec.is_static for spec in manifest.inputs):
        return
    try:
        outputs = runtime.run([np.zeros(spec.shape, dtype=spec.numpy_dtype) for spec in manifest.inputs])
        if len(outputs) != len(manifest.outputs):
            raise ValueError(f"it returned {len(outputs)} outputs, the manifest declares {len(manifest.outputs)}")
    except Exception as exc:
        runtime.close()
        raise PackageRejectedError(f"package '{url}': the model fails on a zero input: {exc}") from exc
