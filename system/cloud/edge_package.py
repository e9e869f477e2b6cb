"""The edge packages of one model version: built, measured, archived, signed and uploaded.

SageMaker Neo compiled a model for a target and Edge packaging wrapped it for the Edge Agent; both
are discontinued, so this module does their job. A model version becomes two packages
(docs/model-package.md): the float SavedModel, which is the reference, and a TFLite model, float or
quantised (`system.cloud.packaging.QUANTIZATIONS`). Each package is measured through the runtimes
the Edge Agent itself uses (so the numbers are what a device will see), then archived the way a
device installs it (docs/edge-app.md, "The job document"): a deterministic `.tar.gz` with the
package at its root, its SHA-256 and size, and optionally an Ed25519 signature over that digest.

The report says, per package, what quantisation costs against the float SavedModel: the change of
every metric `evaluate` computes, the ratio of model sizes and of median latencies, and the largest
output difference on the benchmark input.
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from system.agent.package import Preprocessing, VerifiedPackage, read_package
from system.agent.runtimes import ModelRuntime, open_runtime
from system.cloud.packaging import check_quantization, export_package
from system.config import AgentSettings
from system.ports import FileTransfer, ObjectStore
from system.signing import file_sha256, sign_digest

# Members get this mtime (2000-01-01T00:00:00Z) so that the same package gives the same bytes;
# 0 would make GNU tar warn of an "implausibly old time stamp" on the device.
ARCHIVE_MTIME = 946_684_800
REPORT_NAME = "package-report.json"
REFERENCE = "tensorflow"  # the float model every other variant is compared with
LATENCY_RUNS = 30
WARMUP_RUNS = 3

PredictFn = Callable[[np.ndarray], np.ndarray]
Evaluate = Callable[[PredictFn], dict[str, float]]


class PackageStore(ObjectStore, FileTransfer, Protocol):
    """An object store that also streams files: where packages and their report go."""


def archive_package(folder: Path, dest: Path) -> Path:
    """Write the package in `folder` as a `.tar.gz` at `dest`, members at the archive root; returns `dest`.

    The same folder always gives the same bytes (sorted members, fixed mtime, owner and modes, no
    name or time in the gzip header), so an archive's SHA-256 identifies its content and a rebuild
    can be checked against a published digest. Links and special files are refused: the device
    refuses them too (system/edge/archive.py).
    """
    entries = sorted(_walk(folder), key=lambda path: path.relative_to(folder).as_posix())
    tmp = dest.with_name(f".{dest.name}.tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in entries:
            _add(tar, path, path.relative_to(folder).as_posix())
    os.replace(tmp, dest)
    return dest


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise ValueError(f"{path}: packages hold only regular files and folders")
            yield path


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = ARCHIVE_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if path.is_dir():
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.mode, info.size = 0o644, path.stat().st_size
    with path.open("rb") as stream:
        tar.addfile(info, stream)


@dataclass(frozen=True)
class PackageVariant:
    """One archived package and what it measured. Ratios and changes are against the float SavedModel."""

    framework: str
    quantization: str
    archive: str  # file name; the S3 key ends with it
    sha256: str  # of the archive
    size_bytes: int  # of the archive
    model_size_bytes: int  # of the model file(s) inside the package
    latency_ms: float  # median of LATENCY_RUNS single-input Predicts through the agent's runtime
    output_max_abs_diff: float  # on the benchmark input, against the float SavedModel
    model_size_ratio: float = 1.0
    latency_ratio: float = 1.0
    metrics: dict[str, float] = field(default_factory=dict)
    metric_change: dict[str, float] = field(default_factory=dict)  # metric - float model's metric
    signature: str | None = None  # base64 Ed25519 over the archive's SHA-256 digest
    key: str | None = None  # the object key once uploaded
    archive_path: Path | None = None  # local, not reported
    package_dir: Path | None = None  # local, not reported

    def to_dict(self) -> dict[str, Any]:
        raw = {name: getattr(self, name) for name in self.__dataclass_fields__}
        del raw["archive_path"], raw["package_dir"]
        raw["metrics"], raw["metric_change"] = dict(self.metrics), dict(self.metric_change)
        return raw


@dataclass(frozen=True)
class PackageReport:
    """What `build_edge_packages` made, in the order built (the SavedModel first)."""

    name: str
    version: str
    variants: list[PackageVariant]
    benchmark_shape: list[int] = field(default_factory=list)
    bucket: str | None = None
    report_key: str | None = None

    def variant(self, framework: str) -> PackageVariant:
        """The variant of `framework` (`tensorflow` or `tflite`)."""
        for variant in self.variants:
            if variant.framework == framework:
                return variant
        raise KeyError(f"no {framework!r} package for {self.name} {self.version}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PackageReport:
        """The report as `package-report.json` holds it (what `edgesim pipeline deploy` reads)."""
        fields = set(PackageVariant.__dataclass_fields__) - {"archive_path", "package_dir"}
        try:
            variants = [PackageVariant(**{k: v for k, v in item.items() if k in fields}) for item in raw["variants"]]
            return cls(
                name=str(raw["name"]),
                version=str(raw["version"]),
                variants=variants,
                benchmark_shape=list(raw.get("benchmark_shape", [])),
                bucket=raw.get("bucket"),
                report_key=raw.get("report_key"),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a package report: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "reference": REFERENCE,
            "latency_runs": LATENCY_RUNS,
            "benchmark_shape": list(self.benchmark_shape),
            "bucket": self.bucket,
            "report_key": self.report_key,
            "variants": [variant.to_dict() for variant in self.variants],
        }


def archive_name(name: str, version: str, framework: str, quantization: str = "none") -> str:
    """`<name>-<version>.tar.gz` for the SavedModel, `<name>-<version>-tflite[-float16|-int8].tar.gz`."""
    if framework == REFERENCE:
        return f"{name}-{version}.tar.gz"
    suffix = "" if quantization == "none" else f"-{quantization}"
    return f"{name}-{version}-{framework}{suffix}.tar.gz"


def build_edge_packages(
    model: Any,
    workdir: Path,
    *,
    name: str,
    version: str,
    preprocessing: Preprocessing | None,
    labels: list[str] | None,
    quantization: str = "none",
    calibration: np.ndarray | None = None,
    evaluate: Evaluate | None = None,
    benchmark_input: np.ndarray | None = None,
    signing_key: Ed25519PrivateKey | None = None,
) -> PackageReport:
    """Export `model` (Keras) as a SavedModel package and a TFLite package, measure and archive both.

    `version` is the registry's version of the model (the package key and the device's version
    ordering use it). Package folders and archives are written in `workdir` under the archive's
    stem; rebuilding into the same `workdir` fails rather than mix two builds. `evaluate` gets a
    predict function (a batch in, the first output for the batch out, one Predict per input as on
    the device) and returns metrics; `benchmark_input` is one input as the model takes it (default:
    zeros of the manifest's shape).
    """
    check_quantization("tflite", quantization, calibration)
    workdir.mkdir(parents=True, exist_ok=True)
    packages = [
        (framework, quant, workdir / archive_name(name, version, framework, quant).removesuffix(".tar.gz"))
        for framework, quant in [(REFERENCE, "none"), ("tflite", quantization)]
    ]
    for framework, quant, folder in packages:
        export_package(
            model,
            folder,
            name=name,
            version=version,
            framework=framework,
            preprocessing=preprocessing,
            labels=labels,
            quantization=quant,
            calibration=calibration,
        )
    variants: list[PackageVariant] = []
    outputs: list[np.ndarray] = []
    shape: list[int] = []
    for framework, quant, folder in packages:
        package = read_package(str(folder))
        x = _benchmark_input(package, benchmark_input)
        shape = list(x.shape)
        with _runtime(package) as runtime:
            outputs.append(runtime.run([x])[0])
            variant = _measure(package, runtime, x, evaluate, framework, quant)
        difference = float(np.max(np.abs(outputs[-1] - outputs[0]), initial=0.0))
        variant = _archive(replace(variant, output_max_abs_diff=difference), workdir, name, version, signing_key)
        variants.append(_compare(variant, variants[0] if variants else variant))
    return PackageReport(name=name, version=version, variants=variants, benchmark_shape=shape)


@contextmanager
def _runtime(package: VerifiedPackage) -> Iterator[ModelRuntime]:
    runtime = open_runtime(package, AgentSettings())
    try:
        yield runtime
    finally:
        runtime.close()


def _benchmark_input(package: VerifiedPackage, given: np.ndarray | None) -> np.ndarray:
    spec = package.manifest.inputs[0]
    if given is not None:
        return np.asarray(given, dtype=spec.numpy_dtype)
    return np.zeros(tuple(max(d, 1) for d in spec.shape), dtype=spec.numpy_dtype)


def _measure(
    package: VerifiedPackage,
    runtime: ModelRuntime,
    x: np.ndarray,
    evaluate: Evaluate | None,
    framework: str,
    quantization: str,
) -> PackageVariant:
    for _ in range(WARMUP_RUNS):
        runtime.run([x])
    timings = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        runtime.run([x])
        timings.append((time.perf_counter() - started) * 1000.0)
    dtype = package.manifest.inputs[0].numpy_dtype

    def predict(batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=dtype)
        return np.concatenate([runtime.run([batch[i : i + 1]])[0] for i in range(len(batch))])

    model_path = package.model_path
    files = [model_path] if model_path.is_file() else [p for p in model_path.rglob("*") if p.is_file()]
    return PackageVariant(
        framework=framework,
        quantization=quantization,
        archive="",
        sha256="",
        size_bytes=0,
        model_size_bytes=sum(p.stat().st_size for p in files),
        latency_ms=statistics.median(timings),
        output_max_abs_diff=0.0,
        metrics={k: float(v) for k, v in evaluate(predict).items()} if evaluate is not None else {},
        package_dir=package.folder,
    )


def _archive(
    variant: PackageVariant, workdir: Path, name: str, version: str, key: Ed25519PrivateKey | None
) -> PackageVariant:
    file_name = archive_name(name, version, variant.framework, variant.quantization)
    assert variant.package_dir is not None
    path = archive_package(variant.package_dir, workdir / file_name)
    digest = file_sha256(path)
    return replace(
        variant,
        archive=file_name,
        sha256=digest,
        size_bytes=path.stat().st_size,
        signature=sign_digest(key, digest) if key is not None else None,
        archive_path=path,
    )


def _compare(variant: PackageVariant, reference: PackageVariant) -> PackageVariant:
    return replace(
        variant,
        model_size_ratio=variant.model_size_bytes / reference.model_size_bytes,
        latency_ratio=variant.latency_ms / reference.latency_ms if reference.latency_ms > 0 else 1.0,
        metric_change={k: v - reference.metrics[k] for k, v in variant.metrics.items() if k in reference.metrics},
    )


def package_key(prefix: str, name: str, version: str, file_name: str) -> str:
    """`<prefix>/<name>/<version>/<file>`: one folder per registry version, never overwritten by the next."""
    parts = [prefix.strip("/"), name, version, file_name]
    return "/".join(part for part in parts if part)


def upload_packages(report: PackageReport, store: PackageStore, bucket: str, prefix: str = "models") -> PackageReport:
    """Upload every archive, then the report, under `<prefix>/<name>/<version>/`; returns the report with keys.

    The report goes last: once it is there, every archive it names is too. `bucket` is the store's
    bucket (a store that names its bucket must name this one), recorded for the job document.
    """
    store_bucket = getattr(store, "bucket", bucket)
    if store_bucket != bucket:
        raise ValueError(f"the store writes to bucket {store_bucket!r}, not {bucket!r}")
    uploaded = []
    for variant in report.variants:
        if variant.archive_path is None:
            raise ValueError(f"{variant.archive}: no local archive to upload")
        key = package_key(prefix, report.name, report.version, variant.archive)
        store.upload_file(variant.archive_path, key)
        uploaded.append(replace(variant, key=key))
    report_key = package_key(prefix, report.name, report.version, REPORT_NAME)
    result = replace(report, variants=uploaded, bucket=bucket, report_key=report_key)
    store.put_bytes(report_key, json.dumps(result.to_dict(), indent=2).encode() + b"\n")
    return result
