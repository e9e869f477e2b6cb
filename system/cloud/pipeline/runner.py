"""Run pipeline steps in order, each with inputs and outputs on the ObjectStore, cached by input hash.

A step declares its parameters and its inputs (store keys); its cache key is the SHA-256 of its
name, its code version, its parameters and the contents of its inputs. When a run finds a cache
record for that key whose outputs all still exist, the step is skipped and its recorded outputs
are reused, so re-running a pipeline after changing only the gate thresholds does not train again.
Steps that must run every time (registering a model version) say `cacheable = False`.

Layout on the store, under `prefix` (default `pipelines/<pipeline>`):

    runs/<run id>/<step>/...        what each step wrote in that run
    runs/<run id>/run.json          the run's record: steps, cache hits, outputs, outcome
    cache/<step>/<key>.json         {"outputs": {...}, "summary": {...}} of a completed step
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from system.cloud.pipeline.progress import Progress
from system.errors import EdgesimError, ObjectNotFoundError
from system.ports import ObjectStore

_log = logging.getLogger(__name__)


class PipelineError(EdgesimError):
    """A step failed; the message names the step and why. `results`: the steps done before it."""

    results: dict[str, StepOutcome]


class GateFailed(PipelineError):
    """The evaluation did not pass the gate: nothing was registered."""

    def __init__(self, message: str, reasons: Sequence[str], outputs: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.reasons = list(reasons)
        self.outputs = dict(outputs or {})  # what the gate step wrote (its verdict), kept with the results


@dataclass
class StepContext:
    """What a running step may use: the store, its own output prefix, a scratch folder, progress."""

    store: ObjectStore
    output_prefix: str  # "…/runs/<run id>/<step>/": where the step writes
    workdir: Path
    progress: Progress
    results: dict[str, StepOutcome]  # earlier steps of this run, by name

    def key(self, name: str) -> str:
        return self.output_prefix + name

    def put_json(self, name: str, value: Any) -> str:
        key = self.key(name)
        self.store.put_bytes(key, (json.dumps(value, indent=2, default=str) + "\n").encode())
        return key

    def get_json(self, key: str) -> Any:
        return json.loads(self.store.get_bytes(key))


@dataclass
class StepOutcome:
    outputs: dict[str, str]  # output name -> store key
    summary: dict[str, Any] = field(default_factory=dict)  # small, JSON: shown and kept in run.json
    cached: bool = False


class Step(Protocol):
    name: str
    version: str  # bump when the step's behaviour changes: old cache entries stop matching
    cacheable: bool

    def params(self) -> Mapping[str, Any]:
        """JSON-able parameters that change the step's outputs (epochs, seed, thresholds...)."""
        ...

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        """The store keys this step reads (taken from earlier steps' outputs)."""
        ...

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome: ...


class PipelineRunner:
    def __init__(
        self,
        store: ObjectStore,
        pipeline: str,
        workdir: Path,
        *,
        prefix: str | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.prefix = (prefix if prefix is not None else f"pipelines/{pipeline}").rstrip("/") + "/"
        self.workdir = workdir
        self.progress = progress or Progress(enabled=False)

    def run(
        self, steps: Sequence[Step], *, use_cache: bool = True, run_id: str | None = None
    ) -> dict[str, StepOutcome]:
        run_id = run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        results: dict[str, StepOutcome] = {}
        record: dict[str, Any] = {"pipeline": self.pipeline, "run_id": run_id, "started_at": time.time(), "steps": []}
        try:
            for index, step in enumerate(steps, 1):
                try:
                    results[step.name] = self._run_step(step, index, len(steps), run_id, results, use_cache)
                except GateFailed as exc:
                    results[step.name] = StepOutcome(exc.outputs, {"passed": False, "reasons": exc.reasons})
                    raise
                outcome = results[step.name]
                record["steps"].append(
                    {
                        "step": step.name,
                        "cached": outcome.cached,
                        "outputs": outcome.outputs,
                        "summary": outcome.summary,
                    }
                )
            record["outcome"] = "succeeded"
            return results
        except GateFailed as exc:
            record["outcome"], record["reasons"] = "gate failed", exc.reasons
            exc.results = results
            raise
        except PipelineError as exc:
            record["outcome"], record["error"] = "failed", str(exc)
            exc.results = results
            raise
        finally:
            record["finished_at"] = time.time()
            self.store.put_bytes(
                f"{self.prefix}runs/{run_id}/run.json", json.dumps(record, indent=2, default=str).encode()
            )

    def _run_step(
        self, step: Step, index: int, total: int, run_id: str, results: dict[str, StepOutcome], use_cache: bool
    ) -> StepOutcome:
        inputs = dict(step.inputs(results))
        cache_key = self._cache_key(step, inputs) if step.cacheable else None
        if cache_key is not None and use_cache:
            cached = self._cached(step, cache_key)
            if cached is not None:
                self.progress.step(index, total, step.name, "cached (same inputs and parameters)")
                return cached
        self.progress.step(index, total, step.name)
        workdir = self.workdir / run_id / step.name
        workdir.mkdir(parents=True, exist_ok=True)
        context = StepContext(self.store, f"{self.prefix}runs/{run_id}/{step.name}/", workdir, self.progress, results)
        try:
            outcome = step.run(context, inputs)
        except GateFailed:
            self.progress.done("gate failed")
            raise
        except EdgesimError as exc:
            raise PipelineError(f"step {step.name} failed: {exc}") from exc
        self.progress.done(_short_summary(outcome.summary))
        if cache_key is not None:
            record = {"outputs": outcome.outputs, "summary": outcome.summary, "run_id": run_id}
            self.store.put_bytes(self._cache_path(step, cache_key), json.dumps(record, default=str).encode())
        return outcome

    def _cache_key(self, step: Step, inputs: Mapping[str, str]) -> str:
        digest = hashlib.sha256()
        digest.update(
            json.dumps(
                {"step": step.name, "version": step.version, "params": step.params()}, sort_keys=True, default=str
            ).encode()
        )
        for name, key in sorted(inputs.items()):
            digest.update(f"\n{name}={key}:".encode())
            digest.update(hashlib.sha256(self.store.get_bytes(key)).digest())
        return digest.hexdigest()

    def _cache_path(self, step: Step, cache_key: str) -> str:
        return f"{self.prefix}cache/{step.name}/{cache_key}.json"

    def _cached(self, step: Step, cache_key: str) -> StepOutcome | None:
        try:
            record = json.loads(self.store.get_bytes(self._cache_path(step, cache_key)))
        except ObjectNotFoundError:
            return None
        outputs: dict[str, str] = record["outputs"]
        for key in outputs.values():
            try:
                self.store.list_keys(key)[0]
            except IndexError:
                _log.info("cache entry's outputs are gone; running the step", extra={"fields": {"step": step.name}})
                return None
        return StepOutcome(outputs, record.get("summary", {}), cached=True)


def _short_summary(summary: Mapping[str, Any]) -> str:
    parts = [
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
        for k, v in summary.items()
        if not isinstance(v, (dict, list))
    ]
    return ", ".join(parts[:6])
