"""simulators.surfaces: the synthetic KolektorSDD2-like dataset."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from simulators.surfaces import DatasetSummary, defect_count, generate_surface, write_dataset


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation with a (2r+1)^2 square, without scipy."""
    padded = np.pad(mask, radius)
    rows = sliding_window_view(padded, 2 * radius + 1, axis=0).any(axis=-1)
    return np.asarray(sliding_window_view(rows, 2 * radius + 1, axis=1).any(axis=-1))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetSummary:
    return write_dataset(tmp_path_factory.mktemp("ksdd2") / "data", n_train=100, n_test=30, seed=11)


def test_layout_ids_and_defect_counts(dataset: DatasetSummary) -> None:
    assert (dataset.train.images, dataset.train.defective) == (100, 11)  # round(100 * 0.107)
    assert (dataset.test.images, dataset.test.defective) == (30, 3)  # round(30 * 0.107)
    train = sorted(p.name for p in (dataset.root / "train").iterdir())
    test = sorted(p.name for p in (dataset.root / "test").iterdir())
    assert train == sorted(f"{i}{suffix}.png" for i in range(10000, 10100) for suffix in ("", "_GT"))
    assert test == sorted(f"{i}{suffix}.png" for i in range(10100, 10130) for suffix in ("", "_GT"))


def test_defective_ids_are_shuffled_not_first(dataset: DatasetSummary) -> None:
    assert dataset.train.defective_ids != tuple(str(i) for i in range(10000, 10011))


def test_images_are_230x630_rgb_and_masks_binary_and_zero_iff_defect_free(dataset: DatasetSummary) -> None:
    for split in (dataset.train, dataset.test):
        for image_path in sorted(split.folder.glob("?????.png")):
            with Image.open(image_path) as image:
                assert (image.mode, image.size) == ("RGB", (230, 630))
            mask_path = image_path.with_name(f"{image_path.stem}_GT.png")
            with Image.open(mask_path) as mask_image:
                assert (mask_image.mode, mask_image.size) == ("L", (230, 630))
                mask = np.asarray(mask_image)
            assert set(np.unique(mask)) <= {0, 255}
            assert mask.any() == (image_path.stem in split.defective_ids)


def test_defects_contrast_with_the_surrounding_surface(dataset: DatasetSummary) -> None:
    contrasts = []
    for split in (dataset.train, dataset.test):
        for image_id in split.defective_ids:
            grey = _read(split.folder / f"{image_id}.png").astype(np.float32).mean(axis=2)
            mask = _read(split.folder / f"{image_id}_GT.png") > 0
            ring = _dilate(mask, 8) & ~mask
            contrasts.append(float(np.abs(grey[mask] - grey[ring].mean()).mean()))
    assert min(contrasts) > 35, contrasts


def test_mask_marks_exactly_the_pixels_the_defects_changed() -> None:
    # the defects are drawn after the surface, so the same seed gives the same surface with and without them
    for seed in range(20):
        clean, clean_mask = generate_surface(np.random.default_rng(seed), defective=False)
        image, mask = generate_surface(np.random.default_rng(seed), defective=True)
        assert not clean_mask.any()
        changed = (image != clean).any(axis=2)
        marked = mask == 255
        assert not (changed & ~marked).any()
        assert changed[marked].mean() > 0.99


def test_defect_sizes_are_learnable_but_local() -> None:
    fractions = []
    for seed in range(30):
        _, mask = generate_surface(np.random.default_rng(seed), defective=True)
        fractions.append((mask > 0).mean())
    assert min(fractions) > 100 / (230 * 630)  # at least ~100 px: visible after resizing to 64x64
    assert max(fractions) < 0.1


def test_surface_has_texture_and_horizontal_machining_lines() -> None:
    image, _ = generate_surface(np.random.default_rng(3), defective=False)
    grey = image.astype(np.float32).mean(axis=2)
    assert grey.std() > 3
    row_steps = np.abs(np.diff(grey.mean(axis=1))).mean()
    column_steps = np.abs(np.diff(grey.mean(axis=0))).mean()
    assert row_steps > 2 * column_steps  # lines run along x, so rows differ more than columns


def test_generate_surface_honours_the_size() -> None:
    image, mask = generate_surface(np.random.default_rng(0), width=100, height=80, defective=True)
    assert image.shape == (80, 100, 3) and image.dtype == np.uint8
    assert mask.shape == (80, 100) and mask.dtype == np.uint8 and mask.any()


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    first = write_dataset(tmp_path / "a", n_train=12, n_test=6, seed=5)
    second = write_dataset(tmp_path / "b", n_train=12, n_test=6, seed=5)
    other = write_dataset(tmp_path / "c", n_train=12, n_test=6, seed=6)
    assert first.train.defective_ids == second.train.defective_ids
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    a, c = _files(tmp_path / "a"), _files(tmp_path / "c")
    assert a.keys() == c.keys()
    assert all(a[name] != c[name] for name in a if not name.endswith("_GT.png"))
    assert other.seed == 6


@pytest.mark.parametrize(
    ("n", "rate", "expected"),
    [(0, 0.107, 0), (4, 0.107, 0), (5, 0.107, 1), (100, 0.107, 11), (10, 0.0, 0), (3, 1.0, 3)],
)
def test_defect_count(n: int, rate: float, expected: int) -> None:
    assert defect_count(n, rate) == expected


def test_small_split_gets_one_defective_image(tmp_path: Path) -> None:
    summary = write_dataset(tmp_path / "d", n_train=5, n_test=0)
    assert summary.train.defective == 1 and summary.test.images == 0


def test_refuses_a_non_empty_folder_and_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "e" / "train").mkdir(parents=True)
    (tmp_path / "e" / "train" / "old.png").write_bytes(b"")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(tmp_path / "e", n_train=2, n_test=0)
    with pytest.raises(ValueError, match="defect_rate"):
        write_dataset(tmp_path / "f", n_train=2, n_test=0, defect_rate=1.5)


def test_two_hundred_images_in_under_ten_seconds(tmp_path: Path) -> None:
    start = time.perf_counter()
    summary = write_dataset(tmp_path / "fast", n_train=160, n_test=40)
    elapsed = time.perf_counter() - start
    assert summary.train.images + summary.test.images == 200
    assert elapsed < 10, f"{elapsed:.1f} s"
