"""The `pytest11` plugin gives another project's test suite a cloud, a world and a device."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLE = """
def test_my_upgrade(edgesim_world, edgesim_device):
    job = edgesim_world.deploy(edgesim_world.document("img-classification", "1"))
    assert edgesim_world.wait_job(job)["status"] == "SUCCEEDED"
    assert {m.name for m in edgesim_device.roster.all()} == {"img-classification"}


def test_a_kill_fixture_is_there(edgesim_faults):
    assert callable(edgesim_faults.kill_at) and callable(edgesim_faults.crash)


def test_a_fleet_on_the_virtual_clock(edgesim_world, edgesim_fleet, edgesim_clock):
    fleet = edgesim_fleet(30, load_seconds=20.0)
    document = edgesim_world.light_document("img-classification", "1")
    job = edgesim_world.deploy(document, targets=[fleet.group_arn], rollout={"maximumPerMinute": 10})
    started = edgesim_clock.now()
    assert fleet.run_until(lambda: fleet.finished(job), max_seconds=3600)
    assert 120 <= edgesim_clock.now() - started < 600  # three rollout minutes of ten, on the clock
    assert dict(fleet.counts(job)) == {"SUCCEEDED": 30}


def test_a_wrong_expectation_fails(edgesim_device):
    assert edgesim_device.roster.all() != [], "a new device serves nothing: this test must fail"
"""


def test_another_project_uses_the_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_edge_code.py").write_text(EXAMPLE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_edge_code.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "1 failed, 3 passed" in done.stdout, done.stdout[-3000:]
    assert "test_a_wrong_expectation_fails" in done.stdout
