"""The ingest step's identity: the data folder's fingerprint, computed once per step."""

from __future__ import annotations

from pathlib import Path

import pytest

from system.cloud.pipeline import steps
from system.cloud.pipeline.steps import IngestStep, folder_fingerprint


def test_the_fingerprint_changes_with_any_file_and_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "1.png").write_bytes(b"a")
    before = folder_fingerprint(tmp_path)
    (tmp_path / "train" / "1.png").write_bytes(b"b")
    assert folder_fingerprint(tmp_path) != before

    calls: list[Path] = []
    monkeypatch.setattr(steps, "folder_fingerprint", lambda folder: calls.append(folder) or "f")
    step = IngestStep(tmp_path)
    assert step.params() == step.params() == {"fingerprint": "f"}
    assert step.fingerprint == "f" and calls == [tmp_path]
