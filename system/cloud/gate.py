"""The quality gate a model must pass before it is registered: thresholds on held-out metrics.

The seed registered its classifier when test accuracy was >= 0.8 and its UNet unconditionally.
On KolektorSDD2 about 89 % of the images are defect-free, so a model that always answers "normal"
scores ~0.89 accuracy, finds no defect, and passes; a UNet that outputs empty masks would be
registered too. The default gate therefore checks what such models get wrong:

- classification: F1 of the anomalous class >= 0.5 (always-normal scores 0.0; always-anomalous
  scores 2p/(1+p), 0.19 at KSDD2's ~11 % defect rate);
- segmentation: global Dice >= 0.3 (the empty mask scores 0.0 whenever any defect exists).

Accuracy is deliberately NOT a default criterion: with ~89 % normal images it cannot tell a
detector from a model that detects nothing. `min_accuracy` stays available, for parity with the
seed's 0.8, but only ever next to a criterion that looks at the defects.

Thresholds are read against the reports of `system.cloud.evaluation` (keys `f1`, `roc_auc`,
`dice`...). A metric the report does not have, or has as None (ROC-AUC on a test set with one
class), fails its check: a gate that cannot measure a model must not let it through.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from system.errors import ConfigError

TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class Criterion:
    """One threshold of the gate: which report key it reads, how it compares, and how to name it."""

    setting: str  # GateConfig field
    task: str
    metric: str  # key in the evaluation report
    label: str  # for reasons: "anomalous F1"
    at_least: bool  # True: value >= threshold passes; False: value <= threshold passes


CRITERIA = (
    Criterion("min_anomalous_f1", "classification", "f1", "anomalous F1", True),
    Criterion("min_anomalous_recall", "classification", "recall", "anomalous recall", True),
    Criterion("min_anomalous_precision", "classification", "precision", "anomalous precision", True),
    Criterion("min_roc_auc", "classification", "roc_auc", "ROC-AUC", True),
    Criterion("min_accuracy", "classification", "accuracy", "accuracy", True),
    Criterion("max_false_positive_rate", "classification", "false_positive_rate", "false-positive rate", False),
    Criterion("min_dice", "segmentation", "dice", "Dice", True),
    Criterion("min_iou", "segmentation", "iou", "IoU", True),
    Criterion("min_mean_image_dice", "segmentation", "mean_image_dice", "mean per-image Dice", True),
)


@dataclass(frozen=True)
class GateConfig:
    """Thresholds, each in 0..1; None switches a criterion off. Only the task's own criteria apply."""

    min_anomalous_f1: float | None = 0.5
    min_anomalous_recall: float | None = None
    min_anomalous_precision: float | None = None
    min_roc_auc: float | None = None
    min_accuracy: float | None = None  # weak on its own: always-normal scores the normal fraction
    max_false_positive_rate: float | None = None  # share of normal images flagged (false alarms)
    min_dice: float | None = 0.3
    min_iou: float | None = None
    min_mean_image_dice: float | None = None

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"gate setting {item.name} must be a number in 0..1 or null, not {value!r}")

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> GateConfig:
        """Build from settings (e.g. parsed JSON); an unknown key is refused, since a typo would
        otherwise silently leave a criterion at its default."""
        known = [item.name for item in fields(cls)]
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"unknown gate settings {unknown}; known settings are {known}")
        return cls(**raw)

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    """The verdict, every check made (metric, value, threshold, passed) and why it failed, if it did."""

    passed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": list(self.checks), "reasons": list(self.reasons)}


def evaluate_gate(task: str, report: dict[str, Any], config: GateConfig) -> GateResult:
    """Check `report` (from `classification_report` or `segmentation_report`) against `config`.

    Passes only if every configured criterion of `task` passes. A gate with no criterion for the
    task fails: passing everything by default is the seed's UNet "gate".
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    values, notes = _with_derived_metrics(report)
    checks: list[dict[str, Any]] = []
    reasons: list[str] = []
    for criterion in CRITERIA:
        threshold = getattr(config, criterion.setting)
        if criterion.task != task or threshold is None:
            continue
        value = values.get(criterion.metric)
        passed, reason = _check(criterion, value, float(threshold), notes)
        checks.append({"metric": criterion.metric, "value": value, "threshold": threshold, "passed": passed})
        if reason:
            reasons.append(reason)
    if not checks:
        reasons.append(f"the gate has no {task} criterion set: a gate that checks nothing would pass any model")
    return GateResult(passed=bool(checks) and not reasons, checks=checks, reasons=reasons)


def _check(criterion: Criterion, value: Any, threshold: float, notes: list[str]) -> tuple[bool, str]:
    """(passed, reason for failing or "")."""
    if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        bound = "at least" if criterion.at_least else "at most"
        why = "; ".join(note for note in notes if note.startswith(criterion.metric))
        cause = why or f"the report has no value for '{criterion.metric}'"
        return False, f"{criterion.label} is not available ({cause}); the gate requires {bound} {threshold:.2f}"
    shown, limit = _format_pair(float(value), threshold)
    if criterion.at_least and value < threshold:
        return False, f"{criterion.label} {shown} is below the gate's {limit}"
    if not criterion.at_least and value > threshold:
        return False, f"{criterion.label} {shown} is above the gate's {limit}"
    return True, ""


def _format_pair(value: float, threshold: float) -> tuple[str, str]:
    """Two decimals, or as many more as it takes for a failing value not to print as its threshold."""
    for digits in range(2, 7):
        shown, limit = f"{value:.{digits}f}", f"{threshold:.{digits}f}"
        if shown != limit:
            break
    return shown, limit


def _with_derived_metrics(report: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The report's metrics and notes, plus the false-positive rate derived from its confusion matrix."""
    values = dict(report)
    notes = [str(note) for note in report.get("notes", [])]
    matrix = report.get("confusion_matrix")
    if "false_positive_rate" not in values and matrix is not None:
        (tn, fp), _ = matrix
        values["false_positive_rate"] = fp / (tn + fp) if tn + fp else None
        if not tn + fp:
            notes.append("false_positive_rate is undefined: the test set has no normal image")
    return values, notes
