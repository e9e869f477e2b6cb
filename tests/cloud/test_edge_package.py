"""The edge package round trip: build, archive, sign, extract as a device does, load in the agent.

The SavedModel package must give the Keras model's outputs within 1e-5, like the float TFLite one.
Quantised TFLite packages trade accuracy for size; on this model's softmax probabilities, over
inputs drawn like the calibration set, float16 stays within FLOAT16_ATOL and int8 within INT8_ATOL
(measured: float TFLite 6e-8, float16 1.3e-5, int8 3.0e-3 max |diff| over 40 inputs).
"""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from system.agent.package import MANIFEST, Preprocessing, read_package
from system.cloud.edge_package import ARCHIVE_MTIME, PackageReport, archive_package, build_edge_packages
from system.cloud.packaging import export_package
from system.edge.archive import extract_package
from system.signing import SignatureError, file_sha256, verify_digest

FLOAT_ATOL = 1e-5
FLOAT16_ATOL = 1e-2
INT8_ATOL = 2e-2
TOLERANCES = {"none": FLOAT_ATOL, "float16": FLOAT16_ATOL, "int8": INT8_ATOL}
SIZE = 32
LABELS = ["normal", "anomalous"]


def _classifier() -> Any:
    """Big enough (~15k weights) that the weights, not the file format's overhead, set the size."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3), name="input_image")
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


class Built:
    """One model packaged with each quantisation (built once for the module: ~1 s a build)."""

    def __init__(self, root: Path) -> None:
        rng = np.random.default_rng(0)
        self.model = _classifier()
        self.calibration = rng.random((64, SIZE, SIZE, 3), dtype=np.float32)
        self.eval_x = rng.random((40, SIZE, SIZE, 3), dtype=np.float32)
        self.eval_y = rng.integers(0, 2, len(self.eval_x))
        self.key = Ed25519PrivateKey.generate()
        self.evaluated: list[str] = []
        self.reports: dict[str, PackageReport] = {}
        for quantization in ("none", "float16", "int8"):
            self.reports[quantization] = build_edge_packages(
                self.model,
                root / quantization,
                name="img-classification",
                version="3",
                preprocessing=Preprocessing(height=SIZE, width=SIZE),
                labels=LABELS,
                quantization=quantization,
                calibration=self.calibration,
                evaluate=self.evaluate,
                benchmark_input=self.eval_x[:1],
                signing_key=self.key,
            )

    def evaluate(self, predict: Any) -> dict[str, float]:
        probabilities = predict(self.eval_x)
        assert probabilities.shape == (len(self.eval_x), 2)
        self.evaluated.append("called")
        return {
            "accuracy": float(np.mean(probabilities.argmax(axis=1) == self.eval_y)),
            "mean_anomalous": float(probabilities[:, 1].mean()),
        }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("edge-packages"))


def _install(archive: Path, root: Path, name: str, version: str) -> Path:
    """What the device's EXTRACT step does: `model/dev/<name>/<version>/`, verified."""
    dest = root / "model" / "dev" / name / version
    dest.parent.mkdir(parents=True)
    extract_package(archive, dest)
    read_package(str(dest))
    return dest


def _agent_outputs(start_agent: Any, package: Path, inputs: np.ndarray) -> np.ndarray:
    _, client = start_agent()
    client.load_model("img-classification-3", str(package))
    output = read_package(str(package)).manifest.outputs[0].name
    return np.concatenate(
        [client.predict("img-classification-3", inputs[i : i + 1])[output] for i in range(len(inputs))]
    )


@pytest.mark.slow
def test_savedmodel_package_in_the_agent_gives_the_keras_outputs(
    built: Built, start_agent: Any, tmp_path: Path
) -> None:
    variant = built.reports["none"].variant("tensorflow")
    assert variant.archive == "img-classification-3.tar.gz" and variant.archive_path is not None
    package = _install(variant.archive_path, tmp_path, "img-classification", "3")
    x = built.eval_x[:5]
    expected = built.model(x, training=False).numpy()
    np.testing.assert_allclose(_agent_outputs(start_agent, package, x), expected, atol=FLOAT_ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("quantization", ["none", "float16", "int8"])
def test_tflite_package_in_the_agent_is_within_its_tolerance(
    built: Built, start_agent: Any, tmp_path: Path, quantization: str
) -> None:
    variant = built.reports[quantization].variant("tflite")
    suffix = "" if quantization == "none" else f"-{quantization}"
    assert variant.archive == f"img-classification-3-tflite{suffix}.tar.gz" and variant.archive_path is not None
    package = _install(variant.archive_path, tmp_path, "img-classification", "3")
    x = built.eval_x[:20]
    expected = built.model(x, training=False).numpy()
    actual = _agent_outputs(start_agent, package, x)
    assert actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected, atol=TOLERANCES[quantization], rtol=0)


@pytest.mark.slow
def test_quantised_package_keeps_the_float_interface(built: Built) -> None:
    reference = read_package(str(built.reports["none"].variant("tflite").package_dir)).manifest
    for quantization in ("float16", "int8"):
        manifest = read_package(str(built.reports[quantization].variant("tflite").package_dir)).manifest
        assert manifest.inputs == reference.inputs and manifest.outputs == reference.outputs
        assert manifest.inputs[0].dtype == "FLOAT32" and manifest.outputs[0].dtype == "FLOAT32"
        assert manifest.preprocessing == reference.preprocessing == Preprocessing(height=SIZE, width=SIZE)
        assert list(manifest.labels) == LABELS
        assert manifest.options == {"quantization": quantization}


@pytest.mark.slow
def test_report_has_sizes_latencies_and_metric_changes(built: Built) -> None:
    float_tflite = built.reports["none"].variant("tflite")
    float16 = built.reports["float16"].variant("tflite")
    int8 = built.reports["int8"].variant("tflite")
    assert int8.model_size_bytes < float16.model_size_bytes < float_tflite.model_size_bytes
    assert int8.model_size_bytes < 0.5 * float_tflite.model_size_bytes
    assert len(built.evaluated) == 6  # every variant of every build was evaluated
    for report in built.reports.values():
        reference, tflite = report.variants
        assert reference.framework == "tensorflow" and reference.model_size_ratio == 1.0
        assert reference.metric_change == {"accuracy": 0.0, "mean_anomalous": 0.0}
        assert tflite.model_size_ratio == pytest.approx(tflite.model_size_bytes / reference.model_size_bytes)
        assert tflite.latency_ratio == pytest.approx(tflite.latency_ms / reference.latency_ms)
        for variant in report.variants:
            assert variant.latency_ms > 0 and variant.size_bytes == variant.archive_path.stat().st_size  # type: ignore[union-attr]
            assert set(variant.metric_change) == set(variant.metrics) == {"accuracy", "mean_anomalous"}
        change = tflite.metric_change["mean_anomalous"]
        assert change == pytest.approx(tflite.metrics["mean_anomalous"] - reference.metrics["mean_anomalous"])
        assert abs(change) <= TOLERANCES[tflite.quantization]
        assert tflite.output_max_abs_diff <= TOLERANCES[tflite.quantization]
    as_json = json.loads(json.dumps(built.reports["int8"].to_dict()))
    assert [v["quantization"] for v in as_json["variants"]] == ["none", "int8"]
    assert {"sha256", "size_bytes", "model_size_bytes", "latency_ms", "metric_change", "signature"} <= set(
        as_json["variants"][1]
    )
    assert "archive_path" not in as_json["variants"][1]


@pytest.mark.slow
def test_archives_are_deterministic_and_extract_with_the_device_extractor(built: Built, tmp_path: Path) -> None:
    variant = built.reports["none"].variant("tensorflow")
    assert variant.package_dir is not None and variant.archive_path is not None
    again = archive_package(variant.package_dir, tmp_path / "other-name.tar.gz")
    assert again.read_bytes() == variant.archive_path.read_bytes()
    assert file_sha256(again) == variant.sha256
    with tarfile.open(again) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and MANIFEST in names and "saved_model/saved_model.pb" in names
    assert all(not n.startswith(("/", "./")) and ".." not in n for n in names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(ARCHIVE_MTIME, 0, 0, "", "")}
    assert {m.mode for m in members if m.isfile()} == {0o644}
    extracted = extract_package(again, tmp_path / "extracted")
    assert read_package(str(extracted)).manifest.files == read_package(str(variant.package_dir)).manifest.files


@pytest.mark.slow
def test_signatures_verify_against_the_archive_digest(built: Built) -> None:
    public = built.key.public_key()
    for report in built.reports.values():
        for variant in report.variants:
            assert variant.signature is not None
            signature = base64.b64decode(variant.signature)
            verify_digest(public, signature, file_sha256(variant.archive_path))  # type: ignore[arg-type]
            with pytest.raises(SignatureError):
                verify_digest(public, signature, "0" * 64)
    signed = built.reports["int8"].variant("tflite")
    assert signed.signature is not None
    with pytest.raises(SignatureError):
        verify_digest(Ed25519PrivateKey.generate().public_key(), base64.b64decode(signed.signature), signed.sha256)


def test_archive_refuses_links(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "model.tflite").write_bytes(b"x")
    (folder / "link").symlink_to(folder / "model.tflite")
    with pytest.raises(ValueError, match="regular files"):
        archive_package(folder, tmp_path / "pkg.tar.gz")


def test_same_folder_gives_the_same_archive_bytes(tmp_path: Path) -> None:
    folder = tmp_path / "pkg"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.bin").write_bytes(b"b" * 1000)
    (folder / "sub" / "a.txt").write_text("a")
    first = archive_package(folder, tmp_path / "one.tar.gz").read_bytes()
    (folder / "b.bin").touch()  # a new mtime changes nothing
    assert archive_package(folder, tmp_path / "two.tar.gz").read_bytes() == first
    with tarfile.open(tmp_path / "two.tar.gz") as tar:
        assert tar.getnames() == ["b.bin", "sub", "sub/a.txt"]


@pytest.mark.parametrize(
    ("framework", "quantization", "message"),
    [
        ("tflite", "int8", "needs calibration"),
        ("tflite", "int4", "quantization must be one of"),
        ("tensorflow", "float16", "applies to the tflite framework"),
    ],
)
def test_bad_quantization_requests_fail_before_exporting(
    tmp_path: Path, framework: str, quantization: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        export_package(
            object(), tmp_path / "pkg", name="m", version="1", framework=framework, quantization=quantization
        )
    assert not (tmp_path / "pkg").exists()


def test_build_refuses_int8_without_calibration_before_exporting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs calibration"):
        build_edge_packages(
            object(), tmp_path / "w", name="m", version="1", preprocessing=None, labels=None, quantization="int8"
        )
    assert not (tmp_path / "w").exists()
