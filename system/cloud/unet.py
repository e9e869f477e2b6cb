"""The defect segmenter: a small UNet trained from scratch, in the spirit of the seed's MobileNetV2-UNet.

The seed put a decoder of four [upsample x2, concatenate skip, (Conv3x3, BatchNorm, ReLU) x 2]
stages on an ImageNet MobileNetV2 (alpha 0.35) encoder, trained it with loss 1 - Dice and
registered it without any evaluation. Pretrained weights cannot be fetched here, so edgesim keeps
the shape and trains all of it on CPU:

- the encoder is built of depthwise-separable convolutions, MobileNet's building block, each level
  halving the resolution (a stride-2 convolution) and doubling the filters;
- the decoder mirrors the seed's stages, with a skip connection from every encoder level and from
  a full-resolution stem (the seed's skip from `input_image`);
- the head is a 1x1 convolution to one channel and a sigmoid, named `mask`: (H, W, 1) defect
  probabilities. The input is named `input_image`, as in the seed.

Every convolution is followed by batch normalisation, as in the seed; without it this small net
sits for tens of epochs on the empty-mask plateau. Its momentum is 0.9 rather than Keras's 0.99:
a short CPU run takes only a few hundred steps, and with 0.99 the moving averages used at inference
would still be far from the statistics seen in training (the reason the classifier has none).

The loss is Dice + binary cross-entropy. Defect pixels are rare (~1 % of a defective image, none
in a normal one): plain BCE is minimised by predicting an empty mask everywhere, and Dice alone
gives noisy gradients on batches with few defect pixels; their sum learns both where the defects
are and that the background is background.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from system.cloud.classifier import EpochProgress, fit_callbacks

BN_MOMENTUM = 0.9
SMOOTHING = 1.0  # keeps Dice defined (and = 1) on a batch whose masks and predictions are all empty


def build_unet(
    height: int, width: int, channels: int = 3, *, base_filters: int = 8, depth: int = 3, seed: int = 0
) -> Any:
    """An untrained UNet: input `input_image` (H, W, C), output `mask` (H, W, 1) in 0..1.

    `depth` encoder levels each halve the resolution, so `height` and `width` must be multiples of
    2**depth; level k has `base_filters * 2**k` filters.
    """
    import keras

    if depth < 1 or base_filters < 1:
        raise ValueError("depth and base_filters must be at least 1")
    step = 2**depth
    if height % step or width % step:
        raise ValueError(f"height and width must be multiples of 2**depth = {step}, not {height} x {width}")
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input((height, width, channels), name="input_image")
    x = _conv(layers.Conv2D(base_filters, 3, padding="same", use_bias=False, name="stem"), inputs)
    skips = [x]
    for level in range(1, depth + 1):
        filters = base_filters * 2**level
        for stride, part in ((2, "down"), (1, "conv")):
            separable = layers.SeparableConv2D(
                filters, 3, strides=stride, padding="same", use_bias=False, name=f"encoder_{level}_{part}"
            )
            x = _conv(separable, x)
        skips.append(x)
    skips.pop()  # the deepest level is the bottleneck, not a skip
    for level in range(depth - 1, -1, -1):
        filters = base_filters * 2**level
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder_{level}_up")(x)
        x = layers.Concatenate(name=f"decoder_{level}_concat")([x, skips[level]])
        for k in (1, 2):
            x = _conv(layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"decoder_{level}_conv{k}"), x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="mask")(x)
    return keras.Model(inputs, outputs, name="defect_unet")


def _conv(convolution: Any, x: Any) -> Any:
    """convolution -> BatchNorm -> ReLU, the seed's decoder unit (the norm makes a bias redundant)."""
    import keras

    name = convolution.name
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(convolution(x))
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def dice_bce_loss(y_true: Any, y_pred: Any) -> Any:
    """Mean binary cross-entropy plus (1 - soft Dice), Dice pooled over the whole batch.

    Pooling over the batch rather than averaging per image keeps the Dice term stable when most
    images of a batch are defect-free.
    """
    import keras

    ops = keras.ops
    y_true = ops.cast(y_true, y_pred.dtype)
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
    return bce + 1.0 - soft_dice(y_true, y_pred)


def soft_dice(y_true: Any, y_pred: Any) -> Any:
    """Dice on probabilities (no threshold), pooled over the batch; a training-time metric."""
    import keras

    ops = keras.ops
    y_true = ops.cast(y_true, y_pred.dtype)
    intersection = ops.sum(y_true * y_pred)
    return (2.0 * intersection + SMOOTHING) / (ops.sum(y_true) + ops.sum(y_pred) + SMOOTHING)


def train_unet(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    epochs: int = 30,
    batch_size: int = 8,
    seed: int = 0,
    progress: EpochProgress | None = None,
    patience: int | None = 5,
    base_filters: int = 8,
    depth: int = 3,
    learning_rate: float = 3e-3,
) -> Any:
    """Train a fresh UNet on images `x` (N,H,W,C float32) and 0/1 masks `y` (N,H,W,1).

    With `x_val`/`y_val`, training stops once the validation loss has not improved for `patience`
    epochs and the best epoch's weights are restored (`patience=None` only monitors).
    `progress(epoch, epochs, logs)` is called after each epoch, `epoch` counting from 1. The seed
    had neither: it ran a fixed number of epochs and registered whatever came out.
    """
    import keras

    if x.ndim != 4 or y.shape != (*x.shape[:3], 1):
        raise ValueError(f"images must be (N, H, W, C) and masks (N, H, W, 1); got {x.shape} and {y.shape}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    height, width, channels = x.shape[1:]
    model = build_unet(height, width, channels, base_filters=base_filters, depth=depth, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=dice_bce_loss, metrics=[soft_dice])
    validation = None if x_val is None else (x_val, y_val)
    model.fit(
        x,
        y.astype(np.float32),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        validation_data=validation,
        callbacks=fit_callbacks(epochs, validation is not None, patience, progress),
    )
    return model
