"""Held-out metrics against hand-computed cases, and plots that are real PNG files."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from system.cloud.evaluation import (
    classification_report,
    plot_confusion_matrix,
    plot_mask_overlays,
    plot_roc_curve,
    roc_auc,
    roc_curve,
    segmentation_report,
)


def pairwise_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """The definition: over all (anomalous, normal) pairs, 1 if the anomalous scores higher, 1/2 on a tie."""
    positives, negatives = scores[y == 1], scores[y == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)]
    return float(np.mean(wins))


# --- classification --------------------------------------------------------------------------


def test_perfect_classifier_scores_one_everywhere() -> None:
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))

    assert report["accuracy"] == report["precision"] == report["recall"] == report["f1"] == 1.0
    assert report["roc_auc"] == 1.0
    assert report["confusion_matrix"] == [[2, 0], [0, 2]]
    assert report["support"] == {"normal": 2, "anomalous": 2}
    assert report["notes"] == []


def test_all_wrong_classifier_scores_zero() -> None:
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1]))

    assert report["accuracy"] == report["precision"] == report["recall"] == report["f1"] == 0.0
    assert report["roc_auc"] == 0.0
    assert report["confusion_matrix"] == [[0, 2], [2, 0]]


def test_hand_computed_mixed_case() -> None:
    # truth 1 1 1 0 0 0 0 0 0 0; predicted (>= 0.5) 1 1 0 1 0 0 0 0 0 0: tp 2, fn 1, fp 1, tn 6
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.6, 0.4, 0.7, 0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    report = classification_report(y, p)

    assert report["confusion_matrix"] == [[6, 1], [1, 2]]
    assert report["accuracy"] == pytest.approx(0.8)
    assert report["precision"] == pytest.approx(2 / 3)
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(2 / 3)
    assert report["roc_auc"] == pytest.approx(pairwise_auc(y, p))
    assert report["baseline"] == {"always_normal_accuracy": pytest.approx(0.7), "always_normal_f1": 0.0}


def test_always_normal_model_has_high_accuracy_and_zero_f1() -> None:
    y = np.array([0] * 89 + [1] * 11)
    report = classification_report(y, np.zeros(100))

    assert report["accuracy"] == pytest.approx(0.89)
    assert report["precision"] == report["recall"] == report["f1"] == 0.0
    assert report["roc_auc"] == 0.5  # one big tie


def test_threshold_moves_the_decision_and_is_reported() -> None:
    y, p = np.array([0, 1]), np.array([0.3, 0.4])

    assert classification_report(y, p)["recall"] == 0.0
    report = classification_report(y, p, threshold=0.35)
    assert report["recall"] == 1.0 and report["threshold"] == 0.35


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_absent_gives_no_roc_auc_and_says_why(label: int) -> None:
    report = classification_report(np.full(4, label), np.array([0.1, 0.6, 0.7, 0.2]))

    assert report["roc_auc"] is None
    assert len(report["notes"]) == 1 and report["notes"][0].startswith("roc_auc is undefined")
    assert ("normal" if label == 0 else "anomalous") in report["notes"][0]
    assert report["support"] == ({"normal": 4, "anomalous": 0} if label == 0 else {"normal": 0, "anomalous": 4})


def test_no_anomalous_image_and_none_predicted_scores_zero_f1_not_nan() -> None:
    report = classification_report(np.zeros(3, dtype=int), np.zeros(3))

    assert report["precision"] == report["recall"] == report["f1"] == 0.0
    assert report["accuracy"] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_with_ties_matches_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    scores = rng.integers(0, 5, 40) / 4  # five distinct values: many ties, across classes too

    assert roc_auc(y, scores) == pytest.approx(pairwise_auc(y, scores))


def test_roc_curve_is_monotone_from_origin_to_corner_with_ties_as_one_step() -> None:
    y = np.array([0, 1, 0, 1, 1])
    scores = np.array([0.2, 0.5, 0.5, 0.9, 0.1])
    fpr, tpr, thresholds = roc_curve(y, scores)

    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert len(thresholds) == 1 + len(np.unique(scores))
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: a tie's diagonal counts 1/2
    assert area == pytest.approx(pairwise_auc(y, scores))


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        (np.array([0, 2]), np.array([0.1, 0.2]), "labels"),
        (np.array([0, 1]), np.array([0.1]), "scores for"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "NaN"),
    ],
)
def test_bad_inputs_are_refused(y: np.ndarray, p: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(y, p)


# --- segmentation ----------------------------------------------------------------------------


def masks(*rows: list[list[int]]) -> np.ndarray:
    """Images given as nested lists of 0/1 -> (N, H, W, 1) float32."""
    return np.array(rows, dtype=np.float32)[..., None]


def test_perfect_masks_score_one() -> None:
    truth = masks([[1, 0], [0, 0]], [[0, 0], [0, 0]])
    report = segmentation_report(truth, truth.copy())

    assert report["dice"] == report["iou"] == report["pixel_accuracy"] == 1.0
    assert report["mean_image_dice"] == report["mean_image_iou"] == 1.0


def test_hand_computed_overlap() -> None:
    # image 1: truth 2 px, prediction 2 px, overlap 1 -> dice 0.5, iou 1/3
    # image 2: truth empty, prediction empty -> 1.0 each
    truth = masks([[1, 1], [0, 0]], [[0, 0], [0, 0]])
    probs = masks([[1, 0], [1, 0]], [[0, 0], [0, 0]]) * 0.9
    report = segmentation_report(truth, probs)

    assert report["dice"] == pytest.approx(0.5)
    assert report["iou"] == pytest.approx(1 / 3)
    assert report["mean_image_dice"] == pytest.approx((0.5 + 1.0) / 2)
    assert report["mean_image_iou"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert report["pixel_accuracy"] == pytest.approx(6 / 8)
    assert report["defect_pixel_fraction"] == pytest.approx(2 / 8)
    assert report["baseline"] == {"empty_mask_dice": 0.0, "empty_mask_pixel_accuracy": pytest.approx(6 / 8)}


def test_false_alarm_on_a_clean_image_scores_zero_for_that_image() -> None:
    truth = masks([[0, 0], [0, 0]])
    report = segmentation_report(truth, masks([[1, 0], [0, 0]]))

    assert report["dice"] == report["iou"] == report["mean_image_dice"] == 0.0


def test_all_empty_truth_and_prediction_count_as_perfect() -> None:
    truth = masks([[0, 0], [0, 0]], [[0, 0], [0, 0]])
    report = segmentation_report(truth, np.zeros_like(truth))

    assert report["dice"] == report["iou"] == report["mean_image_dice"] == 1.0
    assert report["baseline"]["empty_mask_dice"] == 1.0


def test_empty_prediction_scores_the_empty_mask_baseline() -> None:
    truth = masks([[1, 0], [0, 0]], [[0, 0], [0, 0]])
    report = segmentation_report(truth, np.zeros_like(truth))

    assert report["dice"] == report["baseline"]["empty_mask_dice"] == 0.0
    assert report["mean_image_dice"] == 0.5  # the clean image is right


def test_segmentation_threshold_applies_to_probabilities() -> None:
    truth = masks([[1, 0]])
    probs = masks([[1, 0]]) * 0.4

    assert segmentation_report(truth, probs)["dice"] == 0.0
    assert segmentation_report(truth, probs, threshold=0.3)["dice"] == 1.0


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        segmentation_report(masks([[1, 0]]), masks([[1, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"\(N, H, W, 1\)"):
        segmentation_report(np.zeros((2, 2)), np.zeros((2, 2)))


# --- plots -----------------------------------------------------------------------------------


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 50 and image.height > 50
        image.verify()


def test_confusion_matrix_plot_is_a_png(tmp_path: Path) -> None:
    report = classification_report(np.array([0, 0, 1, 1]), np.array([0.1, 0.7, 0.8, 0.3]))
    path = plot_confusion_matrix(report, tmp_path / "plots" / "confusion.png")

    assert path == tmp_path / "plots" / "confusion.png"
    assert_png(path)


@pytest.mark.parametrize("y", [np.array([0, 1, 0, 1]), np.array([0, 0, 0, 0])])
def test_roc_plot_is_a_png_even_with_one_class(tmp_path: Path, y: np.ndarray) -> None:
    assert_png(plot_roc_curve(y, np.array([0.2, 0.9, 0.4, 0.4]), tmp_path / "roc.png"))


def test_mask_overlay_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, 16, 16, 3)).astype(np.float32)
    truth = np.zeros((8, 16, 16, 1), dtype=np.float32)
    truth[2, 4:8, 4:8] = 1.0
    probs = np.clip(truth + rng.uniform(0, 0.3, truth.shape), 0, 1)

    assert_png(plot_mask_overlays(images, truth, probs, tmp_path / "overlays.png", n=4))
