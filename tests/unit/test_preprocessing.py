"""system.preprocessing: the one image-to-tensor path shared by training and the edge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from system.agent.package import Preprocessing
from system.preprocessing import load_image, preprocess, preprocess_mask


def _tall_image(width: int = 20, height: int = 40) -> np.ndarray:
    """A non-square RGB image whose channels differ (R 200, G 100, B 30) so that order shows."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[...] = (200, 100, 30)
    return image


@pytest.mark.parametrize(
    ("layout", "shape"), [("NHWC", (1, 16, 24, 3)), ("NCHW", (1, 3, 16, 24))], ids=["NHWC", "NCHW"]
)
def test_non_square_image_is_padded_then_resized_to_the_layout(layout: str, shape: tuple[int, ...]) -> None:
    x = preprocess(_tall_image(), Preprocessing(height=16, width=24, layout=layout))
    assert x.shape == shape
    assert x.dtype == np.float32
    assert x.flags.c_contiguous


def test_nchw_is_the_transpose_of_nhwc() -> None:
    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    nhwc = preprocess(image, Preprocessing(height=8, width=8))
    nchw = preprocess(image, Preprocessing(height=8, width=8, layout="NCHW"))
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))


def test_padding_is_centred_with_pad_value_times_scale() -> None:
    # 20 wide x 40 high -> 40 x 40 with 10 pad columns each side; 40 -> 20 halves them to 5 columns
    params = Preprocessing(height=20, width=20, pad_value=17, scale=0.5)
    x = preprocess(_tall_image(), params)[0]
    expected_pad = np.float32(17 * 0.5)
    np.testing.assert_array_equal(x[:, :4], expected_pad)  # left pad (the 5th column blends with the image)
    np.testing.assert_array_equal(x[:, -4:], expected_pad)  # right pad, same width: centred
    np.testing.assert_array_equal(x[:, 4], x[:, 15])  # the blended border columns mirror each other
    np.testing.assert_allclose(x[:, 6:14], np.broadcast_to(np.array([100, 50, 15], dtype=np.float32), (20, 8, 3)))


def test_wide_image_pads_top_and_bottom() -> None:
    wide = np.full((10, 30, 3), 255, dtype=np.uint8)
    x = preprocess(wide, Preprocessing(height=30, width=30, pad_value=0, scale=1.0))[0]
    np.testing.assert_array_equal(x[:10], 0.0)
    np.testing.assert_array_equal(x[10:20], 255.0)
    np.testing.assert_array_equal(x[20:], 0.0)


def test_without_pad_to_square_the_image_is_stretched() -> None:
    x = preprocess(_tall_image(), Preprocessing(height=8, width=8, pad_to_square=False, scale=1.0))[0]
    np.testing.assert_allclose(x, np.broadcast_to(np.array([200, 100, 30], dtype=np.float32), x.shape))


def test_bgr_reverses_the_channels_of_rgb() -> None:
    image = np.random.default_rng(1).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    rgb = preprocess(image, Preprocessing(height=12, width=12))
    bgr = preprocess(image, Preprocessing(height=12, width=12, channel_order="BGR"))
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])
    nchw = preprocess(image, Preprocessing(height=12, width=12, channel_order="BGR", layout="NCHW"))
    np.testing.assert_array_equal(nchw[0, 0], rgb[0, :, :, 2])


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_greyscale_gives_one_channel(layout: str) -> None:
    x = preprocess(_tall_image(), Preprocessing(height=10, width=10, channel_order="L", layout=layout))
    assert x.shape == ((1, 10, 10, 1) if layout == "NHWC" else (1, 1, 10, 10))
    luma = (200 * 299 + 100 * 587 + 30 * 114) / 1000 / 255  # PIL's ITU-R 601-2 luma
    assert abs(float(x.max()) - luma) < 1 / 255


def test_greyscale_input_becomes_rgb_and_2d_or_hxwx1_arrays_are_accepted() -> None:
    grey = np.full((12, 12), 90, dtype=np.uint8)
    for image in (grey, grey[:, :, None], Image.fromarray(grey)):
        x = preprocess(image, Preprocessing(height=6, width=6, scale=1.0))
        assert x.shape == (1, 6, 6, 3)
        np.testing.assert_array_equal(x, 90.0)


def test_mean_and_std_are_applied_per_channel() -> None:
    params = Preprocessing(height=4, width=4, scale=1.0, mean=(200.0, 50.0, 10.0), std=(2.0, 5.0, 10.0))
    x = preprocess(_tall_image(20, 20), params)
    np.testing.assert_allclose(x[0, 0, 0], [0.0, 10.0, 2.0])
    assert x.dtype == np.float32


def test_mean_and_std_follow_the_channel_order() -> None:
    params = Preprocessing(height=4, width=4, scale=1.0, channel_order="BGR", mean=(30.0, 100.0, 200.0), std=(1.0,))
    np.testing.assert_array_equal(preprocess(_tall_image(20, 20), params), 0.0)


def test_mean_with_the_wrong_number_of_channels_is_refused() -> None:
    with pytest.raises(ValueError, match="mean has 3 values"):
        preprocess(_tall_image(), Preprocessing(channel_order="L", mean=(0.5, 0.5, 0.5)))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((4, 4, 3), dtype=np.float32), Preprocessing())
    with pytest.raises(ValueError, match="shape"):
        preprocess(np.zeros((4, 4, 2), dtype=np.uint8), Preprocessing())
    with pytest.raises(ValueError, match="channel_order"):
        preprocess(_tall_image(), Preprocessing(channel_order="RGBA"))


def test_pil_image_and_array_give_the_same_tensor(tmp_path: Path) -> None:
    image = np.random.default_rng(2).integers(0, 256, (40, 25, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    params = Preprocessing(height=16, width=16)
    np.testing.assert_array_equal(preprocess(load_image(path), params), preprocess(image, params))


def test_rgba_alpha_is_dropped() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., :3] = (10, 20, 30)
    x = preprocess(rgba, Preprocessing(height=8, width=8, scale=1.0))
    np.testing.assert_array_equal(x[0, 0, 0], [10.0, 20.0, 30.0])


def test_corrupt_png_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(_tall_image()).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    for path in (truncated, garbage):
        with pytest.raises(ValueError, match=path.name):
            load_image(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "absent.png")


# --- preprocess_mask: the segmentation target, aligned with preprocess -------------------------


def _image_and_mask_with_a_defect(
    width: int, height: int, box: tuple[int, int, int, int]
) -> tuple[Image.Image, Image.Image]:
    """A dark RGB image with a bright block at box = (top, left, bottom, right), and its 0/255 mask."""
    top, left, bottom, right = box
    image = np.full((height, width, 3), 20, dtype=np.uint8)
    image[top:bottom, left:right] = 230
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top:bottom, left:right] = 255
    return Image.fromarray(image), Image.fromarray(mask)


@pytest.mark.parametrize(
    ("width", "height", "box", "corner_pixels"),
    [(40, 80, (16, 4, 32, 20), 0), (80, 40, (4, 48, 20, 64), 0), (31, 90, (45, 6, 63, 24), 4)],
    ids=["tall", "wide", "tall-odd-padding-odd-scale"],
)
def test_mask_lands_on_the_same_pixels_as_its_defect_in_the_image(
    width: int, height: int, box: tuple[int, int, int, int], corner_pixels: int
) -> None:
    image, mask = _image_and_mask_with_a_defect(width, height, box)
    params = Preprocessing(height=40, width=40, scale=1.0)
    x = preprocess(image, params)[0, :, :, 0]
    target = preprocess_mask(mask, params)
    assert target.shape == (40, 40, 1)
    bright = x > (20 + 230) / 2  # the block, after bilinear blending at its edges
    defect = target[:, :, 0] == 1.0
    # with a non-integer scale, bilinear blending and nearest can only disagree on a few edge pixels
    mismatch = defect != bright
    assert not (mismatch & ((x <= 21) | (x >= 229))).any()
    assert mismatch.sum() <= corner_pixels
    # and the centres agree to within nearest-neighbour's quantisation (half an output pixel)
    rows, cols = np.nonzero(defect)
    weight = np.clip((x - 20) / 210, 0, 1)
    assert abs(rows.mean() - (weight.sum(axis=1) @ np.arange(40)) / weight.sum()) < 0.5
    assert abs(cols.mean() - (weight.sum(axis=0) @ np.arange(40)) / weight.sum()) < 0.5


def test_mask_padding_uses_the_image_offsets_even_when_the_image_pads_with_another_value() -> None:
    image, mask = _image_and_mask_with_a_defect(20, 40, (0, 0, 40, 20))  # the defect fills the image
    target = preprocess_mask(mask, Preprocessing(height=40, width=40, pad_value=255))
    assert target[:, :10].sum() == 0 and target[:, 30:].sum() == 0  # padding is background, not 255
    assert (target[:, 10:30] == 1.0).all()


def test_mask_output_is_binary_float32_for_any_positive_value() -> None:
    mask = np.zeros((50, 30), dtype=np.uint8)
    mask[10:20, 5:15] = 1  # faint values count as defect
    mask[30:40, 10:25] = 128
    target = preprocess_mask(mask, Preprocessing(height=17, width=17))
    assert target.dtype == np.float32
    assert set(np.unique(target)) == {0.0, 1.0}


@pytest.mark.parametrize("mode", ["1", "L", "P", "I", "I;16"])
def test_mask_modes_give_the_same_target(mode: str) -> None:
    _, mask = _image_and_mask_with_a_defect(24, 48, (8, 4, 20, 12))
    params = Preprocessing(height=24, width=24)
    converted = mask.convert(mode)
    assert converted.mode == mode
    np.testing.assert_array_equal(preprocess_mask(converted, params), preprocess_mask(mask, params))


def test_mask_arrays_with_channels_and_the_layout_options_are_accepted() -> None:
    _, mask = _image_and_mask_with_a_defect(24, 48, (8, 4, 20, 12))
    array = np.asarray(mask)
    params = Preprocessing(height=12, width=12, layout="NCHW", channel_order="BGR")  # image-only options
    expected = preprocess_mask(array, params)
    for variant in (array[:, :, None], np.stack([array] * 3, axis=2), array > 0):
        np.testing.assert_array_equal(preprocess_mask(variant, params), expected)
    with_alpha = np.zeros((48, 24, 4), dtype=np.uint8)
    with_alpha[..., 3] = 255  # an opaque alpha band is not a defect
    assert preprocess_mask(with_alpha, params).sum() == 0
    with pytest.raises(ValueError, match="shape"):
        preprocess_mask(np.zeros((4, 4, 2), dtype=np.uint8), params)


def test_an_image_declaring_more_pixels_than_allowed_is_refused_before_decoding() -> None:
    import io as _io

    from PIL import Image as _Image

    from system.preprocessing import decode_image

    buffer = _io.BytesIO()
    _Image.new("L", (300, 200)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="300x200 pixels, more than the 50000 allowed"):
        decode_image(buffer.getvalue(), "the upload", max_pixels=50_000)
    assert decode_image(buffer.getvalue(), "the upload", max_pixels=60_000).size == (300, 200)
