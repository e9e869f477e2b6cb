"""Tiny real model packages and image folders for scenarios and tests.

The models are untrained but deterministic (fixed seed or fixed weights) and small, so building and
exporting one takes about a second; they exercise the plumbing (OTA, the agent, inference), not
accuracy. `export_broken_package` loads fine but outputs NaN: a model that must fail its health check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from simulators.surfaces import generate_surface
from system.agent.package import Preprocessing
from system.cloud.packaging import export_package

CLASSIFIER_NAME = "img-classification"
SEGMENTER_NAME = "unet"
LABELS = ["normal", "anomalous"]


def _classifier(size: int, seed: int) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="input_image")
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def export_classifier_package(
    folder: Path, version: str, *, size: int = 32, seed: int = 7, name: str = CLASSIFIER_NAME
) -> Path:
    """A small CNN with a 2-way softmax (labels normal, anomalous) as a TensorFlow package in `folder`."""
    export_package(
        _classifier(size, seed),
        folder,
        name=name,
        version=version,
        preprocessing=Preprocessing(height=size, width=size),
        labels=LABELS,
    )
    return folder


def _segmenter(size: int, threshold: float) -> Any:
    """A fixed-weight local-contrast detector: sigmoid(k * (|pixel - 5x5 mean| - threshold)).

    Defects in the synthetic surfaces shift 55-95 grey levels from their surroundings, so their
    edges pass 0.5 while the plain surface mostly does not (the zero-padded border does too).
    """
    import keras

    inputs = keras.Input((size, size, 3), name="input_image")
    contrast = keras.layers.Conv2D(2, 5, padding="same", use_bias=False, activation="relu", name="contrast")
    score = keras.layers.Conv2D(1, 1, activation="sigmoid", name="mask")
    model = keras.Model(inputs, score(contrast(inputs)))
    kernel = np.full((5, 5, 3, 1), -1.0 / 25, dtype=np.float32)
    kernel[2, 2] += 1.0
    kernel /= 3  # average over the channels
    contrast.set_weights([np.concatenate([kernel, -kernel], axis=3)])
    gain = 40.0
    score.set_weights([np.full((1, 1, 2, 1), gain, np.float32), np.array([-gain * threshold], np.float32)])
    return model


def export_segmenter_package(
    folder: Path, version: str, *, size: int = 32, threshold: float = 0.12, name: str = SEGMENTER_NAME
) -> Path:
    """A tiny conv net with a (1, size, size, 1) sigmoid output as a TensorFlow package in `folder`."""
    export_package(
        _segmenter(size, threshold),
        folder,
        name=name,
        version=version,
        preprocessing=Preprocessing(height=size, width=size),
    )
    return folder


def export_broken_package(folder: Path, version: str, *, size: int = 32, name: str = CLASSIFIER_NAME) -> Path:
    """A classifier that loads (its warm-up runs) but outputs NaN: its last layer's weights are NaN."""
    model = _classifier(size, seed=7)
    dense = model.get_layer("probabilities")
    kernel, bias = dense.get_weights()
    dense.set_weights([np.full_like(kernel, np.nan), bias])
    export_package(
        model, folder, name=name, version=version, preprocessing=Preprocessing(height=size, width=size), labels=LABELS
    )
    return folder


def write_images(folder: Path, n: int, size: tuple[int, int] = (64, 96), *, seed: int = 0) -> list[str]:
    """`n` surface PNGs spread over nested subfolders (`line-a/…`, `line-b/shift-1/…`); returns their
    names relative to `folder`, sorted. Every third image is defective."""
    subfolders = ["line-a", "line-b/shift-1", "line-b/shift-2", "."]
    names = []
    for index in range(n):
        image, _ = generate_surface(np.random.default_rng((seed, index)), size[0], size[1], defective=index % 3 == 0)
        relative = Path(subfolders[index % len(subfolders)]) / f"{index:04d}.png"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / relative)
        names.append(relative.as_posix())
    return sorted(names)
