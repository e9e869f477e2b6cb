"""Image pre-processing: the ONE implementation shared by training and the edge.

A model only sees what pre-processing makes of an image, so training and inference must turn an
image into a tensor in exactly the same way. The seed sample got this wrong: training padded images
to a square before resizing, while the edge app resized the raw, non-square image, so the deployed
model saw stretched pictures it had never been trained on. Here both sides call `preprocess` with the
`Preprocessing` recorded in the model package's manifest, and cannot drift apart.

Numpy input is taken to be in RGB order (as PIL and most decoders give it); an OpenCV (BGR) frame
must be reversed to RGB before it is passed in.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from system.agent.package import Preprocessing

_MODES = {"RGB": "RGB", "BGR": "RGB", "L": "L"}  # channel_order -> PIL mode to convert to


def load_image(path: str | Path) -> Image.Image:
    """Read and fully decode the image at `path`.

    Decoding happens here rather than lazily on first use, so that a corrupt or truncated file
    fails at the point where the file name is known: ValueError names it. A missing file raises
    FileNotFoundError as usual. The returned image holds no open file handle.
    """
    return decode_image(Path(path).read_bytes(), f"image '{path}'")


# A header may claim any size: a few hundred bytes can make Pillow allocate gigabytes. 50 megapixels
# is above industrial line-scan and area cameras' frames and below what a small device can hold decoded.
MAX_IMAGE_PIXELS = 50_000_000


def decode_image(data: bytes, what: str = "the image", *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Fully decode image bytes (a file's, an upload's); ValueError naming `what` for anything else.

    Pillow reports bad input through several exception types (OSError for truncated data, SyntaxError
    from some plugins, DecompressionBombError above its pixel limit...): one error type here. The size
    the header declares is checked against `max_pixels` before any pixel is decoded.
    """
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise ValueError(f"{image.width}x{image.height} pixels, more than the {max_pixels} allowed")
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot decode {what}: {exc}") from exc
    return image


def preprocess(image: Image.Image | np.ndarray, params: Preprocessing) -> np.ndarray:
    """Turn one image into the model's float32 input tensor of shape (1, ...) per `params`.

    Steps, in the order the `Preprocessing` docstring gives: channel conversion, centred padding to
    a square, bilinear resize, scaling, per-channel normalisation, batch dimension and layout.
    """
    _check_params(params)
    pil = _convert(_as_pil(image), params.channel_order)
    if params.pad_to_square:
        pil = _pad_to_square(pil, params.pad_value)
    pil = pil.resize((params.width, params.height), Image.Resampling.BILINEAR)
    x = np.asarray(pil, dtype=np.float32)
    x = x[:, :, None] if x.ndim == 2 else x
    if params.channel_order == "BGR":
        x = x[:, :, ::-1]
    x = _normalise(x * np.float32(params.scale), params)
    if params.layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None], dtype=np.float32)


def preprocess_mask(mask: Image.Image | np.ndarray, params: Preprocessing) -> np.ndarray:
    """Turn a pixel mask into the (H, W, 1) float32 0/1 target aligned with `preprocess`'s output.

    A segmentation model learns to mark each defect pixel where `preprocess` put it in the image,
    so the mask goes through the same geometry: the same centred padding (with 0, background) and
    the same output size. Resizing is nearest-neighbour so the target stays binary; the seed's
    bilinear resize blurred mask edges into grey levels. A defect thinner than the downscaling step
    can lose pixels, as it would in any resize. Any value > 0 is defect (KSDD2 masks are 0/255; a
    palette mask's value is its index); an alpha band is ignored. Channel order, scale and
    normalisation are for images and do not apply.
    """
    _check_params(params)
    pil = Image.fromarray(_defect_pixels(mask).astype(np.uint8) * np.uint8(255))  # mode L
    if params.pad_to_square:
        pil = _pad_to_square(pil, 0)
    pil = pil.resize((params.width, params.height), Image.Resampling.NEAREST)
    return np.ascontiguousarray((np.asarray(pil) > 0)[:, :, None], dtype=np.float32)


def _defect_pixels(mask: Image.Image | np.ndarray) -> np.ndarray:
    """HxW bool, True where any (non-alpha) band of the mask is > 0."""
    if isinstance(mask, Image.Image):
        array = np.asarray(mask)
        if array.ndim == 3 and mask.getbands()[-1] == "A":
            array = array[:, :, :-1]
    else:
        array = np.asarray(mask)
        if array.ndim == 3 and array.shape[2] == 4:
            array = array[:, :, :3]  # RGBA order, as for images
    if array.ndim == 2:
        return array > 0
    if array.ndim == 3 and array.shape[2] in (1, 3):
        return np.asarray((array > 0).any(axis=2))
    raise ValueError(f"mask array must be HxW, HxWx1, HxWx3 or HxWx4, not shape {array.shape}")


def _check_params(params: Preprocessing) -> None:
    """Validate what `Preprocessing.from_dict` checks too, for params built directly in code."""
    if params.channel_order not in _MODES:
        raise ValueError(f"channel_order must be RGB, BGR or L, not {params.channel_order!r}")
    if params.layout not in ("NHWC", "NCHW"):
        raise ValueError(f"layout must be NHWC or NCHW, not {params.layout!r}")
    if params.height < 1 or params.width < 1:
        raise ValueError("height and width must be positive")
    if not 0 <= params.pad_value <= 255:
        raise ValueError(f"pad_value must be in 0..255, not {params.pad_value}")


def _as_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """Accept a PIL image, or a HxW / HxWx1 / HxWx3 / HxWx4 uint8 array (RGB[A] order)."""
    if isinstance(image, Image.Image):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"image array must be uint8, not {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(np.ascontiguousarray(array))  # uint8 gives L, RGB or RGBA
    raise ValueError(f"image array must be HxW, HxWx1, HxWx3 or HxWx4, not shape {array.shape}")


def _convert(image: Image.Image, channel_order: str) -> Image.Image:
    """Convert to RGB (for RGB and BGR; BGR is reversed later, on the array) or L greyscale."""
    mode = _MODES[channel_order]
    return image if image.mode == mode else image.convert(mode)


def _pad_to_square(image: Image.Image, pad_value: int) -> Image.Image:
    """Centre the image on a square canvas of `pad_value`, as the seed's training did.

    Padding rather than stretching keeps a defect's aspect ratio; the offset (side - size) // 2
    matches the seed, so models trained on seed-style squared images see the same geometry.
    """
    width, height = image.size
    side = max(width, height)
    if width == height:
        return image
    fill = pad_value if image.mode == "L" else (pad_value,) * len(image.getbands())
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def _normalise(x: np.ndarray, params: Preprocessing) -> np.ndarray:
    """(x - mean) / std per channel; mean and std are in `channel_order` and have 1 or C values."""
    if not params.mean and not params.std:
        return x
    channels = x.shape[2]
    mean = np.asarray(params.mean or (0.0,), dtype=np.float32)
    std = np.asarray(params.std or (1.0,), dtype=np.float32)
    allowed = "1" if channels == 1 else f"1 or {channels}"
    for name, values in (("mean", mean), ("std", std)):
        if values.size not in (1, channels):
            raise ValueError(f"{name} has {values.size} values; {params.channel_order} needs {allowed}")
    if np.any(std == 0):
        raise ValueError("std values must be non-zero")
    return (x - mean) / std
