"""Reading a data set in the KolektorSDD2 layout (real or synthetic).

Layout: `<root>/train/` and `<root>/test/`, each image `<id>.png` beside its pixel mask
`<id>_GT.png` (0 background, > 0 defect; all zero for a defect-free image). An image is
anomalous when its mask has any defect pixel (the seed's `mean(mask) > 0`). Nothing is
downloaded: users who have KolektorSDD2 point edgesim at its folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from system.preprocessing import load_image


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path
    anomalous: bool


def load_split(root: str | Path, split: str) -> list[Sample]:
    """The samples of one split, sorted by id; ValueError names a missing mask or an empty split."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise ValueError(f"no '{split}' folder under {root}: expected the KolektorSDD2 layout")
    samples = []
    for image in sorted(p for p in folder.glob("*.png") if not p.stem.endswith("_GT")):
        mask = image.with_name(f"{image.stem}_GT.png")
        if not mask.exists():
            raise ValueError(f"image {image} has no mask {mask.name}")
        samples.append(Sample(image, mask, bool(np.asarray(load_image(mask)).any())))
    if not samples:
        raise ValueError(f"split folder {folder} holds no images")
    return samples
