"""Data preparation: the seed's object-store layouts, then train/val/test arrays for training.

`publish_seed_layout` does what the seed's `data_preparation.ipynb` did: KolektorSDD2 samples go to
`img-classification/{normal,anomalous}/<id>.png` and `semantic-segmentation/{images,masks}/<id>.png`,
checked in full before the first write. `prepare_classification` / `prepare_segmentation` do the
pipelines' preprocessing step: read a layout back, run each image through the `preprocess` the
edge runs, split stratified with a seed, then augment the training split only. The seed augmented
before splitting, so copies of training images reached its test set; here a check refuses that.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from system.agent.package import Preprocessing
from system.cloud.dataset import Sample
from system.cloud.splits import SPLITS, PreparedData
from system.errors import EdgesimError
from system.ports import ObjectStore
from system.preprocessing import preprocess, preprocess_mask

CLASSIFICATION = "img-classification"
SEGMENTATION = "semantic-segmentation"
CLASSES = ("normal", "anomalous")  # index = label, the seed's order
IMAGE_MODES = ("RGB", "RGBA", "L", "P")
MASK_MODES = ("L", "1", "P", "I", "I;16")  # 16-bit greyscale PNGs open as I;16
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
_AUG = "#aug"  # augmented copy ids: "<id>#aug<k>"
_BRIGHTNESS = (0.85, 1.15)  # mild: the seed's 0.4-0.9 darkened a KSDD2 image past recognition
_NAMED = 20  # how many offending keys an error message lists


class DataError(EdgesimError):
    """Input data cannot be used (undecodable, unpaired, mismatched, missing); the message names it."""


# --- stage 1: the seed layout ------------------------------------------------------------------


def publish_seed_layout(samples: list[Sample], store: ObjectStore, prefix: str = "") -> dict[str, Any]:
    """Write `samples` in the seed's layouts under `prefix`; returns counts.

    Every image and mask is read, decoded and checked (PNG, supported mode, mask the size of its
    image) before anything is written, so a bad sample leaves the store untouched. Objects already
    under the layout must belong to this data set (same keys): stale images from another data set
    would silently join the training data otherwise; re-publishing the same samples is allowed,
    which is how to finish a publication that a store failure interrupted (the port cannot delete).
    """
    root = _layout_prefix(prefix)
    if not samples:
        raise DataError("no samples to publish")
    plan, anomalous = _plan_publication(samples, root)
    _refuse_stale_objects(store, root, {key for keys, _, _ in plan for key in keys})
    for keys, path, digest in plan:
        data = _read_file(path)
        if hashlib.sha256(data).hexdigest() != digest:
            raise DataError(f"{path} changed while it was being published; publish again")
        for key in keys:
            store.put_bytes(key, data)
    return {
        "prefix": root,
        "images": len(samples),
        "normal": len(samples) - anomalous,
        "anomalous": anomalous,
        "objects_written": sum(len(keys) for keys, _, _ in plan),
    }


def _plan_publication(samples: list[Sample], root: str) -> tuple[list[tuple[tuple[str, ...], Path, str]], int]:
    """Check every sample; returns ((keys, source file, sha256) to write, number of anomalous)."""
    plan: list[tuple[tuple[str, ...], Path, str]] = []
    seen: dict[str, Path] = {}
    anomalous = 0
    for sample in samples:
        sample_id = sample.image.stem
        if sample_id in seen:
            raise DataError(f"{sample.image} and {seen[sample_id]} have the same id {sample_id!r}")
        seen[sample_id] = sample.image
        image_data, mask_data = _read_file(sample.image), _read_file(sample.mask)
        image = _decode(image_data, str(sample.image), IMAGE_MODES, png_only=True)
        mask = _decode(mask_data, str(sample.mask), MASK_MODES, png_only=True)
        _check_same_size(image, mask, str(sample.image), str(sample.mask))
        defect = _has_defect(mask)
        anomalous += defect
        image_keys = (
            f"{root}{CLASSIFICATION}/{CLASSES[defect]}/{sample_id}.png",
            f"{root}{SEGMENTATION}/images/{sample_id}.png",
        )
        plan.append((image_keys, sample.image, hashlib.sha256(image_data).hexdigest()))
        plan.append(
            ((f"{root}{SEGMENTATION}/masks/{sample_id}.png",), sample.mask, hashlib.sha256(mask_data).hexdigest())
        )
    return plan, anomalous


def _refuse_stale_objects(store: ObjectStore, root: str, planned: set[str]) -> None:
    existing = store.list_keys(f"{root}{CLASSIFICATION}/") + store.list_keys(f"{root}{SEGMENTATION}/")
    stale = sorted(set(existing) - planned)
    if stale:
        raise DataError(
            f"{len(stale)} objects under '{root}' are not part of this data set ({_names(stale)}); "
            "publish into an empty prefix"
        )


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


# --- reading a layout back ---------------------------------------------------------------------


def read_classification(store: ObjectStore, prefix: str = "") -> list[tuple[str, int]]:
    """(key, label) of every image in `<prefix>img-classification/{normal,anomalous}/`, sorted.

    Both classes must hold images (a classifier cannot learn a class it never sees), and an id in
    both folders is refused: its label would be a coin toss.
    """
    root = f"{_layout_prefix(prefix)}{CLASSIFICATION}"
    items: list[tuple[str, int]] = []
    seen: dict[str, str] = {}
    for label, name in enumerate(CLASSES):
        keys = _images_under(store, f"{root}/{name}/")
        if not keys:
            raise DataError(f"{root}/{name}/ holds no images")
        for key in keys:
            if _key_id(key) in seen:
                raise DataError(f"{key} and {seen[_key_id(key)]}: the same image is in both classes")
            seen[_key_id(key)] = key
            items.append((key, label))
    return items


def read_segmentation(store: ObjectStore, prefix: str = "") -> list[tuple[str, str]]:
    """(image key, mask key) pairs from `<prefix>semantic-segmentation/{images,masks}/`, by id.

    Every image needs its mask and every mask its image; one error names all that lack a partner.
    """
    root = f"{_layout_prefix(prefix)}{SEGMENTATION}"
    images = {_key_id(key): key for key in _images_under(store, f"{root}/images/")}
    masks = {_key_id(key): key for key in _images_under(store, f"{root}/masks/")}
    if not images:
        raise DataError(f"{root}/images/ holds no images")
    problems = []
    orphans = [images[i] for i in sorted(images.keys() - masks.keys())]
    strays = [masks[i] for i in sorted(masks.keys() - images.keys())]
    if orphans:
        problems.append(f"{len(orphans)} images without a mask in {root}/masks/: {_names(orphans)}")
    if strays:
        problems.append(f"{len(strays)} masks without an image in {root}/images/: {_names(strays)}")
    if problems:
        raise DataError("; ".join(problems))
    return [(images[i], masks[i]) for i in sorted(images)]


def _images_under(store: ObjectStore, folder: str) -> list[str]:
    """The `.png` keys directly in `folder` (other files and sub-folders are not the layout's)."""
    return sorted(k for k in store.list_keys(folder) if k.endswith(".png") and "/" not in k[len(folder) :])


# --- split and augmentation --------------------------------------------------------------------


def stratified_split(
    labels: Sequence[int], *, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, seed: int
) -> dict[str, list[int]]:
    """Indices of `labels` for train, val and test (each sorted), class by class.

    Each class is shuffled by its own generator, seeded by (seed, class), so a split depends only
    on the seed and that class's members. A split gets round(fraction * n) of a class, but at
    least one when the class has 3 or more members and the split's fraction is > 0: the ~10 %
    anomalous class must be in val and test or their metrics mean nothing.
    """
    _check_fractions(fractions)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    values = np.asarray(labels, dtype=np.int64)
    result: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in np.unique(values):
        members = np.flatnonzero(values == label)
        members = members[np.random.default_rng([seed, int(label) & 0xFFFFFFFF]).permutation(len(members))]
        start = 0
        for name, count in zip(SPLITS, _split_counts(len(members), fractions), strict=True):
            result[name].extend(int(i) for i in members[start : start + count])
            start += count
    return {name: sorted(indices) for name, indices in result.items()}


def _split_counts(n: int, fractions: tuple[float, float, float]) -> list[int]:
    counts = [round(f * n) for f in fractions]
    if n >= 3:
        counts = [max(c, 1) if f > 0 else c for c, f in zip(counts, fractions, strict=True)]
    while sum(counts) > n:  # the largest split gives; with n >= 3 it holds 2 or more here
        counts[int(np.argmax(counts))] -= 1
    counts[int(np.argmax(fractions))] += n - sum(counts)  # rounding down: the largest fraction takes the rest
    return counts


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be 3 values >= 0 (train, val, test) summing to 1, not {fractions}")


def augment(
    image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Three variants of a preprocessed (H, W, C) image and its (H, W, 1) mask, in an rng order.

    Horizontal flip, vertical flip and 180° rotation, applied identically to image and mask so a
    defect stays under its mask; each image (never the mask) also gets a brightness factor drawn
    from 0.85-1.15. The factor multiplies the tensor: exact brightness for the default scaling
    (pixel / 255), a mild contrast change about the mean when `Preprocessing` normalises with
    mean/std. Values are not clipped. The same rng state gives the same variants.
    """
    axes = ((1,), (0,), (0, 1))  # horizontal flip, vertical flip, 180° rotation (H, W are axes 0, 1)
    variants: list[tuple[np.ndarray, np.ndarray | None]] = []
    for index in rng.permutation(len(axes)):
        flip = axes[int(index)]
        factor = np.float32(rng.uniform(*_BRIGHTNESS))
        new_image = np.ascontiguousarray(np.flip(image, flip) * factor, dtype=np.float32)
        new_mask = None if mask is None else np.ascontiguousarray(np.flip(mask, flip), dtype=np.float32)
        variants.append((new_image, new_mask))
    return variants


# --- stage 2: arrays for training --------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    seed: int
    fractions: tuple[float, float, float]
    augment_copies: int


@dataclass(frozen=True)
class _Decoded:
    x: np.ndarray  # (N, H, W, C) preprocessed images
    y: np.ndarray  # (N,) labels or (N, H, W, 1) masks
    ids: list[str]
    anomalous: np.ndarray  # (N,) bool: the class the split stratifies by
    augmentable: np.ndarray  # (N,) bool: gets copies when in the training split


def prepare_classification(
    store: ObjectStore,
    prefix: str,
    params: Preprocessing,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    augment_copies: int = 2,
) -> PreparedData:
    """Classification arrays from the seed layout; anomalous training images get augmented copies.

    Only the anomalous class is augmented (as the seed's AugmentCountAnomalous did) because it is
    the ~10 % minority; val and test hold original images only.
    """
    settings = _settings(params, seed, fractions, augment_copies)
    items = read_classification(store, prefix)
    x = np.empty((len(items), params.height, params.width, 1 if params.channel_order == "L" else 3), dtype=np.float32)
    for i, (key, _) in enumerate(items):
        x[i] = preprocess(_decode(store.get_bytes(key), key, IMAGE_MODES), params)[0]
    labels = np.asarray([label for _, label in items], dtype=np.int64)
    data = _Decoded(x, labels, [_key_id(key) for key, _ in items], labels == 1, labels == 1)
    return _assemble("classification", params, settings, data, {})


def prepare_segmentation(
    store: ObjectStore,
    prefix: str,
    params: Preprocessing,
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    augment_copies: int = 2,
) -> PreparedData:
    """Segmentation arrays (masks as targets) from the seed layout; every training pair is augmented.

    The split stratifies by "the mask has a defect pixel", judged on the full-size mask. The
    report's `masks_emptied_by_resize` counts defects too thin to survive the resize.
    """
    settings = _settings(params, seed, fractions, augment_copies)
    pairs = read_segmentation(store, prefix)
    n = len(pairs)
    x = np.empty((n, params.height, params.width, 1 if params.channel_order == "L" else 3), dtype=np.float32)
    y = np.empty((n, params.height, params.width, 1), dtype=np.float32)
    anomalous = np.zeros(n, dtype=bool)
    for i, (image_key, mask_key) in enumerate(pairs):
        image = _decode(store.get_bytes(image_key), image_key, IMAGE_MODES)
        mask = _decode(store.get_bytes(mask_key), mask_key, MASK_MODES)
        _check_same_size(image, mask, image_key, mask_key)
        anomalous[i] = _has_defect(mask)
        x[i], y[i] = preprocess(image, params)[0], preprocess_mask(mask, params)
    data = _Decoded(x, y, [_key_id(key) for key, _ in pairs], anomalous, np.ones(n, dtype=bool))
    emptied = int((anomalous & ~y.reshape(n, -1).any(axis=1)).sum())
    return _assemble("segmentation", params, settings, data, {"masks_emptied_by_resize": emptied})


def _settings(
    params: Preprocessing, seed: int, fractions: tuple[float, float, float], augment_copies: int
) -> _Settings:
    """Check the arguments before decoding anything, so a typo fails in milliseconds."""
    if params.layout != "NHWC":
        raise ValueError("PreparedData holds NHWC arrays: prepare with layout NHWC (a package may declare NCHW)")
    if augment_copies < 0:
        raise ValueError(f"augment_copies must be >= 0, not {augment_copies}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, not {seed}")
    _check_fractions(fractions)
    return _Settings(seed, (float(fractions[0]), float(fractions[1]), float(fractions[2])), augment_copies)


def _assemble(
    task: str, params: Preprocessing, settings: _Settings, data: _Decoded, extra: dict[str, Any]
) -> PreparedData:
    """Split first, then augment the training split only, check for leakage, and report."""
    split = stratified_split(data.anomalous.astype(int).tolist(), fractions=settings.fractions, seed=settings.seed)
    rng = np.random.default_rng(settings.seed)
    x: dict[str, np.ndarray] = {}
    y: dict[str, np.ndarray] = {}
    ids: dict[str, list[str]] = {}
    counts: dict[str, dict[str, int]] = {}
    for name in SPLITS:
        index = np.asarray(split[name], dtype=np.intp)
        x[name], y[name], ids[name] = data.x[index], data.y[index], [data.ids[i] for i in index]
        anomalous = int(data.anomalous[index].sum())
        counts[name] = {"normal": len(index) - anomalous, "anomalous": anomalous, "augmented": 0}
        if name == "train" and settings.augment_copies:
            copies = _copies(data, index[data.augmentable[index]], settings.augment_copies, rng)
            if copies[2]:
                x[name], y[name] = np.concatenate([x[name], copies[0]]), np.concatenate([y[name], copies[1]])
                ids[name] = ids[name] + copies[2]
            counts[name]["augmented"] = len(copies[2])
        counts[name]["total"] = len(ids[name])
    _check_no_leakage(ids)
    report = {
        "task": task,
        "seed": settings.seed,
        "fractions": list(settings.fractions),
        "augment_copies": settings.augment_copies,
        "counts": counts,
        "image_size": [params.height, params.width],
        "preprocessing": params.to_dict(),
        **extra,
    }
    return PreparedData(task=task, preprocessing=params, x=x, y=y, ids=ids, report=report)


def _copies(
    data: _Decoded, chosen: np.ndarray, copies: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """`copies` augmented variants of each chosen image (by index into `data`): x, y and ids."""
    new_x, new_y, new_ids = [], [], []
    for i in chosen:
        variants: list[tuple[np.ndarray, np.ndarray | None]] = []
        while len(variants) < copies:  # more than 3 copies: the same flips with new brightness draws
            variants.extend(augment(data.x[i], data.y[i] if data.y.ndim == 4 else None, rng))
        for k, (image, mask) in enumerate(variants[:copies]):
            new_x.append(image)
            new_y.append(data.y[i] if mask is None else mask)
            new_ids.append(f"{data.ids[i]}{_AUG}{k}")
    return np.asarray(new_x, dtype=np.float32), np.asarray(new_y, dtype=data.y.dtype), new_ids


def _check_no_leakage(ids: dict[str, list[str]]) -> None:
    """Raise if an image (or a copy of it) is in two splits, or a copy is outside train.

    The seed augmented before splitting, so its test set held copies of training images and its
    accuracy was optimistic; this guards the fix.
    """
    sources = {name: {i.split(_AUG, 1)[0] for i in ids[name]} for name in SPLITS}
    for name in ("val", "test"):
        copies = [i for i in ids[name] if _AUG in i]
        if copies:
            raise DataError(f"leakage: augmented copies in {name}: {_names(copies)}")
    for first, second in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = sorted(sources[first] & sources[second])
        if shared:
            raise DataError(f"leakage: ids in both {first} and {second}: {_names(shared)}")


# --- decoding and small helpers ----------------------------------------------------------------


def _decode(data: bytes, name: str, modes: Sequence[str], *, png_only: bool = False) -> Image.Image:
    """Fully decode `data` now, so a corrupt file fails here with its name, not deep in training."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot decode {name}: {exc}") from exc
    if png_only and image.format != "PNG":
        raise DataError(f"{name} is {image.format or 'not an image format PIL names'}, not PNG as the layout needs")
    if image.mode not in modes:
        raise DataError(f"{name} has mode {image.mode}; supported: {', '.join(modes)}")
    return image


def _check_same_size(image: Image.Image, mask: Image.Image, image_name: str, mask_name: str) -> None:
    (width, height), (mask_width, mask_height) = image.size, mask.size
    if (width, height) != (mask_width, mask_height):
        raise DataError(
            f"mask {mask_name} is {mask_width}x{mask_height} but its image {image_name} is {width}x{height}"
        )


def _has_defect(mask: Image.Image) -> bool:
    """Any pixel > 0 (a palette mask by index), as `load_split` and `preprocess_mask` judge it."""
    return bool(np.asarray(mask).any())


def _layout_prefix(prefix: str) -> str:
    """'' or a prefix ending in '/': "data" and "data/" name the same place."""
    if prefix.startswith("/"):
        raise ValueError(f"object keys never start with '/': {prefix!r}")
    return prefix if not prefix or prefix.endswith("/") else f"{prefix}/"


def _key_id(key: str) -> str:
    return key.rsplit("/", 1)[-1].removesuffix(".png")


def _names(keys: Sequence[str]) -> str:
    more = f" and {len(keys) - _NAMED} more" if len(keys) > _NAMED else ""
    return ", ".join(keys[:_NAMED]) + more
