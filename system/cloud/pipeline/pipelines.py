"""The classification and segmentation pipelines: options in, steps run, a result out.

The seed ran these as SageMaker Pipelines (seed-behaviours.md section 4); edgesim runs the same
steps locally against any profile's ObjectStore and registry (`definition.py` still emits a
SageMaker Pipelines definition for users who train in AWS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from system.agent.package import Preprocessing
from system.cloud.pipeline.backends import CloudBackends
from system.cloud.pipeline.progress import Progress
from system.cloud.pipeline.runner import PipelineRunner, StepOutcome
from system.cloud.pipeline.steps import EvaluateStep, GateStep, IngestStep, PackageStep, PreprocessStep, TrainStep
from system.errors import ConfigError

TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class PipelineOptions:
    task: str
    data: Path | None = None  # a KolektorSDD2-layout folder
    synthetic: int = 0  # or: generate this many training images (and a quarter as many test images)
    seed: int = 0
    epochs: int = 40
    patience: int = 8  # early stopping: epochs without a better validation loss
    image_size: int = 64
    batch_size: int = 16
    augment_copies: int = 2
    threshold: float = 0.5
    quantization: str = "none"
    gate: dict[str, Any] = field(default_factory=dict)  # GateConfig overrides
    approval: str = "Approved"
    signing_key: Path | None = None
    use_cache: bool = True

    def validate(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"the pipeline is classification or segmentation, not {self.task!r}")
        if (self.data is None) == (self.synthetic <= 0):
            raise ConfigError("give either a data folder (--data) or a synthetic data size (--synthetic N)")
        if self.epochs < 1 or self.image_size < 16 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be >= 1 and the image size >= 16")


@dataclass
class PipelineResult:
    task: str
    outcomes: dict[str, StepOutcome]

    @property
    def version(self) -> str:
        return str(self.outcomes["package"].summary["version"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "steps": {
                name: {"cached": o.cached, "outputs": o.outputs, "summary": o.summary}
                for name, o in self.outcomes.items()
            },
        }


def synthetic_data(folder: Path, n_train: int, seed: int) -> Path:
    """KolektorSDD2-like data from `simulators/` (the `edgesim.datasets` entry point `synthetic`)."""
    found = [ep for ep in entry_points(group="edgesim.datasets") if ep.name == "synthetic"]
    if not found:
        raise ConfigError("synthetic data needs edgesim's simulators (entry point edgesim.datasets)")
    if not (folder / "train").exists():
        # 25 % defective (KSDD2 has ~11 %): enough anomalous examples in a small run, while flagging
        # every image still scores an F1 (0.40) below the default gate's 0.5.
        found[0].load()(folder, n_train, max(n_train // 2, 8), defect_rate=0.25, seed=seed, size=(64, 160))
    return folder


def build_steps(options: PipelineOptions, backends: CloudBackends, data: Path) -> list[Any]:
    from system.cloud.gate import GateConfig

    signing = None
    if options.signing_key is not None:
        from system.signing import load_private_key

        signing = load_private_key(options.signing_key)
    size = options.image_size
    return [
        IngestStep(data),
        PreprocessStep(options.task, Preprocessing(height=size, width=size), options.seed, options.augment_copies),
        TrainStep(options.task, options.epochs, options.batch_size, options.seed, options.patience),
        EvaluateStep(options.task, options.threshold),
        GateStep(options.task, GateConfig.from_dict(options.gate)),
        PackageStep(
            options.task,
            backends.registry,
            backends.groups[options.task],
            backends.bucket,
            options.quantization,
            options.approval,
            signing,
        ),
    ]


def run_pipeline(
    options: PipelineOptions, backends: CloudBackends, workdir: Path, progress: Progress
) -> PipelineResult:
    """Run every step; GateFailed when the model is not good enough (nothing is registered then)."""
    options.validate()
    data = options.data or synthetic_data(workdir / "synthetic-data", options.synthetic, options.seed)
    runner = PipelineRunner(backends.store, options.task, workdir, progress=progress)
    outcomes = runner.run(build_steps(options, backends, data), use_cache=options.use_cache)
    return PipelineResult(options.task, outcomes)


def save_reports(backends: CloudBackends, outcomes: dict[str, StepOutcome], folder: Path) -> list[Path]:
    """Copy every JSON and PNG a step wrote to a local folder (the fake profile's cloud is gone after)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for step, outcome in outcomes.items():
        for key in outcome.outputs.values():
            if key.endswith((".json", ".png")):
                path = folder / f"{step}-{Path(key).name}"
                path.write_bytes(backends.store.get_bytes(key))
                written.append(path)
    (folder / "pipeline-result.json").write_text(
        json.dumps({s: {"summary": o.summary, "cached": o.cached} for s, o in outcomes.items()}, indent=2, default=str)
    )
    return written
