"""The OTA health check: one Predict on a golden input, outputs checked against the manifest."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from system.agent.package import Manifest
from system.agent.tensors import TensorSpec
from system.edge.health import HealthCheckError, HealthCheckSettings, check_model, golden_input

IDENTIFIER = "img-classification-2"
INPUT = TensorSpec("input_1", "FLOAT32", (1, 4, 4, 3))
PROBS = TensorSpec("probs", "FLOAT32", (-1, 2))
GOLDEN_OPTIONS = {"health": {"input": "health/input.npy", "expected": "health/expected.npy", "atol": 1e-4}}


class FakeInferenceClient:
    """An InferenceClient whose Predict records its calls and answers `outputs`.

    Limits: only `predict` works; the other calls of the port raise NotImplementedError.
    """

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self.outputs = dict(outputs)
        self.calls: list[tuple[str, dict[str, np.ndarray]]] = []

    def predict(self, name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        self.calls.append((name, dict(inputs)))
        return dict(self.outputs)

    def load_model(self, name: str, url: str) -> Any:
        raise NotImplementedError

    def unload_model(self, name: str) -> None:
        raise NotImplementedError

    def list_models(self) -> Sequence[Any]:
        raise NotImplementedError

    def capture_data(self, model_name: str, inputs: Any, outputs: Any, **options: Any) -> str:
        raise NotImplementedError


def manifest(
    outputs: tuple[TensorSpec, ...] = (PROBS,),
    options: dict[str, Any] | None = None,
    inputs: tuple[TensorSpec, ...] = (),
) -> Manifest:
    return Manifest(
        name="img-classification",
        version="2",
        framework="tflite",
        model="model.tflite",
        inputs=inputs or (INPUT,),
        outputs=outputs,
        files={},
        options=options or {},
    )


def probabilities(*rows: tuple[float, float], dtype: str = "float32") -> np.ndarray:
    return np.array(rows, dtype=dtype)


def run(
    outputs: Mapping[str, Any],
    *,
    model: Manifest | None = None,
    package_dir: Path = Path("/nonexistent-package"),
    **settings: Any,
) -> tuple[str, FakeInferenceClient]:
    client = FakeInferenceClient(outputs)
    summary = check_model(client, IDENTIFIER, model or manifest(), package_dir, HealthCheckSettings(**settings))
    return summary, client


def write_golden(package_dir: Path, inputs: np.ndarray, expected: np.ndarray) -> None:
    (package_dir / "health").mkdir(parents=True)
    np.save(package_dir / "health" / "input.npy", inputs)
    np.save(package_dir / "health" / "expected.npy", expected)


# Outputs as the manifest declares them


def test_healthy_outputs_pass_after_one_predict_on_a_generated_golden_input() -> None:
    summary, client = run({"probs": probabilities((0.9, 0.1))})
    assert summary == "1 output(s) as declared, finite"
    [(name, inputs)] = client.calls
    assert name == IDENTIFIER
    assert set(inputs) == {"input_1"}
    np.testing.assert_array_equal(inputs["input_1"], golden_input(INPUT, seed=0))


def test_every_declared_input_gets_a_golden_tensor() -> None:
    mask = TensorSpec("mask", "UINT8", (1, 4, 4))
    _, client = run({"probs": probabilities((0.9, 0.1))}, model=manifest(inputs=(INPUT, mask)))
    inputs = client.calls[0][1]
    assert inputs["input_1"].shape == (1, 4, 4, 3) and inputs["mask"].dtype == np.uint8


def test_a_missing_output_fails_naming_it_and_what_came_back() -> None:
    with pytest.raises(HealthCheckError, match=r"output 'probs' is missing \(got \['logits'\]\)"):
        run({"logits": probabilities((0.9, 0.1))})


def test_an_output_of_the_wrong_dtype_fails() -> None:
    with pytest.raises(HealthCheckError, match=r"'probs' is float64, the manifest declares FLOAT32"):
        run({"probs": probabilities((0.9, 0.1), dtype="float64")})


@pytest.mark.parametrize("shape", [(1, 3), (2,), (1, 1, 2)], ids=["wrong-dim", "fewer-dims", "more-dims"])
def test_an_output_of_the_wrong_shape_fails(shape: tuple[int, ...]) -> None:
    with pytest.raises(HealthCheckError, match=r"'probs' has shape .*, the manifest declares \(-1, 2\)"):
        run({"probs": np.full(shape, 0.5, dtype=np.float32)})


@pytest.mark.parametrize("batch", [1, 3])
def test_a_declared_dynamic_dimension_accepts_any_size(batch: int) -> None:
    summary, _ = run({"probs": np.full((batch, 2), 0.5, dtype=np.float32)})
    assert summary.startswith("1 output(s) as declared")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(HealthCheckError, match=r"'probs' has 1 non-finite value\(s\)"):
        run({"probs": probabilities((0.5, bad))})


def test_non_finite_values_pass_when_finiteness_is_not_required() -> None:
    summary, _ = run({"probs": probabilities((0.5, np.nan))}, require_finite=False)
    assert summary.startswith("1 output(s)")


def test_integer_outputs_are_not_checked_for_finiteness() -> None:
    labels = TensorSpec("label", "INT64", (1,))
    summary, _ = run({"label": np.array([1], dtype=np.int64)}, model=manifest(outputs=(labels,)))
    assert summary.startswith("1 output(s)")


def test_an_output_outside_the_configured_range_fails_naming_its_span() -> None:
    with pytest.raises(HealthCheckError, match=r"'probs' spans \[-0.5, 1.5\], outside \[0, 1\]"):
        run({"probs": probabilities((-0.5, 1.5))}, output_range=(0.0, 1.0))


def test_an_output_inside_the_range_bounds_passes() -> None:
    summary, _ = run({"probs": probabilities((0.0, 1.0))}, output_range=(0.0, 1.0))
    assert summary.startswith("1 output(s)")


def test_without_a_range_any_finite_value_passes() -> None:
    summary, _ = run({"probs": probabilities((-7.0, 42.0))})
    assert summary.startswith("1 output(s)")


def test_a_disabled_check_does_not_call_the_model() -> None:
    summary, client = run({}, enabled=False)
    assert summary == "health check disabled"
    assert client.calls == []


# The package's golden files (options.health)


def test_package_golden_input_is_sent_and_matching_outputs_pass(tmp_path: Path) -> None:
    golden = np.linspace(0, 1, 48, dtype=np.float32).reshape(1, 4, 4, 3)
    write_golden(tmp_path, golden, probabilities((0.25, 0.75)))
    summary, client = run(
        {"probs": probabilities((0.25 + 5e-5, 0.75))}, model=manifest(options=GOLDEN_OPTIONS), package_dir=tmp_path
    )
    assert summary == "1 output(s) as declared, finite, equal to the golden output"
    np.testing.assert_array_equal(client.calls[0][1]["input_1"], golden)


def test_outputs_differing_from_the_golden_ones_fail_naming_the_max_error(tmp_path: Path) -> None:
    write_golden(tmp_path, np.zeros((1, 4, 4, 3), np.float32), probabilities((0.25, 0.75)))
    with pytest.raises(HealthCheckError, match=r"'probs' differs from the package's golden output \(max error 0.5\)"):
        run({"probs": probabilities((0.75, 0.75))}, model=manifest(options=GOLDEN_OPTIONS), package_dir=tmp_path)


def test_a_golden_output_of_another_shape_fails_naming_both_shapes(tmp_path: Path) -> None:
    write_golden(tmp_path, np.zeros((1, 4, 4, 3), np.float32), probabilities((0.25, 0.75), (0.5, 0.5)))
    dynamic = manifest(outputs=(TensorSpec("probs", "FLOAT32", (-1, 2)),), options=GOLDEN_OPTIONS)
    with pytest.raises(HealthCheckError, match=r"has shape \(1, 2\), the golden output \(2, 2\)"):
        run({"probs": probabilities((0.25, 0.75))}, model=dynamic, package_dir=tmp_path)


def test_unsigned_golden_outputs_are_compared_without_wrapping_around(tmp_path: Path) -> None:
    write_golden(tmp_path, np.zeros((1, 4, 4, 3), np.float32), np.array([[200, 3]], dtype=np.uint8))
    counts = manifest(outputs=(TensorSpec("probs", "UINT8", (1, 2)),), options=GOLDEN_OPTIONS)
    with pytest.raises(HealthCheckError, match=r"max error 197\)"):
        run({"probs": np.array([[3, 3]], dtype=np.uint8)}, model=counts, package_dir=tmp_path)


def test_the_golden_tolerance_comes_from_the_manifest(tmp_path: Path) -> None:
    write_golden(tmp_path, np.zeros((1, 4, 4, 3), np.float32), probabilities((0.25, 0.75)))
    loose = {"health": {**GOLDEN_OPTIONS["health"], "atol": 0.1}}
    summary, _ = run({"probs": probabilities((0.3, 0.7))}, model=manifest(options=loose), package_dir=tmp_path)
    assert summary.endswith("equal to the golden output")


def test_a_golden_input_without_expected_outputs_checks_only_the_declared_shapes(tmp_path: Path) -> None:
    write_golden(tmp_path, np.ones((1, 4, 4, 3), np.float32), probabilities((0.25, 0.75)))
    options = {"health": {"input": "health/input.npy"}}
    summary, client = run({"probs": probabilities((0.9, 0.1))}, model=manifest(options=options), package_dir=tmp_path)
    assert summary == "1 output(s) as declared, finite"
    np.testing.assert_array_equal(client.calls[0][1]["input_1"], np.ones((1, 4, 4, 3), np.float32))


def test_package_golden_files_are_ignored_when_the_settings_say_so(tmp_path: Path) -> None:
    write_golden(tmp_path, np.ones((1, 4, 4, 3), np.float32), probabilities((0.25, 0.75)))
    summary, client = run(
        {"probs": probabilities((0.9, 0.1))},
        model=manifest(options=GOLDEN_OPTIONS),
        package_dir=tmp_path,
        use_package_golden=False,
    )
    assert summary == "1 output(s) as declared, finite"
    np.testing.assert_array_equal(client.calls[0][1]["input_1"], golden_input(INPUT, seed=0))


@pytest.mark.parametrize("escape", ["../outside.npy", "health/../../outside.npy", "/tmp/outside.npy"])
def test_a_golden_file_outside_the_package_is_refused_before_predict(tmp_path: Path, escape: str) -> None:
    package = tmp_path / "package"
    package.mkdir()
    np.save(tmp_path / "outside.npy", np.zeros((1, 4, 4, 3), np.float32))
    options = {"health": {"input": escape}}
    client = FakeInferenceClient({"probs": probabilities((0.9, 0.1))})
    with pytest.raises(HealthCheckError, match=r"is outside the package"):
        check_model(client, IDENTIFIER, manifest(options=options), package, HealthCheckSettings())
    assert client.calls == []


def test_an_unreadable_golden_file_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "health").mkdir()
    (tmp_path / "health" / "input.npy").write_bytes(b"not numpy")
    with pytest.raises(HealthCheckError, match=r"cannot read golden file 'health/input.npy'"):
        run({}, model=manifest(options=GOLDEN_OPTIONS), package_dir=tmp_path)


# golden_input


@pytest.mark.parametrize("dtype", ["FLOAT16", "FLOAT32", "FLOAT64", "UINT8", "INT16", "INT32", "INT64"])
def test_golden_input_is_the_same_for_the_same_seed_and_has_the_declared_dtype(dtype: str) -> None:
    spec = TensorSpec("x", dtype, (2, 8, 8))
    first, again = golden_input(spec, seed=7), golden_input(spec, seed=7)
    assert first.dtype == spec.numpy_dtype
    np.testing.assert_array_equal(first, again)


def test_golden_input_differs_between_seeds() -> None:
    spec = TensorSpec("x", "FLOAT32", (1, 16, 16, 3))
    assert not np.array_equal(golden_input(spec, seed=1), golden_input(spec, seed=2))


@pytest.mark.parametrize("dtype", ["FLOAT16", "FLOAT32", "FLOAT64"])
def test_golden_float_input_lies_in_zero_to_one_excluded(dtype: str) -> None:
    # 150,528 values: enough that FLOAT16 rounding would produce 1.0 if it were not clamped.
    values = golden_input(TensorSpec("x", dtype, (1, 224, 224, 3)), seed=0)
    assert values.min() >= 0.0 and values.max() < 1.0
    assert len(np.unique(values)) > 2  # spread over the interval, not a constant


@pytest.mark.parametrize("dtype", ["UINT8", "INT16", "INT32", "INT64"])
def test_golden_integer_input_holds_small_non_negative_integers(dtype: str) -> None:
    values = golden_input(TensorSpec("x", dtype, (64,)), seed=0)
    assert values.dtype == np.dtype(dtype.lower())
    assert set(np.unique(values).tolist()) <= {0, 1}


def test_golden_input_turns_dynamic_dimensions_into_one() -> None:
    assert golden_input(TensorSpec("x", "FLOAT32", (-1, 224, -1, 3)), seed=0).shape == (1, 224, 1, 3)
