"""The steps of the two training pipelines (classification and segmentation), on the ObjectStore.

    ingest -> preprocess -> train -> evaluate -> gate -> package + register

Each step reads what earlier steps wrote and writes its own outputs under its run folder
(`runner.py`). The first four are cached by input hash; the gate and packaging run every time
(a gate may have new thresholds; a package is a new registry version).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from system.agent.package import Preprocessing
from system.cloud.pipeline.runner import GateFailed, PipelineError, StepContext, StepOutcome
from system.cloud.splits import PreparedData

MODEL_NAMES = {"classification": "img-classification", "segmentation": "unet"}
LABELS = ["normal", "anomalous"]


def folder_fingerprint(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes: the ingest step's cache identity."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _load_model(context: StepContext, key: str) -> Any:
    import keras

    path = context.workdir / Path(key).name
    path.write_bytes(context.store.get_bytes(key))
    return keras.models.load_model(path, compile=False)


def _prepared(context: StepContext, key: str) -> PreparedData:
    return PreparedData.from_bytes(context.store.get_bytes(key))


def _epoch_progress(context: StepContext) -> Callable[[int, int, dict[str, float]], None]:
    def report(epoch: int, total: int, logs: dict[str, float]) -> None:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in logs.items() if k in ("loss", "val_loss"))
        context.progress.update(epoch, total, shown)

    return report


@dataclass
class IngestStep:
    """The KolektorSDD2-layout folder into the seed's layouts on the store (validated first)."""

    data: Path
    name: str = "ingest"
    version: str = "1"
    cacheable: bool = True

    @cached_property
    def fingerprint(self) -> str:
        """Read once: hashing every image is the step's costliest part when it is cached."""
        return folder_fingerprint(self.data)

    def params(self) -> Mapping[str, Any]:
        return {"fingerprint": self.fingerprint}

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {}

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud.dataset import load_split
        from system.cloud.prepare import publish_seed_layout

        splits = [s for s in ("train", "test") if (self.data / s).is_dir()]
        if not splits:
            raise PipelineError(f"{self.data} has neither train/ nor test/: expected the KolektorSDD2 layout")
        samples = [sample for split in splits for sample in load_split(self.data, split)]
        report = publish_seed_layout(samples, context.store, context.output_prefix)
        report["fingerprint"] = self.fingerprint
        report["source"] = str(self.data)
        outputs = {"layout": context.output_prefix, "report": context.put_json("ingest-report.json", report)}
        return StepOutcome(outputs, {"images": report.get("images"), "anomalous": report.get("anomalous")})


@dataclass
class PreprocessStep:
    task: str
    preprocessing: Preprocessing
    seed: int = 0
    augment_copies: int = 2
    name: str = "preprocess"
    version: str = "1"
    cacheable: bool = True

    def params(self) -> Mapping[str, Any]:
        return {
            "task": self.task,
            "preprocessing": self.preprocessing.to_dict(),
            "seed": self.seed,
            "augment_copies": self.augment_copies,
        }

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {"ingest_report": results["ingest"].outputs["report"]}

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud.prepare import prepare_classification, prepare_segmentation

        prepare = prepare_classification if self.task == "classification" else prepare_segmentation
        layout = context.results["ingest"].outputs["layout"]
        data = prepare(context.store, layout, self.preprocessing, seed=self.seed, augment_copies=self.augment_copies)
        data_key = context.key("prepared.npz")
        context.store.put_bytes(data_key, data.to_bytes())
        report_key = context.put_json("preprocess-report.json", data.report)
        counts = {split: len(data.y[split]) for split in ("train", "val", "test")}
        return StepOutcome({"data": data_key, "report": report_key}, counts)


@dataclass
class TrainStep:
    task: str
    epochs: int = 20
    batch_size: int = 16
    seed: int = 0
    patience: int = 5
    name: str = "train"
    version: str = "1"
    cacheable: bool = True

    def params(self) -> Mapping[str, Any]:
        return {
            "task": self.task,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "patience": self.patience,
        }

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {"data": results["preprocess"].outputs["data"]}

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud.classifier import train_classifier
        from system.cloud.unet import train_unet

        data = _prepared(context, inputs["data"])
        train = train_classifier if self.task == "classification" else train_unet
        model = train(
            data.x["train"],
            data.y["train"],
            x_val=data.x["val"],
            y_val=data.y["val"],
            epochs=self.epochs,
            batch_size=self.batch_size,
            seed=self.seed,
            patience=self.patience,
            progress=_epoch_progress(context),
        )
        path = context.workdir / "model.keras"
        model.save(path)
        model_key = context.key("model.keras")
        context.store.put_bytes(model_key, path.read_bytes())
        fitted = getattr(getattr(model, "history", None), "history", {})  # Keras keeps the last fit's History
        history = {k: [float(v) for v in values] for k, values in fitted.items()}
        history_key = context.put_json("history.json", history)
        epochs_run = len(history.get("loss", [])) or self.epochs
        return StepOutcome({"model": model_key, "history": history_key}, {"epochs": epochs_run})


@dataclass
class EvaluateStep:
    task: str
    threshold: float = 0.5
    name: str = "evaluate"
    version: str = "1"
    cacheable: bool = True

    def params(self) -> Mapping[str, Any]:
        return {"task": self.task, "threshold": self.threshold}

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {"data": results["preprocess"].outputs["data"], "model": results["train"].outputs["model"]}

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud import evaluation

        data = _prepared(context, inputs["data"])
        model = _load_model(context, inputs["model"])
        x, y = data.x["test"], data.y["test"]
        predicted = np.asarray(model.predict(x, batch_size=16, verbose=0))
        outputs: dict[str, str] = {}
        plots: dict[str, Callable[[Path], Path]]
        if self.task == "classification":
            report = evaluation.classification_report(y, predicted[:, 1], self.threshold)
            plots = {
                "confusion-matrix.png": lambda p: evaluation.plot_confusion_matrix(report, p),
                "roc-curve.png": lambda p: evaluation.plot_roc_curve(y, predicted[:, 1], p),
            }
            summary = {k: report.get(k) for k in ("f1", "roc_auc", "accuracy")}
        else:
            report = evaluation.segmentation_report(y, predicted, self.threshold)
            plots = {"mask-overlays.png": lambda p: evaluation.plot_mask_overlays(x, y, predicted, p)}
            summary = {k: report.get(k) for k in ("dice", "iou")}
        for file_name, draw in plots.items():
            path = draw(context.workdir / file_name)
            key = context.key(file_name)
            context.store.put_bytes(key, Path(path).read_bytes())
            outputs[file_name.removesuffix(".png")] = key
        outputs["evaluation"] = context.put_json("evaluation.json", report)
        return StepOutcome(outputs, summary)


@dataclass
class GateStep:
    task: str
    config: Any  # system.cloud.gate.GateConfig
    name: str = "gate"
    version: str = "1"
    cacheable: bool = False

    def params(self) -> Mapping[str, Any]:
        return {"task": self.task}

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {"evaluation": results["evaluate"].outputs["evaluation"]}

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud.gate import evaluate_gate

        result = evaluate_gate(self.task, context.get_json(inputs["evaluation"]), self.config)
        record = {"passed": result.passed, "checks": result.checks, "reasons": result.reasons}
        key = context.put_json("gate.json", record)
        if not result.passed:
            raise GateFailed("the model did not pass the gate; nothing was registered", result.reasons, {"gate": key})
        return StepOutcome({"gate": key}, {"passed": True})


@dataclass
class PackageStep:
    """Build and upload the edge packages under the next registry version, then register that version."""

    task: str
    registry: Any  # ModelRegistry
    group: str
    bucket: str
    quantization: str = "none"
    approval: str = "Approved"
    signing_key: Any = None  # Ed25519PrivateKey
    name: str = "package"
    version: str = "1"
    cacheable: bool = False

    def params(self) -> Mapping[str, Any]:
        return {"task": self.task, "quantization": self.quantization}

    def inputs(self, results: Mapping[str, StepOutcome]) -> Mapping[str, str]:
        return {
            "data": results["preprocess"].outputs["data"],
            "model": results["train"].outputs["model"],
            "evaluation": results["evaluate"].outputs["evaluation"],
        }

    def run(self, context: StepContext, inputs: Mapping[str, str]) -> StepOutcome:
        from system.cloud.edge_package import build_edge_packages, upload_packages

        data = _prepared(context, inputs["data"])
        model = _load_model(context, inputs["model"])
        evaluation = context.get_json(inputs["evaluation"])
        self.registry.ensure_group(self.group, f"edgesim {self.task} models")
        existing = [v.version for v in self.registry.versions(self.group)]
        version = str(max(existing, default=0) + 1)
        model_name = MODEL_NAMES[self.task]
        context.progress.update(1, 3, f"building {model_name} {version}")
        with tempfile.TemporaryDirectory(dir=context.workdir) as scratch:
            report = build_edge_packages(
                model,
                Path(scratch),
                name=model_name,
                version=version,
                preprocessing=data.preprocessing,
                labels=LABELS if self.task == "classification" else None,
                quantization=self.quantization,
                calibration=data.x["train"][:64] if self.quantization == "int8" else None,
                evaluate=_package_metric(self.task, data),
                benchmark_input=data.x["test"][:1],
                signing_key=self.signing_key,
            )
            context.progress.update(2, 3, "uploading")
            report = upload_packages(report, context.store, self.bucket)  # type: ignore[arg-type]
        primary = report.variant("tensorflow")
        metrics = {
            k: float(v) for k, v in evaluation.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        registered = self.registry.register(self.group, f"s3://{self.bucket}/{primary.key}", metrics, self.approval)
        if str(registered.version) != version:
            raise PipelineError(
                f"the registry gave version {registered.version}, not {version}: another run registered meanwhile"
            )
        assert report.report_key is not None
        outputs = {"package_report": report.report_key}
        summary = {"model": model_name, "version": version, "approval": self.approval, "arn": registered.arn}
        summary["archives"] = [v.key for v in report.variants]
        return StepOutcome(outputs, summary)


def _package_metric(task: str, data: PreparedData) -> Callable[[Callable[[np.ndarray], np.ndarray]], dict[str, float]]:
    """The metric each package variant is scored with on the test split (its change against float)."""

    def score(predict: Callable[[np.ndarray], np.ndarray]) -> dict[str, float]:
        out = np.asarray(predict(data.x["test"]))
        if task == "classification":
            from system.cloud.evaluation import classification_report

            report = classification_report(data.y["test"], out[:, 1])
            return {"f1": float(report["f1"]), "accuracy": float(report["accuracy"])}
        from system.cloud.evaluation import segmentation_report

        return {"dice": float(segmentation_report(data.y["test"], out)["dice"])}

    return score
