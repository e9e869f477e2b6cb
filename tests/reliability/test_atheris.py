"""The atheris campaign (benchmarks/atheris_campaign.py) as `make reliability` runs it, in small: a
real target runs and counts, and a planted bug is caught, its input kept, and reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.atheris_campaign import available, run_target

pytestmark = pytest.mark.skipif(not available(), reason="atheris is installed on Linux x86_64 only (dev extra)")


def test_a_target_runs_from_its_seeds_and_finds_nothing(tmp_path: Path) -> None:
    result = run_target("archive", runs=300, seconds=60, crashes=tmp_path)
    assert not result.crashed, result.tail
    assert result.runs >= 300 and result.crash_files == []


def test_a_planted_bug_is_caught_and_its_input_kept(tmp_path: Path) -> None:
    result = run_target("planted", runs=100_000, seconds=60, crashes=tmp_path)
    assert result.crashed and "planted bug reached" in result.tail
    assert len(result.crash_files) == 1 and Path(result.crash_files[0]).read_bytes().startswith(b"!!")
