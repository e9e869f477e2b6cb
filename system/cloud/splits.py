"""The pre-processed data a training step receives: train/val/test arrays, saved as one `.npz`.

Pre-processing (system/cloud/prepare.py) writes it; training and evaluation read it. Images are
already through `system/preprocessing.preprocess` with `preprocessing` (the parameters the edge
package's manifest will carry), so a model never sees pixels prepared another way.

- classification: `y_*` are int64 labels, 0 = normal, 1 = anomalous (the seed's order);
- segmentation: `y_*` are float32 masks (N, H, W, 1) of 0/1.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from system.agent.package import Preprocessing

SPLITS = ("train", "val", "test")
TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class PreparedData:
    task: str  # "classification" or "segmentation"
    preprocessing: Preprocessing
    x: dict[str, np.ndarray]  # split -> (N, H, W, C) float32
    y: dict[str, np.ndarray]  # split -> labels (N,) int64 or masks (N, H, W, 1) float32
    ids: dict[str, list[str]]  # split -> source image ids, index-aligned (augmented copies: "<id>#aug<k>")
    report: dict[str, Any] = field(default_factory=dict)  # counts per split and class, seed, augmentation

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {self.task!r}")
        for split in SPLITS:
            n = len(self.x[split])
            if len(self.y[split]) != n or len(self.ids[split]) != n:
                raise ValueError(f"split {split}: {n} images, {len(self.y[split])} targets, {len(self.ids[split])} ids")

    def to_bytes(self) -> bytes:
        arrays: dict[str, Any] = {}
        for split in SPLITS:
            arrays[f"x_{split}"] = self.x[split]
            arrays[f"y_{split}"] = self.y[split]
        meta = {
            "task": self.task,
            "preprocessing": self.preprocessing.to_dict(),
            "ids": self.ids,
            "report": self.report,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PreparedData:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            meta = json.loads(arrays["meta"].tobytes())
            return cls(
                task=meta["task"],
                preprocessing=Preprocessing.from_dict(meta["preprocessing"]),
                x={split: arrays[f"x_{split}"] for split in SPLITS},
                y={split: arrays[f"y_{split}"] for split in SPLITS},
                ids={split: list(meta["ids"][split]) for split in SPLITS},
                report=meta["report"],
            )
