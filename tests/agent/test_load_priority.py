"""Fast GIL hand-off while a model loads (system/agent/load_priority.py) and its use by ModelTable.load."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from system.agent.load_priority import fast_gil_handoff
from system.agent.models import ModelTable
from system.agent.package import VerifiedPackage, write_manifest
from system.agent.runtimes import ModelRuntime
from system.agent.tensors import TensorSpec
from system.config import AgentSettings
from system.errors import PackageRejectedError

PYTHON_DEFAULT = 0.005  # sys.getswitchinterval() of a fresh interpreter
FAST = 0.0005  # AgentSettings.load_switch_interval_ms (0.5) in seconds
WAIT = 5.0  # seconds an Event may take before the test fails instead of hanging


@pytest.fixture(autouse=True)
def default_switch_interval() -> Iterator[None]:
    """Each test starts at Python's default interval; whatever it had is put back afterwards."""
    original = sys.getswitchinterval()
    sys.setswitchinterval(PYTHON_DEFAULT)
    try:
        yield
    finally:
        sys.setswitchinterval(original)


def test_interval_is_fast_inside_and_restored_after() -> None:
    with fast_gil_handoff(FAST):
        assert sys.getswitchinterval() == pytest.approx(FAST)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def test_zero_leaves_the_interval_unchanged() -> None:
    with fast_gil_handoff(0):
        assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def test_an_already_lower_interval_is_never_raised() -> None:
    sys.setswitchinterval(0.00025)  # 250 us: survives a get/set round trip (see the next test)
    with fast_gil_handoff(FAST):
        assert sys.getswitchinterval() == pytest.approx(0.00025)
    assert sys.getswitchinterval() == pytest.approx(0.00025)


@pytest.mark.parametrize("microseconds", [200, 501, 5000])
def test_an_interval_is_restored_exactly_even_where_python_truncates_it(microseconds: int) -> None:
    # Python stores whole microseconds and truncates: setswitchinterval(getswitchinterval()) turns 501 into 500.
    sys.setswitchinterval(microseconds * 1e-6)
    before = sys.getswitchinterval()
    with fast_gil_handoff(FAST):
        pass
    assert sys.getswitchinterval() == before


def test_interval_is_restored_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError, match="load failed"), fast_gil_handoff(FAST):
        raise RuntimeError("load failed")
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def test_nested_use_keeps_the_fast_interval_until_the_outer_block_ends() -> None:
    with fast_gil_handoff(FAST):
        with fast_gil_handoff(FAST):
            assert sys.getswitchinterval() == pytest.approx(FAST)
        assert sys.getswitchinterval() == pytest.approx(FAST)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def _hold_handoff(entered: threading.Event, release: threading.Event) -> threading.Thread:
    """A thread inside `fast_gil_handoff` from `entered` until `release` is set."""

    def body() -> None:
        with fast_gil_handoff(FAST):
            entered.set()
            release.wait(WAIT)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


def test_concurrent_loads_keep_the_fast_interval_until_the_last_one_leaves() -> None:
    first_in, first_out = threading.Event(), threading.Event()
    second_in, second_out = threading.Event(), threading.Event()
    try:
        first = _hold_handoff(first_in, first_out)
        assert first_in.wait(WAIT)
        second = _hold_handoff(second_in, second_out)
        assert second_in.wait(WAIT)
        assert sys.getswitchinterval() == pytest.approx(FAST)

        first_out.set()
        first.join(WAIT)
        assert not first.is_alive()
        assert sys.getswitchinterval() == pytest.approx(FAST)  # the second load is still running

        second_out.set()
        second.join(WAIT)
        assert not second.is_alive()
        assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)
    finally:
        first_out.set()
        second_out.set()


class IntervalRecordingRuntime:
    """A fake runtime that records the switch interval at each run (the warm-up is one)."""

    def __init__(self, intervals: list[float]) -> None:
        self.intervals = intervals

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        self.intervals.append(sys.getswitchinterval())
        return [np.zeros((1, 2), dtype=np.float32)]

    def close(self) -> None:
        pass


def recording_opener(intervals: list[float]) -> Callable[[VerifiedPackage, AgentSettings], ModelRuntime]:
    """An opener that records the switch interval while it opens, then returns a recording runtime."""

    def opener(package: VerifiedPackage, settings: AgentSettings) -> ModelRuntime:
        intervals.append(sys.getswitchinterval())
        return IntervalRecordingRuntime(intervals)

    return opener


@pytest.fixture
def fake_package(tmp_path: Path) -> str:
    """A package that passes verification; its model file is opened only by fake openers."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not a real model")
    spec = [TensorSpec("x", "FLOAT32", (1, 2))]
    write_manifest(folder, name="fake", version="1", framework="onnx", model="model.onnx", inputs=spec, outputs=spec)
    return str(folder)


def test_model_load_opens_and_warms_up_with_the_fast_interval(fake_package: str) -> None:
    intervals: list[float] = []
    table = ModelTable(AgentSettings(), opener=recording_opener(intervals))
    table.load("fake", fake_package)
    assert intervals == pytest.approx([FAST, FAST])  # open, then warm-up
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def test_model_load_with_zero_setting_keeps_the_python_default(fake_package: str) -> None:
    intervals: list[float] = []
    table = ModelTable(replace(AgentSettings(), load_switch_interval_ms=0), opener=recording_opener(intervals))
    table.load("fake", fake_package)
    assert intervals == pytest.approx([PYTHON_DEFAULT, PYTHON_DEFAULT])
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)


def test_failed_model_load_still_restores_the_interval(fake_package: str) -> None:
    def failing_opener(package: VerifiedPackage, settings: AgentSettings) -> ModelRuntime:
        raise PackageRejectedError(f"package '{package.folder}': cannot open")

    table = ModelTable(AgentSettings(), opener=failing_opener)
    with pytest.raises(PackageRejectedError, match="cannot open"):
        table.load("fake", fake_package)
    assert sys.getswitchinterval() == pytest.approx(PYTHON_DEFAULT)
    assert table.list() == []
