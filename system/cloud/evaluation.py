"""Held-out evaluation of the two models, in plain numpy, and the pictures that go with it.

The seed judged its classifier by accuracy alone and its UNet by nothing. On KolektorSDD2 about
89 % of the images are defect-free, so a model that always answers "normal" scores ~0.89 accuracy
and passes the seed's 0.8 gate while finding no defect at all. These reports therefore lead with
what a defect detector is for: precision, recall and F1 of the *anomalous* class, ROC-AUC (which
does not depend on a threshold), and Dice/IoU for masks; and each carries the score of the trivial
baseline (always normal, empty mask) so a reader can see how far above it a model is.

Conventions (the same as scikit-learn's with `zero_division=0`, so numbers can be compared):
- precision, recall and F1 are 0.0 when their denominator is 0 (no predicted or no true defects);
- ROC-AUC is None when the test set holds only one class (it is undefined), with a note saying so;
- Dice and IoU are 1.0 when truth and prediction are both empty (nothing to find, nothing found).

The `plot_*` functions draw on a bare `matplotlib.figure.Figure` (the Agg canvas, no pyplot), so
they need no display and keep no global figure state between calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

LABELS = ("normal", "anomalous")


def classification_report(y_true: np.ndarray, p_anomalous: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of the anomalous class for labels (N,) of 0/1 and scores (N,); `p >= threshold` is anomalous."""
    truth = _labels(y_true)
    scores = _scores(p_anomalous, len(truth))
    predicted = scores >= threshold
    positive = truth == 1
    tp = int((positive & predicted).sum())
    fp = int((~positive & predicted).sum())
    fn = int((positive & ~predicted).sum())
    tn = int((~positive & ~predicted).sum())
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    n_normal, n_anomalous = tn + fp, tp + fn
    notes: list[str] = []
    auc = roc_auc(truth, scores)
    if auc is None:
        notes.append(_one_class_note(truth))
    return {
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, len(truth)),
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * precision * recall, precision + recall),
        "roc_auc": auc,
        "confusion_matrix": [[tn, fp], [fn, tp]],  # rows: true normal/anomalous; columns: predicted
        "support": {"normal": n_normal, "anomalous": n_anomalous},
        "baseline": {"always_normal_accuracy": _ratio(n_normal, len(truth)), "always_normal_f1": 0.0},
        "notes": notes,
    }


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The probability that a random anomalous image outscores a random normal one (ties count 1/2).

    Computed from average ranks (the Mann-Whitney U statistic), so tied scores get the mean of the
    ranks they span: exactly the pairwise definition, in O(N log N). None with only one class.
    """
    truth = _labels(y_true)
    values = _scores(scores, len(truth))
    n_pos = int((truth == 1).sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(values)
    u = float(ranks[truth == 1].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates, thresholds), one point per distinct score, from (0, 0).

    Tied scores give one point (a diagonal step), matching the tie handling of `roc_auc`.
    ValueError with only one class, where one of the two rates is undefined.
    """
    truth = _labels(y_true)
    values = _scores(scores, len(truth))
    n_pos = int((truth == 1).sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("an ROC curve needs both normal and anomalous images")
    order = np.argsort(-values, kind="mergesort")
    sorted_scores, sorted_truth = values[order], truth[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_truth == 1)[last_of_run]
    fps = (last_of_run + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, sorted_scores[last_of_run]]
    return fpr, tpr, thresholds


def segmentation_report(masks_true: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Dice, IoU and pixel accuracy of masks (N,H,W,1) of 0/1 against probabilities; `p >= threshold` is defect.

    `dice`/`iou` pool every pixel of the set (large defects weigh more); `mean_image_dice`/
    `mean_image_iou` average per image, an image with empty truth and empty prediction counting
    1.0, so false alarms on clean images are penalised too.
    """
    truth = np.asarray(masks_true) > 0.5
    if truth.ndim != 4 or truth.shape[-1] != 1:
        raise ValueError(f"masks must be (N, H, W, 1), not {truth.shape}")
    scores = np.asarray(probs, dtype=np.float64)
    if scores.shape != truth.shape:
        raise ValueError(f"probabilities {scores.shape} and masks {truth.shape} differ in shape")
    predicted = scores >= threshold
    per_image = truth.reshape(len(truth), -1), predicted.reshape(len(predicted), -1)
    inter = (per_image[0] & per_image[1]).sum(axis=1)
    sizes = per_image[0].sum(axis=1), per_image[1].sum(axis=1)
    union = sizes[0] + sizes[1] - inter
    image_dice = [_overlap(2 * int(i), int(a + b)) for i, a, b in zip(inter, *sizes, strict=True)]
    image_iou = [_overlap(int(i), int(u)) for i, u in zip(inter, union, strict=True)]
    total_inter, total_true, total_pred = int(inter.sum()), int(sizes[0].sum()), int(sizes[1].sum())
    return {
        "threshold": float(threshold),
        "images": len(truth),
        "dice": _overlap(2 * total_inter, total_true + total_pred),
        "iou": _overlap(total_inter, total_true + total_pred - total_inter),
        "mean_image_dice": float(np.mean(image_dice)) if image_dice else None,
        "mean_image_iou": float(np.mean(image_iou)) if image_iou else None,
        "pixel_accuracy": _ratio(int((truth == predicted).sum()), truth.size),
        "defect_pixel_fraction": _ratio(total_true, truth.size),
        "baseline": {
            "empty_mask_dice": 1.0 if total_true == 0 else 0.0,
            "empty_mask_pixel_accuracy": _ratio(truth.size - total_true, truth.size),
        },
    }


def plot_confusion_matrix(report: dict[str, Any], path: str | Path) -> Path:
    """Draw the report's 2x2 confusion matrix with counts in the cells; write a PNG at `path`."""
    matrix = np.asarray(report["confusion_matrix"], dtype=np.int64)
    figure = _figure(4.2, 3.8)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set(xticks=[0, 1], yticks=[0, 1], xticklabels=LABELS, yticklabels=LABELS)
    axes.set(xlabel="predicted", ylabel="true", title=f"threshold {report.get('threshold', 0.5):.2f}")
    middle = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", color="white" if count > middle else "black")
    return _save(figure, path)


def plot_roc_curve(y_true: np.ndarray, p_anomalous: np.ndarray, path: str | Path) -> Path:
    """Draw the ROC curve with its AUC against the chance diagonal; with one class, say it is undefined."""
    figure = _figure(4.2, 4.2)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance (AUC 0.50)")
    auc = roc_auc(y_true, p_anomalous)
    if auc is None:
        axes.text(0.5, 0.6, "undefined: only one class\nin the test set", ha="center")
    else:
        fpr, tpr, _ = roc_curve(y_true, p_anomalous)
        axes.plot(fpr, tpr, color="tab:red", label=f"model (AUC {auc:.3f})")
    axes.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false-positive rate", ylabel="true-positive rate (recall)")
    axes.legend(loc="lower right")
    return _save(figure, path)


def plot_mask_overlays(
    images: np.ndarray,
    masks_true: np.ndarray,
    probs: np.ndarray,
    path: str | Path,
    n: int = 6,
    threshold: float = 0.5,
) -> Path:
    """A column per image: the image, the true mask over it (green), the predicted mask over it (red).

    Shows up to `n` images, those with a true or predicted defect first (in their order), since a
    grid of clean surfaces says nothing; the per-image Dice is in the title of the prediction.
    """
    chosen = _pick_examples(masks_true, probs, n, threshold)
    figure = _figure(2.0 * max(len(chosen), 1), 6.2)
    for column, index in enumerate(chosen):
        picture = _displayable(images[index])
        truth = np.asarray(masks_true[index])[..., 0] > 0.5
        predicted = np.asarray(probs[index])[..., 0] >= threshold
        dice = _overlap(2 * int((truth & predicted).sum()), int(truth.sum() + predicted.sum()))
        panels = (
            ("image", picture),
            ("truth", _overlay(picture, truth, (0.0, 1.0, 0.0))),
            (f"predicted, dice {dice:.2f}", _overlay(picture, predicted, (1.0, 0.0, 0.0))),
        )
        for row, (title, shown) in enumerate(panels):
            axes = figure.add_subplot(3, len(chosen), row * len(chosen) + column + 1)
            axes.imshow(shown)
            axes.set_title(title, fontsize=7)
            axes.axis("off")
    return _save(figure, path)


# --- helpers -----------------------------------------------------------------------------------


def _labels(y_true: np.ndarray) -> np.ndarray:
    truth = np.asarray(y_true).reshape(-1)
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return truth.astype(np.int64)


def _scores(scores: np.ndarray, n: int) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(values) != n:
        raise ValueError(f"{len(values)} scores for {n} labels")
    if np.isnan(values).any():
        raise ValueError("scores contain NaN")
    return values


def _one_class_note(truth: np.ndarray) -> str:
    if len(truth) == 0:
        return "roc_auc is undefined: the test set is empty"
    return f"roc_auc is undefined: every test image is {LABELS[int(truth[0])]}, and ROC-AUC needs both classes"


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _overlap(numerator: int, denominator: int) -> float:
    """Dice or IoU from counts; 1.0 when there is nothing in either mask."""
    return float(numerator / denominator) if denominator else 1.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    mean_rank = (starts + ends + 1) / 2  # mean of start+1 .. end
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _pick_examples(masks_true: np.ndarray, probs: np.ndarray, n: int, threshold: float) -> list[int]:
    truth = np.asarray(masks_true).reshape(len(masks_true), -1).max(axis=1) > 0.5
    predicted = np.asarray(probs).reshape(len(probs), -1).max(axis=1) >= threshold
    interesting = truth | predicted
    order = [*np.flatnonzero(interesting).tolist(), *np.flatnonzero(~interesting).tolist()]
    return [int(i) for i in order[: max(n, 0)]]


def _displayable(image: np.ndarray) -> np.ndarray:
    """HxWx3 in [0, 1] from any float image (normalised or not): stretched to its own min..max."""
    picture = np.asarray(image, dtype=np.float64)
    picture = np.repeat(picture, 3, axis=-1) if picture.shape[-1] == 1 else picture[..., :3]
    low, high = float(picture.min()), float(picture.max())
    return (picture - low) / (high - low) if high > low else np.zeros_like(picture)


def _overlay(picture: np.ndarray, mask: np.ndarray, colour: tuple[float, float, float]) -> np.ndarray:
    blended = picture.copy()
    blended[mask] = 0.45 * blended[mask] + 0.55 * np.asarray(colour)
    return blended


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(figure: Any, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, format="png", dpi=100)
    return target
