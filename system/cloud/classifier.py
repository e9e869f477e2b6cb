"""The defect classifier: a small CNN trained from scratch (no pretrained weights can be fetched).

The seed used SageMaker's built-in MXNet ResNet-18 with ImageNet weights; edgesim trains a
compact Keras CNN on CPU instead. Output index 0 is `normal`, 1 is `anomalous` (the seed's order).
The pipelines issue adds the full pipeline (augmentation, gate, registry); this module holds the
model, its training loop and its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

LABELS = ["normal", "anomalous"]


def build_classifier(height: int = 224, width: int = 224, channels: int = 3, seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((height, width, channels), name="input_image")
    x = inputs
    # No batch normalisation: with the few hundred steps of a brief CPU run its moving averages
    # do not settle, and the model collapses to one class at inference time.
    for filters in (16, 32, 48, 64):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalMaxPooling2D()(x)  # a defect is local: the strongest response decides
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="defect_classifier")


def train_classifier(
    x: np.ndarray, y: np.ndarray, *, epochs: int = 20, batch_size: int = 16, seed: int = 0, verbose: int = 0
) -> Any:
    """Train on images `x` (N,H,W,C float32) and labels `y` (N,) with class weights for imbalance."""
    import keras

    height, width, channels = x.shape[1:]
    model = build_classifier(height, width, channels, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    positives = max(int(y.sum()), 1)
    weights = {0: 1.0, 1: (len(y) - positives) / positives}
    model.fit(x, y, epochs=epochs, batch_size=batch_size, class_weight=weights, shuffle=True, verbose=verbose)
    return model


@dataclass(frozen=True)
class ClassifierMetrics:
    accuracy: float
    precision: float  # of the anomalous class
    recall: float
    f1: float
    confusion: tuple[tuple[int, int], tuple[int, int]]  # rows: true normal/anomalous; cols: predicted

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "precision_anomalous": self.precision,
            "recall_anomalous": self.recall,
            "f1_anomalous": self.f1,
            "confusion_matrix": [list(r) for r in self.confusion],
        }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> ClassifierMetrics:
    tp = int(((y_true == 1) & (y_pred == 1)).sum())
    fp = int(((y_true == 0) & (y_pred == 1)).sum())
    fn = int(((y_true == 1) & (y_pred == 0)).sum())
    tn = int(((y_true == 0) & (y_pred == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassifierMetrics((tp + tn) / max(len(y_true), 1), precision, recall, f1, ((tn, fp), (fn, tp)))
