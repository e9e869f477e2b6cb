"""The edge app's continuous inference against a real agent: verdicts, masks, captures, failures, swaps."""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from simulators.camera import SyntheticCamera
from system.config import CaptureSettings
from system.edge.image_source import FolderImageSource, Frame, ImageSourceError
from system.edge.inference import InferenceEngine
from system.edge.inference_loop import InferenceLoop
from system.edge.results import InferenceResult
from system.edge.roster import ModelRoster
from tests.edge_fixtures import (
    export_broken_package,
    export_classifier_package,
    export_segmenter_package,
    serving_model,
    write_images,
)

CLF_1, CLF_2, SEG_1 = "img-classification-1", "img-classification-2", "unet-1"


@dataclass(frozen=True)
class Packages:
    classifier_1: Path
    classifier_2: Path
    segmenter_1: Path
    broken: Path


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    root = tmp_path_factory.mktemp("edge-packages")
    return Packages(
        classifier_1=export_classifier_package(root / "clf-1", "1", seed=1),
        classifier_2=export_classifier_package(root / "clf-2", "2", seed=2),
        segmenter_1=export_segmenter_package(root / "unet-1", "1"),
        broken=export_broken_package(root / "broken", "9"),
    )


@dataclass
class Device:
    agent: Any
    client: Any
    roster: ModelRoster
    capture_dir: Path

    def serve(self, package: Path, identifier: str) -> None:
        self.client.load_model(identifier, str(package))
        self.roster.switch(serving_model(package, identifier))


@pytest.fixture
def device(start_agent, short_tmp: Path, packages: Packages) -> Device:
    capture_dir = short_tmp / "disk"
    settings = CaptureSettings(
        disk_path=str(capture_dir), push_period_seconds=0.1, fleet_name="line-1", device_name="dev-7"
    )
    agent, client = start_agent(capture=settings)
    dev = Device(agent, client, ModelRoster(), capture_dir)
    dev.serve(packages.classifier_1, CLF_1)
    dev.serve(packages.segmenter_1, SEG_1)
    return dev


class Collector:
    """on_result callback: keeps results and signals when `wanted` of them have arrived."""

    def __init__(self, wanted: int) -> None:
        self.results: list[InferenceResult] = []
        self.wanted = wanted
        self.enough = threading.Event()

    def __call__(self, result: InferenceResult) -> None:
        self.results.append(result)
        if len(self.results) >= self.wanted:
            self.enough.set()

    def wait_for(self, wanted: int, timeout: float = 20.0) -> list[InferenceResult]:
        self.enough.clear()  # it may have been set for an earlier, smaller `wanted`
        self.wanted = wanted
        if len(self.results) >= wanted:
            self.enough.set()
        assert self.enough.wait(timeout), f"only {len(self.results)} of {wanted} results in {timeout} s"
        return list(self.results)


def _frame(seed: int = 0) -> Frame:
    return SyntheticCamera(seed=seed, size=(96, 160)).next_frame()


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_loop_gives_a_verdict_and_a_mask_per_frame_at_the_rate(device: Device, tmp_path: Path) -> None:
    names = write_images(tmp_path, 5, (64, 96))
    collector = Collector(6)
    engine = InferenceEngine(device.client, device.roster, on_result=collector)
    loop = InferenceLoop(engine, FolderImageSource(tmp_path), rate_hz=10.0)
    loop.start()
    try:
        results = collector.wait_for(6)
    finally:
        assert loop.stop(timeout=5)
    assert not loop.running and loop.errors == 0
    assert [r.sequence for r in results] == list(range(1, len(results) + 1))
    assert [r.image_name for r in results[:6]] == names + names[:1]  # sorted cycle
    span = results[5].timestamp - results[0].timestamp
    assert 5 * 0.1 * 0.8 <= span < 5.0  # 10 Hz: five periods between the first and the sixth
    for result in results:
        assert result.errors == () and not result.captured
        clf, seg = result.classification, result.segmentation
        assert clf is not None and seg is not None
        assert clf.model == CLF_1 and clf.label in ("normal", "anomalous") and clf.latency_ms > 0
        assert set(clf.probabilities) == {"normal", "anomalous"}
        assert clf.label == max(clf.probabilities, key=lambda k: clf.probabilities[k])
        assert seg.model == SEG_1 and seg.threshold == 0.5 and 0 <= seg.defect_fraction <= 1
        assert _decode(seg.mask_png).size == (32, 32)  # the model's resolution
        assert _decode(seg.overlay_png).size == _decode(result.image_png).size == (64, 96)
    assert any(r.segmentation and r.segmentation.defect_fraction > 0 for r in results)


def test_history_is_bounded_and_newest_first(device: Device) -> None:
    engine = InferenceEngine(device.client, device.roster, history=3)
    for seed in range(5):
        engine.infer(_frame(seed))
    assert [r.sequence for r in engine.recent()] == [5, 4, 3]
    assert [r.sequence for r in engine.recent(2)] == [5, 4]
    latest = engine.latest()
    assert latest is not None and latest.sequence == 5 and engine.count == 5


def _captured_records(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """(path relative to root, record) for every capture the agent wrote to disk."""
    return [
        (path.relative_to(root).as_posix(), json.loads(line))
        for path in sorted(root.rglob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_capture_fraction_one_captures_both_models_in_the_edge_manager_layout(device: Device) -> None:
    engine = InferenceEngine(device.client, device.roster, capture_fraction=1.0)
    results = [engine.infer(_frame(seed)) for seed in range(3)]
    assert all(r.captured for r in results) and engine.captures == 6 and engine.capture_errors == 0
    deadline = time.monotonic() + 10
    while len(_captured_records(device.capture_dir)) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    records = _captured_records(device.capture_dir)
    assert len(records) == 6
    hour = time.strftime("%Y/%m/%d/%H", time.gmtime(results[0].timestamp))
    by_model: dict[str, int] = {}
    for path, record in records:
        prefix, fleet, model, *_ = path.split("/")
        assert (prefix, fleet) == ("edge-agent-inference-data-capture", "line-1")
        assert path.startswith(f"{prefix}/{fleet}/{model}/{hour}/dev-7-")
        by_model[model] = by_model.get(model, 0) + 1
        (inp,) = record["deviceFleetInputs"]
        assert inp["name"] == "input_image" and inp["observedContentType"] == "Tensor[FLOAT32; 1, 32, 32, 3]"
    assert by_model == {CLF_1: 3, SEG_1: 3}


def test_capture_fraction_zero_captures_nothing(device: Device) -> None:
    engine = InferenceEngine(device.client, device.roster, capture_fraction=0.0)
    results = [engine.infer(_frame(seed)) for seed in range(3)]
    device.agent.stop(grace=1.0)  # flushes whatever was buffered
    assert not any(r.captured for r in results) and engine.captures == 0
    assert _captured_records(device.capture_dir) == []


def test_partial_capture_fraction_is_reproducible_per_seed(device: Device) -> None:
    def captured(seed: int) -> list[bool]:
        engine = InferenceEngine(device.client, device.roster, capture_fraction=0.5, rng_seed=seed)
        return [engine.infer(_frame(0)).captured for _ in range(8)]

    first = captured(11)
    assert first == captured(11) and 0 < sum(first) < 8


def test_model_removed_from_roster_gives_no_result_for_its_app_and_no_error(device: Device) -> None:
    device.roster.remove("unet")
    result = InferenceEngine(device.client, device.roster).infer(_frame())
    assert result.segmentation is None and result.errors == ()
    assert result.classification is not None


def test_nothing_deployed_gives_an_empty_result(start_agent) -> None:
    _, client = start_agent()
    result = InferenceEngine(client, ModelRoster()).infer(_frame())
    assert result.classification is None and result.segmentation is None and result.errors == ()
    assert _decode(result.image_png).size == (96, 160)


def test_failing_model_is_reported_while_the_other_app_works(device: Device, packages: Packages) -> None:
    device.serve(packages.broken, "img-classification-9")
    engine = InferenceEngine(device.client, device.roster)
    result = engine.infer(_frame())
    assert result.classification is None and result.segmentation is not None
    (error,) = result.errors
    assert error.startswith("img-classification-9: postprocess failed") and "NaN" in error
    assert engine.errors == 1


def test_model_missing_from_the_agent_is_an_error_not_a_retry_loop(device: Device, packages: Packages) -> None:
    device.roster.switch(serving_model(packages.classifier_2, "img-classification-404"))  # never loaded
    result = InferenceEngine(device.client, device.roster).infer(_frame())
    (error,) = result.errors
    assert "img-classification-404: predict failed" in error and "NOT_FOUND" in error
    assert result.segmentation is not None


class SwapBeforePredict:
    """The real client, except that the first Predict on `old` is preceded by an OTA swap to `new`:
    load the new version, switch the roster, unload the old one. This is the window between the
    engine's roster read and its Predict, made to happen every time."""

    def __init__(self, device: Device, old: str, package: Path, new: str) -> None:
        self.device, self.old, self.package, self.new = device, old, package, new
        self.predicts: list[str] = []

    def predict(self, name: str, inputs: Any, *, shared_memory: bool = False) -> dict[str, Any]:
        if name == self.old and not self.predicts.count(self.old):
            self.device.serve(self.package, self.new)
            self.device.client.unload_model(self.old)
        self.predicts.append(name)
        return dict(self.device.client.predict(name, inputs, shared_memory=shared_memory))

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.device.client, attribute)


def test_model_swapped_between_roster_read_and_predict_is_retried_with_the_new_one(
    device: Device, packages: Packages
) -> None:
    client = SwapBeforePredict(device, CLF_1, packages.classifier_2, CLF_2)
    engine = InferenceEngine(client, device.roster)  # type: ignore[arg-type]
    result = engine.infer(_frame())
    assert result.errors == () and engine.errors == 0
    assert result.classification is not None and result.classification.model == CLF_2
    assert result.classification.version == "2"
    assert client.predicts[:2] == [CLF_1, CLF_2]


def test_hot_swap_during_the_loop_gives_zero_errors(device: Device, packages: Packages) -> None:
    collector = Collector(3)
    engine = InferenceEngine(device.client, device.roster, on_result=collector)
    loop = InferenceLoop(engine, SyntheticCamera(seed=3, size=(64, 96)), rate_hz=100.0)
    loop.start()
    try:
        collector.wait_for(3)
        device.serve(packages.classifier_2, CLF_2)
        device.client.unload_model(CLF_1)
        swapped_at = len(collector.results)
        results = collector.wait_for(swapped_at + 5)
    finally:
        assert loop.stop(timeout=5)
    assert loop.errors == 0 and engine.errors == 0
    assert all(r.errors == () and r.classification and r.segmentation for r in results)
    models = [r.classification.model for r in results if r.classification]
    assert models[0] == CLF_1 and models[-1] == CLF_2
    assert models == sorted(models)  # never back to the old one


class FlakySource:
    """Fails on the frames listed in `failures`, else gives a small grey frame."""

    def __init__(self, failures: set[int]) -> None:
        self.failures, self.calls = failures, 0

    def next_frame(self) -> Frame:
        self.calls += 1
        if self.calls in self.failures:
            raise ImageSourceError("camera unplugged")
        return Frame(f"grey/{self.calls}", Image.new("RGB", (8, 8), (128, 128, 128)))


def test_loop_survives_source_failures_and_counts_them(start_agent) -> None:
    _, client = start_agent()
    collector = Collector(3)
    engine = InferenceEngine(client, ModelRoster(), on_result=collector)
    loop = InferenceLoop(engine, FlakySource({1, 2}), rate_hz=50.0)
    loop.start()
    try:
        collector.wait_for(3, timeout=10)
    finally:
        assert loop.stop(timeout=5)
    assert loop.errors == 2 and loop.frames >= 3
    assert loop.last_error == "ImageSourceError: camera unplugged"


def test_rate_zero_pauses_and_stop_is_immediate(start_agent) -> None:
    _, client = start_agent()
    source = FlakySource(set())
    loop = InferenceLoop(InferenceEngine(client, ModelRoster()), source, rate_hz=0.0)
    loop.start()
    time.sleep(0.2)
    assert source.calls == 0 and loop.running
    loop.rate_hz = 0.05  # one frame now, the next in 20 s
    deadline = time.monotonic() + 5
    while loop.frames < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert loop.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert loop.frames == 1 and not loop.running


def test_bad_settings_are_refused(start_agent) -> None:
    _, client = start_agent()
    with pytest.raises(ValueError, match="capture_fraction"):
        InferenceEngine(client, ModelRoster(), capture_fraction=1.5)
    with pytest.raises(ValueError, match="history"):
        InferenceEngine(client, ModelRoster(), history=0)
    with pytest.raises(ValueError, match="rate_hz"):
        InferenceLoop(InferenceEngine(client, ModelRoster()), FlakySource(set()), rate_hz=-1)
