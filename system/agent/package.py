"""The edgesim model package: a folder with `manifest.json` and the model files.

The format is documented in docs/model-package.md. In short, `manifest.json` holds:

    schema          "edgesim.model-package/1"
    name, version   the model's name and version (strings)
    framework       tensorflow | keras | tflite | onnx | mxnet
    model           path of the model file or folder, relative to the package
    signature       (tensorflow only) the SavedModel signature to serve, default serving_default
    inputs/outputs  [{name, dtype (a DataType name), shape (-1 = dynamic)}], in the model's order
    preprocessing   how an image becomes the input tensor (see Preprocessing)
    labels          optional class names, index-aligned with a classifier's output
    options         framework-specific settings (mxnet: symbol and params file names)
    files           {relative path: sha256 hex} of every file except manifest.json

Loading verifies the package before any framework sees a byte of it: no symlinks, no file that
the manifest does not list, every listed file present with its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from system.agent.tensors import DTYPES, TensorSpec
from system.errors import PackageNotFoundError, PackageRejectedError

SCHEMA = "edgesim.model-package/1"
MANIFEST = "manifest.json"
FRAMEWORKS = ("tensorflow", "keras", "tflite", "onnx", "mxnet")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input (shared by training and the edge, issue 5/6).

    The image is converted to `channel_order`, padded to a square with `pad_value` when
    `pad_to_square`, resized to `height` x `width`, turned into float32 `pixel * scale`, then
    `(x - mean) / std` per channel, laid out as `layout` with a batch dimension of 1.
    """

    height: int = 224
    width: int = 224
    pad_to_square: bool = True
    pad_value: int = 0
    channel_order: str = "RGB"  # RGB, BGR or L (greyscale)
    layout: str = "NHWC"  # NHWC or NCHW
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preprocessing:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        values = dict(raw)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        pre = cls(**values)
        if pre.channel_order not in ("RGB", "BGR", "L"):
            raise ValueError(f"channel_order must be RGB, BGR or L, not {pre.channel_order!r}")
        if pre.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be NHWC or NCHW, not {pre.layout!r}")
        if pre.height < 1 or pre.width < 1:
            raise ValueError("height and width must be positive")
        return pre

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        raw["mean"], raw["std"] = list(self.mean), list(self.std)
        return raw


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    framework: str
    model: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    files: dict[str, str]
    signature: str = "serving_default"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "version": self.version,
            "framework": self.framework,
            "model": self.model,
            "signature": self.signature,
            "inputs": [_spec_to_dict(s) for s in self.inputs],
            "outputs": [_spec_to_dict(s) for s in self.outputs],
            "preprocessing": self.preprocessing.to_dict(),
            "labels": list(self.labels),
            "options": self.options,
            "files": dict(sorted(self.files.items())),
        }


def _spec_to_dict(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def _spec_from_dict(raw: Any, where: str) -> TensorSpec:
    if not isinstance(raw, dict) or not {"name", "dtype", "shape"} <= set(raw):
        raise ValueError(f"{where}: each tensor needs name, dtype and shape")
    if raw["dtype"] not in DTYPES:
        raise ValueError(f"{where}: dtype {raw['dtype']!r} is not one of {', '.join(DTYPES)}")
    shape = raw["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= -1 for d in shape):
        raise ValueError(f"{where}: shape must be a list of integers >= -1")
    if not isinstance(raw["name"], str) or not raw["name"]:
        raise ValueError(f"{where}: name must be a non-empty string")
    return TensorSpec(raw["name"], raw["dtype"], tuple(shape))


def parse_manifest(raw: Any) -> Manifest:
    """Validate a decoded manifest.json; ValueError names the first problem, whatever the JSON holds."""
    try:
        return _parse_manifest(raw)
    except (TypeError, AttributeError, KeyError) as exc:  # a value of the wrong JSON type somewhere nested
        raise ValueError(f"malformed manifest: {type(exc).__name__}: {exc}") from exc


def _parse_manifest(raw: Any) -> Manifest:
    if not isinstance(raw, dict):
        raise ValueError("manifest must be a JSON object")
    if raw.get("schema") != SCHEMA:
        raise ValueError(f"schema must be {SCHEMA!r}, not {raw.get('schema')!r}")
    for key in ("name", "version", "framework", "model", "inputs", "outputs", "files"):
        if key not in raw:
            raise ValueError(f"missing key {key!r}")
    if raw["framework"] not in FRAMEWORKS:
        raise ValueError(f"framework {raw['framework']!r} is not one of {', '.join(FRAMEWORKS)}")
    if not isinstance(raw["version"], str) or not _VERSION.match(raw["version"]):
        raise ValueError(f"version {raw['version']!r} must be a short string of letters, digits and ._+-")
    files = raw["files"]
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for k, v in files.items()
    ):
        raise ValueError("files must map relative paths to sha256 hex digests")
    for path in files:
        _check_relative(path)
    if not isinstance(raw["model"], str):
        raise ValueError(f"model must be a path in the package, not {raw['model']!r}")
    _check_relative(raw["model"])
    for key in ("inputs", "outputs"):
        if not isinstance(raw[key], list):
            raise ValueError(f"{key} must be a list of tensors")
    if not isinstance(raw.get("preprocessing") or {}, dict):
        raise ValueError("preprocessing must be an object")
    inputs = tuple(_spec_from_dict(s, f"inputs[{i}]") for i, s in enumerate(raw["inputs"]))
    outputs = tuple(_spec_from_dict(s, f"outputs[{i}]") for i, s in enumerate(raw["outputs"]))
    if not inputs or not outputs:
        raise ValueError("a model needs at least one input and one output")
    return Manifest(
        name=str(raw["name"]),
        version=raw["version"],
        framework=raw["framework"],
        model=raw["model"],
        inputs=inputs,
        outputs=outputs,
        files=dict(files),
        signature=str(raw.get("signature") or "serving_default"),
        preprocessing=Preprocessing.from_dict(raw.get("preprocessing") or {}),
        labels=tuple(str(label) for label in raw.get("labels") or ()),
        options=dict(raw.get("options") or {}),
    )


def _check_relative(path: str) -> None:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ValueError(f"path {path!r} must be relative and stay inside the package")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _package_files(folder: Path) -> dict[str, Path]:
    """Every file of the package but the manifest; symlinks and special files are refused."""
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise PackageRejectedError(f"package {folder}: '{rel}' is a symbolic link; packages may not hold links")
            if name in filenames and not path.is_file():
                raise PackageRejectedError(f"package {folder}: '{rel}' is not a regular file")
            if name in filenames and rel != MANIFEST:
                found[rel] = path
    return found


@dataclass(frozen=True)
class VerifiedPackage:
    folder: Path
    manifest: Manifest
    size_bytes: int

    @property
    def model_path(self) -> Path:
        return self.folder / self.manifest.model


def read_package(url: str) -> VerifiedPackage:
    """Open and verify the package at `url` (a folder path, or file:// URL).

    NOT_FOUND if nothing is there; FAILED_PRECONDITION for anything wrong with the package.
    """
    folder = Path(url[len("file://") :] if url.startswith("file://") else url)
    if not url or not folder.exists():
        raise PackageNotFoundError(f"no model package at '{url}'")
    if not folder.is_dir():
        raise PackageRejectedError(f"'{url}' is not a folder; LoadModel expects an unpacked model package folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise PackageRejectedError(f"'{url}' is not an edgesim model package: {MANIFEST} is missing")
    try:
        manifest = parse_manifest(json.loads(manifest_path.read_text()))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise PackageRejectedError(f"package '{url}': invalid {MANIFEST}: {exc}") from exc
    present = _package_files(folder)
    unlisted = sorted(set(present) - set(manifest.files))
    if unlisted:
        raise PackageRejectedError(f"package '{url}': files not listed in the manifest: {', '.join(unlisted[:5])}")
    size = 0
    for rel, expected in sorted(manifest.files.items()):
        path = present.get(rel)
        if path is None:
            raise PackageRejectedError(f"package '{url}': listed file '{rel}' is missing")
        actual = sha256_of(path)
        if actual != expected:
            raise PackageRejectedError(
                f"package '{url}': checksum mismatch for '{rel}' (manifest {expected[:12]}..., file {actual[:12]}...)"
            )
        size += path.stat().st_size
    if not (folder / manifest.model).exists():
        raise PackageRejectedError(f"package '{url}': model path '{manifest.model}' does not exist")
    return VerifiedPackage(folder=folder, manifest=manifest, size_bytes=size)


def write_manifest(
    folder: str | Path,
    *,
    name: str,
    version: str,
    framework: str,
    model: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    signature: str = "serving_default",
    preprocessing: Preprocessing | None = None,
    labels: list[str] | None = None,
    options: dict[str, Any] | None = None,
) -> Manifest:
    """Hash every file in `folder` and write its manifest.json (atomically); returns the manifest."""
    folder = Path(folder)
    files = {rel: sha256_of(path) for rel, path in _package_files(folder).items()}
    manifest = Manifest(
        name=name,
        version=version,
        framework=framework,
        model=model,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        files=files,
        signature=signature,
        preprocessing=preprocessing or Preprocessing(),
        labels=tuple(labels or ()),
        options=dict(options or {}),
    )
    parse_manifest(manifest.to_dict())  # refuse to write what read_package would refuse
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    os.replace(tmp, folder / MANIFEST)
    return manifest
