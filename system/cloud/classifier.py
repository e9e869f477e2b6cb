"""The defect classifier: a small CNN trained from scratch (no pretrained weights can be fetched).

The seed used SageMaker's built-in MXNet ResNet-18 with ImageNet weights; edgesim trains a
compact Keras CNN on CPU instead. Output index 0 is `normal`, 1 is `anomalous` (the seed's order).
The pipelines issue adds the full pipeline (augmentation, gate, registry); this module holds the
model, its training loop and its metrics.
"""

from __future__ import annotations

from collections.abc import Callable
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


EpochProgress = Callable[[int, int, dict[str, float]], None]


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 20,
    batch_size: int = 16,
    seed: int = 0,
    verbose: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    patience: int | None = 5,
    progress: EpochProgress | None = None,
) -> Any:
    """Train on images `x` (N,H,W,C float32) and labels `y` (N,) with class weights for imbalance.

    With `x_val`/`y_val`, training stops once the validation loss has not improved for `patience`
    epochs and the weights of the best epoch are restored (`patience=None` only monitors). The
    validation loss is weighted like the training loss: unweighted, with ~11 % defects, it would
    reward the model that calls everything normal. Without validation data every epoch runs, as
    before. `progress(epoch, epochs, logs)` is called after each epoch, `epoch` counting from 1.
    """
    import keras

    height, width, channels = x.shape[1:]
    model = build_classifier(height, width, channels, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    weights = class_weights(y)
    validation = None
    if x_val is not None and y_val is not None:
        validation = (x_val, y_val, np.array([weights[int(label)] for label in y_val], dtype=np.float32))
    elif x_val is not None or y_val is not None:
        raise ValueError("give both x_val and y_val, or neither")
    callbacks = fit_callbacks(epochs, validation is not None, patience, progress)
    model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        class_weight=weights,
        shuffle=True,
        verbose=verbose,
        validation_data=validation,
        callbacks=callbacks,
    )
    return model


def class_weights(y: np.ndarray) -> dict[int, float]:
    """Weights that make both classes count as much in the loss: normal 1, anomalous normal/anomalous."""
    positives = max(int(np.sum(y)), 1)
    return {0: 1.0, 1: (len(y) - positives) / positives}


def fit_callbacks(epochs: int, validating: bool, patience: int | None, progress: EpochProgress | None) -> list[Any]:
    """Keras callbacks shared by the classifier and the UNet: early stopping on val_loss, progress."""
    import keras

    callbacks: list[Any] = []
    if validating and patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping("val_loss", patience=patience, restore_best_weights=True))
    if progress is not None:
        report = progress

        def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
            report(epoch + 1, epochs, {key: float(value) for key, value in (logs or {}).items()})

        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end))
    return callbacks


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
    """Counts on hard predictions, for the demo; `system.cloud.evaluation.classification_report` adds
    ROC-AUC and the always-normal baseline, and is what the gate reads."""
    tp = int(((y_true == 1) & (y_pred == 1)).sum())
    fp = int(((y_true == 0) & (y_pred == 1)).sum())
    fn = int(((y_true == 1) & (y_pred == 0)).sum())
    tn = int(((y_true == 0) & (y_pred == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ClassifierMetrics((tp + tn) / max(len(y_true), 1), precision, recall, f1, ((tn, fp), (fn, tp)))
