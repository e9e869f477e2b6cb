"""The quality gate: what passes, what fails and why, and which settings it accepts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from system.cloud.evaluation import classification_report, segmentation_report
from system.cloud.gate import GateConfig, GateResult, evaluate_gate
from system.errors import ConfigError, EdgesimError


def report(**metrics: Any) -> dict[str, Any]:
    """A classification report with the given metrics (the rest of a model that finds half the defects)."""
    base: dict[str, Any] = {
        "accuracy": 0.9,
        "precision": 0.8,
        "recall": 0.5,
        "f1": 0.62,
        "roc_auc": 0.9,
        "confusion_matrix": [[85, 2], [8, 5]],
        "notes": [],
    }
    return base | metrics


def test_default_gate_passes_a_model_that_finds_defects() -> None:
    result = evaluate_gate("classification", report(), GateConfig())

    assert result == GateResult(
        passed=True, checks=[{"metric": "f1", "value": 0.62, "threshold": 0.5, "passed": True}], reasons=[]
    )


def test_default_gate_refuses_the_always_normal_model_the_seeds_gate_accepted() -> None:
    y = np.array([0] * 89 + [1] * 11)
    always_normal = classification_report(y, np.zeros(100))

    assert always_normal["accuracy"] >= 0.8  # the seed's gate: accuracy >= 0.8 -> registered
    result = evaluate_gate("classification", always_normal, GateConfig())
    assert not result.passed
    assert result.reasons == ["anomalous F1 0.00 is below the gate's 0.50"]


def test_reason_names_metric_value_and_threshold() -> None:
    result = evaluate_gate("classification", report(f1=0.123), GateConfig())

    assert result.reasons == ["anomalous F1 0.12 is below the gate's 0.50"]
    assert result.checks == [{"metric": "f1", "value": 0.123, "threshold": 0.5, "passed": False}]


def test_a_value_just_below_the_threshold_is_not_printed_as_equal_to_it() -> None:
    result = evaluate_gate("classification", report(f1=0.4999), GateConfig())

    assert result.reasons == ["anomalous F1 0.4999 is below the gate's 0.5000"]


def test_every_failing_criterion_gives_a_reason() -> None:
    config = GateConfig(min_anomalous_f1=0.7, min_roc_auc=0.95, min_accuracy=0.8, max_false_positive_rate=0.01)
    result = evaluate_gate("classification", report(), config)

    assert not result.passed
    assert [c["metric"] for c in result.checks] == ["f1", "roc_auc", "accuracy", "false_positive_rate"]
    assert [c["passed"] for c in result.checks] == [False, False, True, False]
    assert result.reasons == [
        "anomalous F1 0.62 is below the gate's 0.70",
        "ROC-AUC 0.90 is below the gate's 0.95",
        "false-positive rate 0.02 is above the gate's 0.01",
    ]


def test_a_metric_that_is_none_fails_its_check_and_says_why() -> None:
    one_class = classification_report(np.zeros(5, dtype=int), np.linspace(0, 0.4, 5))
    result = evaluate_gate("classification", one_class, GateConfig(min_anomalous_f1=None, min_roc_auc=0.8))

    assert not result.passed
    assert result.checks == [{"metric": "roc_auc", "value": None, "threshold": 0.8, "passed": False}]
    assert len(result.reasons) == 1
    assert result.reasons[0].startswith("ROC-AUC is not available (roc_auc is undefined: every test image is normal")
    assert result.reasons[0].endswith("the gate requires at least 0.80")


def test_a_metric_missing_from_the_report_fails_its_check() -> None:
    result = evaluate_gate("classification", {"accuracy": 1.0}, GateConfig())

    assert not result.passed
    assert result.reasons == [
        "anomalous F1 is not available (the report has no value for 'f1'); the gate requires at least 0.50"
    ]


def test_segmentation_gate_checks_dice_and_only_segmentation_criteria() -> None:
    truth = np.zeros((2, 4, 4, 1), dtype=np.float32)
    truth[0, :2, :2] = 1.0
    empty = segmentation_report(truth, np.zeros_like(truth))
    good = segmentation_report(truth, truth * 0.9)

    failed = evaluate_gate("segmentation", empty, GateConfig(min_iou=0.2))
    assert failed.reasons == ["Dice 0.00 is below the gate's 0.30", "IoU 0.00 is below the gate's 0.20"]
    assert evaluate_gate("segmentation", good, GateConfig(min_iou=0.2)).passed


def test_a_gate_with_no_criterion_for_the_task_fails() -> None:
    result = evaluate_gate("segmentation", {"dice": 0.9}, GateConfig(min_dice=None))

    assert not result.passed and result.checks == []
    assert "checks nothing" in result.reasons[0]


def test_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="task must be one of"):
        evaluate_gate("detection", report(), GateConfig())


def test_config_from_dict_overrides_defaults_and_round_trips() -> None:
    config = GateConfig.from_dict({"min_anomalous_f1": 0.6, "min_roc_auc": 0.85, "min_dice": None})

    assert (config.min_anomalous_f1, config.min_roc_auc, config.min_dice) == (0.6, 0.85, None)
    assert GateConfig.from_dict(config.to_dict()) == config
    assert GateConfig.from_dict({}) == GateConfig()


def test_unknown_config_keys_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown gate settings \['min_f1', 'min_recall'\]") as caught:
        GateConfig.from_dict({"min_f1": 0.5, "min_recall": 0.5, "min_dice": 0.3})

    assert isinstance(caught.value, EdgesimError)
    assert "min_anomalous_f1" in str(caught.value)  # the message lists what is known


@pytest.mark.parametrize("value", [1.5, -0.1, "0.5", True, float("nan")])
def test_thresholds_outside_zero_to_one_are_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"min_dice must be a number in 0\.\.1"):
        GateConfig.from_dict({"min_dice": value})


def test_accuracy_is_not_a_default_criterion() -> None:
    assert GateConfig().min_accuracy is None
