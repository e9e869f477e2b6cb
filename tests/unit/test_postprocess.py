"""system.edge.postprocess: verdicts, masks and overlays from raw model outputs (seed section 3)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from system.edge.postprocess import (
    classify,
    crop_padding,
    mask_png,
    overlay_png,
    segmentation_mask,
    thumbnail,
    thumbnail_png,
)


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


@pytest.mark.parametrize("shape", [(1, 2), (2,), (1, 1, 2)])
def test_softmax_output_gives_argmax_label_and_rounded_probabilities(shape: tuple[int, ...]) -> None:
    label, probabilities = classify(np.array([0.123456789, 0.876543211], np.float32).reshape(shape))
    assert label == "anomalous"
    assert probabilities == {"normal": 0.123457, "anomalous": 0.876543}


def test_index_zero_is_normal_and_a_tie_goes_to_normal() -> None:
    assert classify(np.array([[0.9, 0.1]]))[0] == "normal"
    assert classify(np.array([[0.5, 0.5]]))[0] == "normal"


def test_manifest_labels_name_the_classes() -> None:
    label, probabilities = classify(np.array([[0.2, 0.8]]), ["ok", "defect"])
    assert label == "defect" and set(probabilities) == {"ok", "defect"}


def test_single_sigmoid_output_is_the_anomalous_probability() -> None:
    label, probabilities = classify(np.array([[0.7]], np.float32))
    assert label == "anomalous"
    assert probabilities == pytest.approx({"normal": 0.3, "anomalous": 0.7}, abs=1e-6)


@pytest.mark.parametrize("shape", [(1, 3), (2, 2), (1, 32, 32, 1), (0,)])
def test_output_that_is_not_a_two_class_vector_is_refused_naming_its_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=str(list(shape)).replace("[", r"\[").replace("]", r"\]")):
        classify(np.zeros(shape, np.float32))


def test_nan_output_is_refused_not_called_normal() -> None:
    with pytest.raises(ValueError, match="NaN"):
        classify(np.array([[np.nan, np.nan]], np.float32))


def test_labels_must_be_two() -> None:
    with pytest.raises(ValueError, match="2 labels"):
        classify(np.array([[0.5, 0.5]]), ["a", "b", "c"])


PLANE = np.array([[0.1, 0.5, 0.9], [0.51, 0.0, 1.0]], np.float32)
EXPECTED = np.array([[False, False, True], [True, False, True]])


@pytest.mark.parametrize(
    "output",
    [PLANE[None, :, :, None], PLANE[None, None], PLANE[None], PLANE],
    ids=["1HW1", "11HW", "1HW", "HW"],
)
def test_mask_is_strictly_above_threshold_for_every_layout(output: np.ndarray) -> None:
    mask = segmentation_mask(output)
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, EXPECTED)


def test_mask_takes_the_first_batch_item_and_the_threshold() -> None:
    batch = np.stack([PLANE, np.ones_like(PLANE)])[:, :, :, None]
    np.testing.assert_array_equal(segmentation_mask(batch, threshold=0.0), PLANE > 0.0)


@pytest.mark.parametrize("shape", [(1, 4, 4, 2), (1,), (2, 3, 4, 5, 6)])
def test_mask_of_an_unknown_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        segmentation_mask(np.zeros(shape, np.float32))


def test_mask_of_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        segmentation_mask(np.full((1, 4, 4, 1), np.nan, np.float32))


def test_mask_png_is_0_255_greyscale() -> None:
    image = _decode(mask_png(EXPECTED))
    assert image.mode == "L" and image.size == (3, 2)
    np.testing.assert_array_equal(np.asarray(image), EXPECTED.astype(np.uint8) * 255)


def test_overlay_keeps_the_image_size_and_tints_only_masked_pixels() -> None:
    image = Image.new("RGB", (40, 20), (100, 100, 100))
    mask = np.zeros((4, 8), bool)
    mask[:, :4] = True  # the left half
    out = np.asarray(_decode(overlay_png(image, mask, color=(255, 0, 0), alpha=0.5)))
    assert out.shape == (20, 40, 3)
    assert np.allclose(out[10, 5], (177.5, 50, 50), atol=1)  # 0.5 * 100 + 0.5 * (255, 0, 0)
    assert tuple(out[10, 30]) == (100, 100, 100)


def test_overlay_accepts_greyscale_images() -> None:
    out = _decode(overlay_png(Image.new("L", (8, 8), 50), np.ones((8, 8), bool)))
    assert out.mode == "RGB"


def test_crop_padding_keeps_the_band_over_the_image() -> None:
    # a 20 x 40 (w x h) image was centred on a 40 x 40 canvas: columns 10-29 are the image
    mask = np.zeros((8, 8), bool)
    mask[:, 2:6] = True
    cropped = crop_padding(mask, (20, 40))
    assert cropped.shape == (8, 4) and cropped.all()
    assert crop_padding(mask, (40, 40)).shape == (8, 8)


def test_thumbnail_is_bounded_and_keeps_the_aspect_and_the_original() -> None:
    image = Image.new("RGBA", (230, 630))
    small = thumbnail(image, 320)
    assert small.size == (117, 320) and small.mode == "RGB"
    assert image.size == (230, 630)
    assert _decode(thumbnail_png(Image.new("RGB", (10, 10)), 320)).size == (10, 10)
