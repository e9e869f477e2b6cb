"""Turning model outputs into what an operator sees: a verdict with probabilities, a mask, an overlay.

Pure functions, shared by the inference loop and the web upload. They follow the seed's edge app
(seed-behaviours section 3): classification index 0 is `normal` and 1 `anomalous`, the class is the
argmax and probabilities are rounded to 6 decimals; the segmentation mask is `y > 0.5` on the first
batch item, for both (1,1,H,W) and (1,H,W,1) outputs. Unlike the seed, a malformed or non-finite
output is a ValueError naming what is wrong, not a crash or a silent "normal".
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

DEFAULT_LABELS = ("normal", "anomalous")


def classify(output: np.ndarray, labels: Sequence[str] = ()) -> tuple[str, dict[str, float]]:
    """(label, {label: probability}) from a classifier's output.

    Two values after squeezing: the probabilities of `labels[0]` and `labels[1]` (a softmax).
    One value: a sigmoid giving p(labels[1]), so p(labels[0]) = 1 - p. `labels` are the manifest's
    when it has them, else ("normal", "anomalous") as the seed.
    """
    names = tuple(labels) or DEFAULT_LABELS
    if len(names) != 2:
        raise ValueError(f"a defect classifier has 2 labels, not {len(names)}: {list(names)}")
    values = np.asarray(output, dtype=np.float64)
    flat = values.reshape(-1)
    if flat.size == 1:
        flat = np.array([1.0 - flat[0], flat[0]])
    elif flat.size != 2 or values.squeeze().ndim != 1:
        raise ValueError(f"classifier output of shape {list(values.shape)} is not a 2-class vector")
    if not np.all(np.isfinite(flat)):
        raise ValueError(f"classifier output holds NaN or infinity: {flat.tolist()}")
    probabilities = {name: round(float(p), 6) for name, p in zip(names, flat, strict=True)}
    return names[int(np.argmax(flat))], probabilities


def segmentation_mask(output: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean HxW mask, True where the first batch item's probability is strictly above `threshold`.

    Accepts (1,H,W,1) (Keras, NHWC), (1,1,H,W) (NCHW, the seed's MXNet U-Net), (1,H,W) and (H,W).
    """
    values = np.asarray(output)
    shape = list(values.shape)
    if values.ndim == 4 and values.shape[3] == 1:
        plane = values[0, :, :, 0]
    elif values.ndim == 4 and values.shape[1] == 1:
        plane = values[0, 0]
    elif values.ndim == 3:
        plane = values[0]
    elif values.ndim == 2:
        plane = values
    else:
        raise ValueError(f"segmentation output of shape {shape} is not one probability map (H,W)")
    if plane.size == 0:
        raise ValueError(f"segmentation output of shape {shape} is empty")
    if not np.all(np.isfinite(plane)):
        raise ValueError(f"segmentation output of shape {shape} holds NaN or infinity")
    mask: np.ndarray = plane > threshold
    return mask


def crop_padding(mask: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """The part of a mask that covers the original image, when pre-processing padded it to a square.

    The model saw the image centred on a square canvas (`system.preprocessing._pad_to_square`,
    offset (side - size) // 2), so its mask covers the canvas; the bands over the padding are cut
    off so that the rest lines up with the unpadded image. `image_size` is (width, height).
    """
    width, height = image_size
    side = max(width, height)
    rows, cols = mask.shape
    left, top = (side - width) // 2, (side - height) // 2
    x0, x1 = round(left * cols / side), round((left + width) * cols / side)
    y0, y1 = round(top * rows / side), round((top + height) * rows / side)
    cropped: np.ndarray = mask[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    return cropped


def mask_png(mask: np.ndarray) -> bytes:
    """The mask as a greyscale PNG: 255 where True, 0 elsewhere (as the seed rendered it)."""
    return _png(_mask_image(mask))


def overlay_png(
    image: Image.Image, mask: np.ndarray, color: tuple[int, int, int] = (255, 0, 0), alpha: float = 0.45
) -> bytes:
    """`image` with the mask's pixels tinted by `color` at `alpha`, as a PNG.

    The mask is resized to the image (nearest neighbour), not the image to the mask: the image keeps
    its own resolution and aspect ratio, so the operator sees the surface as captured rather than as
    the model's small square, and nearest neighbour keeps the mask's edges binary. The mask must
    cover the same area as the image (see `crop_padding` for padded pre-processing).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    base = image.convert("RGB")
    where = _mask_image(mask).resize(base.size, Image.Resampling.NEAREST)
    tinted = Image.blend(base, Image.new("RGB", base.size, color), alpha)
    return _png(Image.composite(tinted, base, where))


def thumbnail(image: Image.Image, max_side: int = 320) -> Image.Image:
    """A copy of `image` (RGB or greyscale) no larger than `max_side` on either side, aspect kept."""
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    small = image.convert("L" if image.mode in ("L", "1") else "RGB")  # a new image: the caller's is kept
    small.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return small


def thumbnail_png(image: Image.Image, max_side: int = 320) -> bytes:
    """The image as the UI shows it: a PNG at most `max_side` pixels on its longer side."""
    return _png(thumbnail(image, max_side))


def _mask_image(mask: np.ndarray) -> Image.Image:
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"a mask is 2-D (H,W), not shape {list(array.shape)}")
    return Image.fromarray(np.where(array, np.uint8(255), np.uint8(0)).astype(np.uint8))  # 2-D uint8: mode L


def _png(image: Image.Image) -> bytes:
    """PNG bytes; level 1 because results are encoded on every frame and are small already."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
