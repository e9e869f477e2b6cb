"""What one inference produced, in the shapes the web UI, the JSON API and telemetry share."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class ClassificationResult:
    model: str  # agent identifier, e.g. "img-classification-2"
    version: str
    label: str  # "normal" or "anomalous" (the manifest's labels when it has them)
    probabilities: dict[str, float]  # label -> probability, rounded to 6 decimals as the seed showed them
    latency_ms: float  # the agent Predict call, wall time

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "label": self.label,
            "probabilities": dict(self.probabilities),
            "latency_ms": round(self.latency_ms, 3),
        }


@dataclass(frozen=True)
class SegmentationResult:
    model: str
    version: str
    threshold: float  # mask = probability > threshold
    defect_fraction: float  # share of mask pixels above the threshold
    mask_png: bytes  # 0/255 greyscale PNG of the mask
    overlay_png: bytes  # the input image with the mask tinted over it
    latency_ms: float

    def to_dict(self, *, images: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "threshold": self.threshold,
            "defect_fraction": round(self.defect_fraction, 6),
            "latency_ms": round(self.latency_ms, 3),
        }
        if images:
            out["mask"] = png_data_uri(self.mask_png)
            out["overlay"] = png_data_uri(self.overlay_png)
        return out


@dataclass(frozen=True)
class InferenceResult:
    """Both applications' results for one image (either may be None: model not deployed, or failed)."""

    sequence: int  # increases by one per result on this device
    timestamp: float  # epoch seconds
    image_name: str  # the source's name for the image (relative path, camera frame id, upload)
    image_png: bytes  # the image as shown in the UI (a PNG thumbnail)
    classification: ClassificationResult | None = None
    segmentation: SegmentationResult | None = None
    errors: tuple[str, ...] = field(default=())  # per-model failures, e.g. "unet-2: predict failed: ..."
    captured: bool = False  # whether CaptureData was called for it

    def to_dict(self, *, images: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sequence": self.sequence,
            "timestamp": self.timestamp,
            "image_name": self.image_name,
            "classification": self.classification.to_dict() if self.classification else None,
            "segmentation": self.segmentation.to_dict(images=images) if self.segmentation else None,
            "errors": list(self.errors),
            "captured": self.captured,
        }
        if images:
            out["image"] = png_data_uri(self.image_png)
        return out
