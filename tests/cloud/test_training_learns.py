"""Training learns the defects, and the gate tells a detector from a model that learned nothing.

The seed's gate (accuracy >= 0.8) passes a model that always answers "normal"; its UNet had no
gate. These tests train both models from scratch on tiny synthetic KolektorSDD2-like data and
check them against what a trivial model scores (`baseline` in each report) and against the
default `GateConfig`; a classifier trained on shuffled labels must fail that same gate.

Data: 200 training images (160 to fit, 40 to stop early on) and 80 held-out ones, a quarter of
them defective (KSDD2 has ~11 %; more positives make the held-out metrics less noisy). At that
rate a model that flags every image scores F1 2p/(1+p) = 0.40, safely below the default 0.5.
The images are 64 x 160 (KSDD2's aspect ratio), padded and resized to 64 x 64 as the edge does.

Measured on 2 CPU cores over data seeds 0-2 x model seeds 0-2 (this file uses 0 and 0): classifier
F1 0.67-1.00 (ROC-AUC 0.90-1.00); on shuffled labels F1 0.00-0.40; UNet (60 images, <= 30 epochs)
Dice 0.66-0.84 against the empty mask's 0. The asserted floors sit well below the worst of these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulators.surfaces import write_dataset
from system.agent.package import Preprocessing
from system.cloud.classifier import EpochProgress
from system.cloud.evaluation import classification_report, segmentation_report
from system.cloud.gate import GateConfig, evaluate_gate
from system.preprocessing import load_image, preprocess

pytestmark = pytest.mark.slow

PRE = Preprocessing(height=64, width=64)
N_FIT, N_VAL, N_TEST = 160, 40, 80


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # (N, 64, 64, 3) float32, through `preprocess`
    masks: np.ndarray  # (N, 64, 64, 1) float32 of 0/1, same geometry as x
    labels: np.ndarray  # (N,) int64: 1 when the full-size mask has any defect pixel (the seed's rule)


@dataclass(frozen=True)
class Surfaces:
    fit: Split
    val: Split
    test: Split


def _load(folder: Path) -> Split:
    images, masks, labels = [], [], []
    for path in sorted(p for p in folder.glob("*.png") if not p.stem.endswith("_GT")):
        images.append(preprocess(load_image(path), PRE)[0])
        mask = np.asarray(load_image(path.with_name(f"{path.stem}_GT.png")).convert("L"))
        masks.append((preprocess(mask, PRE)[0, :, :, :1] >= 0.5).astype(np.float32))
        labels.append(int(mask.any()))
    return Split(np.stack(images), np.stack(masks), np.array(labels, dtype=np.int64))


def _subset(split: Split, part: slice) -> Split:
    return Split(split.x[part], split.masks[part], split.labels[part])


@pytest.fixture(scope="module")
def surfaces(tmp_path_factory: pytest.TempPathFactory) -> Surfaces:
    root = tmp_path_factory.mktemp("surfaces")
    write_dataset(root, n_train=N_FIT + N_VAL, n_test=N_TEST, defect_rate=0.25, seed=0, size=(64, 160))
    train = _load(root / "train")
    return Surfaces(_subset(train, slice(0, N_FIT)), _subset(train, slice(N_FIT, None)), _load(root / "test"))


def _classify(
    data: Surfaces, labels: np.ndarray, seed: int = 0, progress: EpochProgress | None = None
) -> dict[str, Any]:
    from system.cloud.classifier import train_classifier

    model = train_classifier(
        data.fit.x,
        labels,
        epochs=60,
        seed=seed,
        x_val=data.val.x,
        y_val=data.val.labels,
        patience=8,
        progress=progress,
    )
    return classification_report(data.test.labels, model.predict_on_batch(data.test.x)[:, 1])


def test_classifier_beats_always_normal_and_passes_the_default_gate(surfaces: Surfaces) -> None:
    calls: list[tuple[int, int, dict[str, float]]] = []
    report = _classify(surfaces, surfaces.fit.labels, progress=lambda *call: calls.append(call))

    assert [call[:2] for call in calls] == [(epoch, 60) for epoch in range(1, len(calls) + 1)]
    assert {"loss", "val_loss", "accuracy"} <= set(calls[-1][2])
    assert report["baseline"] == {"always_normal_accuracy": 0.75, "always_normal_f1": 0.0}
    assert report["f1"] >= 0.6, report  # the always-normal baseline scores 0.0
    assert report["roc_auc"] >= 0.8, report
    result = evaluate_gate("classification", report, GateConfig())
    assert result.passed, result.reasons


def test_classifier_trained_on_shuffled_labels_fails_the_default_gate(surfaces: Surfaces) -> None:
    shuffled = np.random.default_rng(0).permutation(surfaces.fit.labels)
    report = _classify(surfaces, shuffled)

    result = evaluate_gate("classification", report, GateConfig())
    assert not result.passed
    assert any(reason.startswith("anomalous F1") for reason in result.reasons), result.reasons
    # ... while the seed's gate would have let it through whenever it says "normal" to everything
    assert report["baseline"]["always_normal_accuracy"] >= 0.75


def test_unet_dice_beats_the_empty_mask_and_passes_the_default_gate(surfaces: Surfaces) -> None:
    from system.cloud.unet import train_unet

    fit, val = _subset(surfaces.fit, slice(0, 60)), _subset(surfaces.val, slice(0, 20))
    epochs: list[int] = []
    model = train_unet(
        fit.x, fit.masks, x_val=val.x, y_val=val.masks, epochs=30, seed=0, progress=lambda e, n, logs: epochs.append(e)
    )
    report = segmentation_report(surfaces.test.masks, model.predict_on_batch(surfaces.test.x))

    assert epochs[0] == 1 and len(epochs) <= 30
    assert model.get_layer("mask").output.shape[1:] == (64, 64, 1)
    assert report["baseline"]["empty_mask_dice"] == 0.0
    assert report["dice"] >= 0.5, report
    assert report["mean_image_dice"] > report["baseline"]["empty_mask_dice"]
    result = evaluate_gate("segmentation", report, GateConfig())
    assert result.passed, result.reasons
