"""Synthetic KolektorSDD2-like surface images, for training and testing without the real dataset.

KolektorSDD2 (KSDD2) holds colour images of metal surfaces about 230 x 630 px; about 10.7 % show a
defect (356 of 3,335). Each `<id>.png` has a greyscale mask `<id>_GT.png` (0 background, 255
defect, all zero for a defect-free image), in `train/` and `test/` folders. `write_dataset` lays out
a dataset the same way, from a seed: the same seed gives byte-identical files.

A surface is a slightly coloured grey level with a gradient, soft blotches, fine horizontal
machining lines and grain. A defective one gets 1-3 defects: scratches (polylines 40-200 px long,
3-8 px wide) and spots (irregular ellipses, radius 8-25 px), darker or brighter than the surface.
They are made large and contrasted on purpose, so that a small CNN learns them in a few epochs at
64x64 to 224x224 after padding and resizing.

Limits, compared with real KSDD2:
- The texture is procedural noise; no real machined metal, specular highlights, reflections, dust,
  or lighting that varies between captures. Every image is exactly `size`; real ones vary by a
  few pixels.
- Only two defect shapes, with a uniform intensity shift and a little colour: no pits, cracks,
  imprints or discolouration, no relief or shadows, and none of the very small or faint defects
  that make KSDD2 hard. Accuracy on synthetic data says nothing about accuracy on KSDD2.
- Masks are pixel-exact; real KSDD2 masks are hand-drawn and coarser than the defects.
- Train and test come from the same distribution: no drift, no new defect types in the test set,
  no hard negatives beyond the machining lines.
"""

from __future__ import annotations

import itertools
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_SIZE = (230, 630)  # width, height, as KSDD2
FIRST_ID = 10000
SPLITS = ("train", "test")


@dataclass(frozen=True)
class SplitSummary:
    name: str
    folder: Path
    images: int
    defective: int
    defective_ids: tuple[str, ...]


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    seed: int
    size: tuple[int, int]
    train: SplitSummary
    test: SplitSummary


def generate_surface(
    rng: np.random.Generator, width: int = 230, height: int = 630, *, defective: bool
) -> tuple[np.ndarray, np.ndarray]:
    """One surface: (HxWx3 uint8 RGB image, HxW uint8 mask with 255 exactly on defect pixels)."""
    if width < 64 or height < 64:
        raise ValueError(f"a surface must be at least 64 x 64 to hold a defect, not {width} x {height}")
    surface = _surface(rng, width, height)
    mask = np.zeros((height, width), dtype=bool)
    if defective:
        for _ in range(int(rng.integers(1, 4))):
            _add_defect(rng, surface, mask)
    image = np.clip(np.rint(surface), 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8) * np.uint8(255)


def defect_count(n: int, defect_rate: float) -> int:
    """round(n * defect_rate), but at least one defective image in a split of 5 or more (if rate > 0)."""
    count = round(n * defect_rate)
    if defect_rate > 0 and n >= 5:
        count = max(count, 1)
    return min(count, n)


def write_dataset(
    root: Path,
    n_train: int,
    n_test: int,
    defect_rate: float = 0.107,
    seed: int = 0,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> DatasetSummary:
    """Write `root/train` and `root/test` as KSDD2 lays them out; ids run on from 10000 across splits.

    Each split has exactly `defect_count(n, defect_rate)` defective images, at deterministically
    shuffled positions. Every image draws from its own generator seeded by (seed, split, index), so
    an image does not depend on the others. Split folders must be absent or empty, so that images
    from an earlier run can never mix with these.
    """
    _check_arguments(n_train, n_test, defect_rate, seed, size)
    root = Path(root)
    first_ids = (FIRST_ID, FIRST_ID + n_train)
    splits = [
        _write_split(root / name, name, n, first_id, (seed, number), defect_rate, size)
        for number, (name, n, first_id) in enumerate(zip(SPLITS, (n_train, n_test), first_ids, strict=True))
    ]
    return DatasetSummary(root=root, seed=seed, size=size, train=splits[0], test=splits[1])


def _check_arguments(n_train: int, n_test: int, defect_rate: float, seed: int, size: tuple[int, int]) -> None:
    if n_train < 0 or n_test < 0:
        raise ValueError("n_train and n_test must be >= 0")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError(f"defect_rate must be in [0, 1], not {defect_rate}")
    if seed < 0:
        raise ValueError("seed must be >= 0")


def _write_split(
    folder: Path, name: str, n: int, first_id: int, key: tuple[int, int], defect_rate: float, size: tuple[int, int]
) -> SplitSummary:
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; write_dataset only writes into new or empty folders")
    folder.mkdir(parents=True, exist_ok=True)
    defective = np.zeros(n, dtype=bool)
    defective[np.random.default_rng(key).permutation(n)[: defect_count(n, defect_rate)]] = True

    def write_one(index: int) -> None:
        rng = np.random.default_rng((*key, index))
        image, mask = generate_surface(rng, size[0], size[1], defective=bool(defective[index]))
        _save_png(image, folder / f"{first_id + index}.png")
        _save_png(mask, folder / f"{first_id + index}_GT.png")

    # numpy and zlib release the GIL, so threads help; each image has its own generator, so the
    # files do not depend on the order in which the threads finish
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(write_one, range(n)))
    ids = tuple(str(first_id + index) for index in np.flatnonzero(defective))
    return SplitSummary(name=name, folder=folder, images=n, defective=len(ids), defective_ids=ids)


def _save_png(array: np.ndarray, path: Path) -> None:
    """Fast zlib settings (PNG output is deterministic either way).

    Grainy images barely compress, so Huffman coding alone is as small as full deflate at half the
    time; masks are long runs of zeros and need the default strategy.
    """
    strategy = zlib.Z_HUFFMAN_ONLY if array.ndim == 3 else zlib.Z_DEFAULT_STRATEGY
    Image.fromarray(array).save(path, format="PNG", compress_level=1, compress_type=strategy)


# --- the surface -------------------------------------------------------------------------------


def _surface(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Float32 HxWx3: grey level + gradient + blotches + machining lines, tinted, plus sensor grain."""
    y = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    gradient = np.float32(rng.normal(0, 8)) * y + np.float32(rng.normal(0, 6)) * x
    blotches = _smooth_noise(rng, width, height, (4, 10)) * np.float32(rng.uniform(4, 10))
    grey = np.float32(rng.uniform(95, 165)) + gradient + blotches + _machining_lines(rng, width, height)
    tint = (1.0 + rng.normal(0, 0.04, 3)).astype(np.float32)
    # per-channel grain, uniform rather than normal: it looks the same and is four times cheaper to draw
    surface = rng.random((height, width, 3), dtype=np.float32)
    surface -= np.float32(0.5)
    surface *= np.float32(rng.uniform(2.5, 5) * 12**0.5)  # standard deviation 2.5-5 grey levels
    surface += grey[:, :, None] * tint
    return surface


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise (about unit variance): a coarse random grid upsampled bicubically."""
    coarse = rng.standard_normal((cells[1], cells[0])).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def _machining_lines(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Fine horizontal lines: a value per row (some rows marked), fading in and out along x."""
    rows = rng.standard_normal(height).astype(np.float32) * np.float32(rng.uniform(2, 5))
    marked = rng.random(height) < 0.04
    rows[marked] += rng.choice(np.array([-1.0, 1.0], dtype=np.float32), marked.sum()) * np.float32(10)
    along = 1.0 + 0.4 * _smooth_noise(rng, width, 1, (6, 1))[0]
    result: np.ndarray = rows[:, None] * along[None, :]
    return result


# --- the defects -------------------------------------------------------------------------------


def _add_defect(rng: np.random.Generator, surface: np.ndarray, mask: np.ndarray) -> None:
    """Shift the pixels of one scratch or spot up or down by 55-95 grey levels, and mark them."""
    height, width = mask.shape
    top, left, local = _scratch(rng, width, height) if rng.random() < 0.5 else _spot(rng, width, height)
    window = (slice(top, top + local.shape[0]), slice(left, left + local.shape[1]))
    region = surface[window]
    strength = float(rng.uniform(55, 95))
    level = float(region[local].mean())
    darker = bool(rng.random() < 0.5)
    if (darker and level - strength < 15) or (not darker and level + strength > 240):
        darker = not darker  # keep the shift inside 0..255 so that clipping cannot erase it
    texture = np.clip(1.0 + 0.12 * rng.standard_normal(int(local.sum())), 0.7, 1.3).astype(np.float32)
    hue = (1.0 + rng.normal(0, 0.06, 3)).astype(np.float32)
    region[local] += np.float32(-strength if darker else strength) * texture[:, None] * hue
    mask[window] |= local


def _scratch(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, np.ndarray]:
    """A polyline of 1-3 segments, 40-200 px long in all, 3-8 px wide: (top, left, local mask)."""
    segments = int(rng.integers(1, 4))
    lengths = rng.uniform(40, 200) * rng.dirichlet(np.ones(segments))
    angles = rng.uniform(0, np.pi) + np.cumsum(rng.normal(0, 0.4, segments))
    start = np.array([rng.uniform(10, width - 10), rng.uniform(10, height - 10)])
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None]
    points = np.vstack([start, start + np.cumsum(steps, axis=0)])
    radius = rng.uniform(3, 8) / 2
    top, left, yy, xx = _window(points[:, 1], points[:, 0], radius, width, height)
    distance = np.full(yy.shape, np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(points):
        distance = np.minimum(distance, _distance_to_segment(xx, yy, a, b))
    return top, left, distance <= radius


def _spot(rng: np.random.Generator, width: int, height: int) -> tuple[int, int, np.ndarray]:
    """A rotated ellipse with radii 8-25 px and a slightly wavy rim: (top, left, local mask)."""
    rx, ry = rng.uniform(8, 25, 2)
    cx, cy = rng.uniform(12, width - 12), rng.uniform(12, height - 12)
    theta, phase1, phase2 = rng.uniform(0, 2 * np.pi, 3)
    top, left, yy, xx = _window(np.array([cy]), np.array([cx]), max(rx, ry) * 1.25, width, height)
    dx, dy = xx - cx, yy - cy
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    phi = np.arctan2(v, u)
    rim = 1.0 + 0.12 * np.sin(3 * phi + phase1) + 0.06 * np.sin(5 * phi + phase2)
    return top, left, u * u + v * v <= rim * rim


def _window(
    ys: np.ndarray, xs: np.ndarray, margin: float, width: int, height: int
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """The bounding box of the points grown by `margin`, clipped to the image: top, left, pixel grids."""
    top, bottom = max(0, int(ys.min() - margin) - 1), min(height, int(ys.max() + margin) + 2)
    left, right = max(0, int(xs.min() - margin) - 1), min(width, int(xs.max() + margin) + 2)
    yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
    return top, left, yy, xx


def _distance_to_segment(xx: np.ndarray, yy: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from each pixel centre to the segment a-b (points as x, y)."""
    ab = b - a
    t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    result: np.ndarray = np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1]))
    return result
