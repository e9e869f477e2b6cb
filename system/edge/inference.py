"""Continuous inference on the device: the engine that runs both applications on a frame.

The seed ran inference only inside `GET /`, so nothing was inspected unless a browser was open, and
a failed Predict (None from its client) crashed the page (seed-behaviours section 3). Here a daemon
thread (`inference_loop.InferenceLoop`) pulls frames at a set rate whatever the web UI does; each
application (classification, segmentation) runs the model the roster says serves it, pre-processed
with that model's manifest by the same `preprocess` the training pipeline uses. A failing model
becomes an entry in the result's `errors`, not an exception, and does not stop the other one.

Hot swaps: the OTA worker switches the roster to the new identifier and then unloads the old one, so
a frame that read the roster just before the switch may find its model gone (NOT_FOUND). The engine
then reads the roster again and, if another identifier now serves the application, retries once
with it: a swap never shows up as a failed inference. A serving model that still answers NOT_FOUND,
or an agent that does not answer (UNAVAILABLE), is reported to `on_agent_trouble`: the agent may
have restarted empty, and `agent_watch.AgentWatch` (run as the loop's `housekeeping`) reloads it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from system.edge.image_source import Frame
from system.edge.postprocess import (
    classify,
    crop_padding,
    mask_png,
    overlay_png,
    segmentation_mask,
    thumbnail,
    thumbnail_png,
)
from system.edge.results import ClassificationResult, InferenceResult, SegmentationResult
from system.edge.roster import APP_CLASSIFICATION, APP_SEGMENTATION, ModelRoster, ServingModel
from system.errors import AgentError, EdgesimError
from system.logs import fields
from system.ports import InferenceClient
from system.preprocessing import preprocess

log = logging.getLogger(__name__)

APPS = (APP_CLASSIFICATION, APP_SEGMENTATION)
AppResult = ClassificationResult | SegmentationResult


@dataclass(frozen=True)
class _Outcome:
    """What one application gave for one frame."""

    result: AppResult | None = None
    error: str | None = None
    captured: bool = False
    not_found: bool = False  # Predict said NOT_FOUND: the model may have been swapped out meanwhile
    unavailable: bool = False  # Predict could not reach the agent


class InferenceEngine:
    """Runs the serving classification and segmentation models on a frame; keeps recent results.

    `capture_fraction` of the frames (drawn from `random.Random(rng_seed)`, one draw per frame, so
    both applications capture the same frames) are sent to the agent's CaptureData, which writes
    them in the Edge Manager layout. A capture failure is counted and logged; it never fails the
    inference. Thread-safe: the loop and web uploads may call `infer` at the same time.
    `on_agent_trouble(identifier)` hears of every Predict of a serving model that failed with
    NOT_FOUND or UNAVAILABLE, on the inferring thread: it must be quick and must not raise.
    """

    def __init__(
        self,
        client: InferenceClient,
        roster: ModelRoster,
        *,
        capture_fraction: float = 0.0,
        threshold: float = 0.5,
        history: int = 50,
        rng_seed: int | None = None,
        on_result: Callable[[InferenceResult], None] | None = None,
        on_agent_trouble: Callable[[str], None] | None = None,
        thumbnail_side: int = 320,
    ) -> None:
        if history < 1:
            raise ValueError("history must hold at least one result")
        self._client = client
        self._roster = roster
        self.capture_fraction = capture_fraction
        self.threshold = threshold
        self._thumbnail_side = thumbnail_side
        self._on_result = on_result
        self._on_agent_trouble = on_agent_trouble
        self._rng = random.Random(rng_seed)
        self._lock = threading.Lock()
        self._history: deque[InferenceResult] = deque(maxlen=history)
        self._sequence = 0
        self._counts = {"count": 0, "errors": 0, "captures": 0, "capture_errors": 0}
        self._last_logged: dict[str, str] = {}  # app -> last error logged at warning level

    @property
    def capture_fraction(self) -> float:
        return self._capture_fraction

    @capture_fraction.setter
    def capture_fraction(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"capture_fraction must be in [0, 1], not {value}")
        self._capture_fraction = value

    @property
    def count(self) -> int:
        """Results produced."""
        return self._counts["count"]

    @property
    def errors(self) -> int:
        """Per-model failures (entries in results' `errors`)."""
        return self._counts["errors"]

    @property
    def captures(self) -> int:
        """CaptureData calls the agent accepted."""
        return self._counts["captures"]

    @property
    def capture_errors(self) -> int:
        return self._counts["capture_errors"]

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def latest(self) -> InferenceResult | None:
        with self._lock:
            return self._history[-1] if self._history else None

    def recent(self, limit: int | None = None) -> list[InferenceResult]:
        """Newest first, at most `limit` (all that the history holds when None)."""
        with self._lock:
            results = list(reversed(self._history))
        return results if limit is None else results[: max(limit, 0)]

    def infer(self, frame: Frame) -> InferenceResult:
        """Run every serving application on `frame`, record the result and return it."""
        timestamp = time.time()
        capture = self._draw_capture()
        shown = thumbnail(frame.image, self._thumbnail_side)
        outcomes = {app: self._run_app(app, frame, shown, capture, timestamp) for app in APPS}
        classification = outcomes[APP_CLASSIFICATION].result
        segmentation = outcomes[APP_SEGMENTATION].result
        errors = tuple(o.error for o in outcomes.values() if o.error)
        image_png = thumbnail_png(shown, self._thumbnail_side)
        with self._lock:
            self._sequence += 1
            result = InferenceResult(
                sequence=self._sequence,
                timestamp=timestamp,
                image_name=frame.name,
                image_png=image_png,
                classification=classification if isinstance(classification, ClassificationResult) else None,
                segmentation=segmentation if isinstance(segmentation, SegmentationResult) else None,
                errors=errors,
                captured=any(o.captured for o in outcomes.values()),
            )
            self._history.append(result)
            self._counts["count"] += 1
            self._counts["errors"] += len(errors)
        self._notify(result)
        return result

    def _draw_capture(self) -> bool:
        with self._lock:
            return self._capture_fraction > 0 and self._rng.random() < self._capture_fraction

    def _notify(self, result: InferenceResult) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(result)
        except Exception:
            log.exception("on_result callback failed", extra=fields(sequence=result.sequence))

    def _run_app(self, app: str, frame: Frame, shown: Image.Image, capture: bool, timestamp: float) -> _Outcome:
        model = self._roster.for_app(app)
        if model is None:
            return _Outcome()  # not deployed yet: the seed's "waiting for deployment"
        outcome = self._run_model(app, model, frame, shown, capture, timestamp)
        if outcome.not_found:
            current = self._roster.for_app(app)
            if current is None:
                log.info("model removed during inference", extra=fields(app=app, model=model.identifier))
                return _Outcome()
            if current.identifier != model.identifier:
                log.info(
                    "model swapped during inference; retrying with the new one",
                    extra=fields(app=app, old=model.identifier, new=current.identifier),
                )
                model = current
                outcome = self._run_model(app, model, frame, shown, capture, timestamp)
        if (outcome.not_found or outcome.unavailable) and self._on_agent_trouble is not None:
            self._on_agent_trouble(model.identifier)
        if outcome.error:
            self._log_failure(app, outcome.error)
        else:
            self._last_logged.pop(app, None)
        return outcome

    def _run_model(
        self, app: str, model: ServingModel, frame: Frame, shown: Image.Image, capture: bool, timestamp: float
    ) -> _Outcome:
        """Pre-process, predict, capture and post-process with one model; failures become an error entry."""
        stage = "preprocess"
        captured = False
        try:
            input_name = model.manifest.inputs[0].name
            x = preprocess(frame.image, model.manifest.preprocessing)
            stage = "predict"
            started = time.perf_counter()
            outputs = self._client.predict(model.identifier, {input_name: x})
            latency_ms = (time.perf_counter() - started) * 1000.0
            captured = capture and self._capture(model, {input_name: x}, outputs, timestamp)
            stage = "postprocess"
            y = _main_output(outputs, model)
            if app == APP_CLASSIFICATION:
                return _Outcome(result=self._classification(model, y, latency_ms), captured=captured)
            return _Outcome(result=self._segmentation(model, y, frame, shown, latency_ms), captured=captured)
        except (EdgesimError, ValueError) as exc:
            code = exc.code if isinstance(exc, AgentError) and stage == "predict" else ""
            return _Outcome(
                error=f"{model.identifier}: {stage} failed: {exc}",
                captured=captured,
                not_found=code == "NOT_FOUND",
                unavailable=code == "UNAVAILABLE",
            )
        except Exception as exc:  # a bug or an unexpected library error: reported, with its traceback in the log
            log.exception("inference failed unexpectedly", extra=fields(app=app, model=model.identifier, stage=stage))
            error = f"{model.identifier}: {stage} failed: {type(exc).__name__}: {exc}"
            return _Outcome(error=error, captured=captured)

    def _classification(self, model: ServingModel, y: np.ndarray, latency_ms: float) -> ClassificationResult:
        label, probabilities = classify(y, model.manifest.labels)
        return ClassificationResult(
            model=model.identifier,
            version=model.version,
            label=label,
            probabilities=probabilities,
            latency_ms=latency_ms,
        )

    def _segmentation(
        self, model: ServingModel, y: np.ndarray, frame: Frame, shown: Image.Image, latency_ms: float
    ) -> SegmentationResult:
        mask = segmentation_mask(y, self.threshold)
        # The model saw the image padded to a square: cut the padding bands off the mask so that the
        # overlay lines up with the image and the defect fraction counts surface pixels only.
        on_image = crop_padding(mask, frame.image.size) if model.manifest.preprocessing.pad_to_square else mask
        return SegmentationResult(
            model=model.identifier,
            version=model.version,
            threshold=self.threshold,
            defect_fraction=float(on_image.mean()),
            mask_png=mask_png(mask),
            overlay_png=overlay_png(shown, on_image),
            latency_ms=latency_ms,
        )

    def _capture(
        self, model: ServingModel, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, Any], timestamp: float
    ) -> bool:
        """CaptureData for one model; True if the agent accepted it. Never raises."""
        try:
            self._client.capture_data(model.identifier, inputs, outputs, inference_time=timestamp)
        except (EdgesimError, ValueError) as exc:
            self._count("capture_errors")
            log.warning("data capture failed", extra=fields(model=model.identifier, error=str(exc)))
            return False
        except Exception:
            self._count("capture_errors")
            log.exception("data capture failed unexpectedly", extra=fields(model=model.identifier))
            return False
        self._count("captures")
        return True

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _log_failure(self, app: str, error: str) -> None:
        """Warn when an application's error changes; repeats of the same error go to debug (2 per second adds up)."""
        if self._last_logged.get(app) == error:
            log.debug("inference failed again", extra=fields(app=app, error=error))
            return
        self._last_logged[app] = error
        log.warning("inference failed", extra=fields(app=app, error=error))


def _main_output(outputs: Mapping[str, Any], model: ServingModel) -> np.ndarray:
    """The output the manifest lists first (or the only one the agent returned)."""
    name = model.manifest.outputs[0].name
    if name in outputs:
        return np.asarray(outputs[name])
    if len(outputs) == 1:
        return np.asarray(next(iter(outputs.values())))
    raise ValueError(f"the agent returned outputs {sorted(outputs)}, not the manifest's '{name}'")
