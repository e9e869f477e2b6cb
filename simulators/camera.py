"""SyntheticCamera: an endless stream of synthetic KolektorSDD2-like surfaces for the inference loop.

A stand-in for the line camera the seed sample assumed but never had (it read PNGs from a folder).
Frame `i` of a camera with seed `s` is drawn from its own generator seeded by (s, i), so a frame does
not depend on the frames before it and the same seed gives the same frames, byte for byte.

Limits: the images are `simulators.surfaces.generate_surface` surfaces (see its limits); there is
no exposure, motion blur, frame timing or dropped frames, and the camera produces a frame as fast
as it is asked (the inference loop sets the rate).
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from simulators.surfaces import DEFAULT_SIZE, generate_surface
from system.edge.image_source import Frame


class SyntheticCamera:
    """An `ImageSource` whose frames are generated surfaces, a `defect_rate` share of them defective."""

    def __init__(self, seed: int = 0, size: tuple[int, int] = DEFAULT_SIZE, defect_rate: float = 0.3) -> None:
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"defect_rate must be in [0, 1], not {defect_rate}")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if size[0] < 64 or size[1] < 64:
            raise ValueError(f"a surface must be at least 64 x 64, not {size[0]} x {size[1]}")
        self.seed = seed
        self.size = size  # width, height
        self.defect_rate = defect_rate
        self._lock = threading.Lock()
        self._next = 0

    @property
    def frames(self) -> int:
        """How many frames the camera has produced."""
        return self._next

    def next_frame(self) -> Frame:
        with self._lock:
            index = self._next
            self._next += 1
        image, _ = self.frame(index)
        return Frame(name=self.name_of(index), image=Image.fromarray(image))

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame `index` as (HxWx3 uint8 RGB image, HxW uint8 mask, 255 on defect pixels)."""
        rng = self._rng(index)
        defective = bool(rng.random() < self.defect_rate)
        return generate_surface(rng, self.size[0], self.size[1], defective=defective)

    def is_defective(self, name: str) -> bool:
        """The ground truth of a frame this camera named (for scoring a model's verdicts)."""
        return bool(self._rng(self.index_of(name)).random() < self.defect_rate)

    @staticmethod
    def name_of(index: int) -> str:
        return f"camera/{index:06d}"

    @staticmethod
    def index_of(name: str) -> int:
        prefix, _, number = name.partition("/")
        if prefix != "camera" or not number.isdigit():
            raise ValueError(f"{name!r} is not a camera frame name")
        return int(number)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, index))
