"""Kill points (system/killpoints.py): arming rules, a real SIGKILL at the n-th pass, and every point of
the catalogue really placed on the path it names (an OTA upgrade, a rollback, data capture)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from system import killpoints
from system.config import load_settings
from system.errors import ConfigError
from system.killpoints import POINTS, kill_point, parse, recording
from tests.edge.test_ota_flows import deploy_and_wait
from tests.edge_world import EdgeWorld


def test_a_spec_names_a_catalogued_point_and_an_optional_count() -> None:
    assert parse("ota.switch.after") == ("ota.switch.after", 1, False)
    assert parse("atomic.journal.json.before-rename#3") == ("atomic.journal.json.before-rename", 3, False)
    assert parse("agent.load.registered#2@group") == ("agent.load.registered", 2, True)
    for bad, message in (("ota.nowhere", "unknown kill point"), ("ota.switch.after#x", "whole number"),
                         ("ota.switch.after#0", "at least 1"), ("ota.switch.after@host", "only scope")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            parse(bad)
    with pytest.raises(ConfigError, match="unknown kill point"):
        load_settings({"EDGESIM_KILL_AT": "ota.nowhere"})


def test_an_armed_process_dies_by_sigkill_at_the_nth_pass_and_says_where() -> None:
    script = (
        "import sys\n"
        "from system.killpoints import arm, kill_point\n"
        "arm('ota.switch.after#3')\n"
        "for n in range(1, 6):\n"
        "    print(n, flush=True)\n"
        "    kill_point('ota.switch.before')\n"
        "    kill_point('ota.switch.after')\n"
        "sys.exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    assert done.stdout.split() == ["1", "2", "3"]
    assert done.stderr.strip().endswith("edgesim: killed at ota.switch.after")


def test_a_group_kill_takes_down_the_whole_process_group_in_one_instant() -> None:
    script = (
        "import subprocess, sys\n"
        "from system.killpoints import arm, kill_point\n"
        "sibling = subprocess.Popen(['sleep', '60'])\n"  # same process group as this script
        "print(sibling.pid, flush=True)\n"
        "arm('ota.report.after@group')\n"
        "kill_point('ota.report.after')\n"
        "sys.exit(0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, process_group=0)
    assert done.returncode == -9
    sibling = int(done.stdout.split()[0])
    deadline = time.monotonic() + 5
    while _alive(sibling) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(sibling)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"  # a zombie waiting for init to reap it is dead
    except FileNotFoundError:
        return False


def test_a_point_not_armed_does_nothing_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unarmed, or armed elsewhere: no count, no write, no signal (one comparison, as the module says)."""

    class NoOs:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"a point that is not armed used os.{name}")

    monkeypatch.setattr("system.killpoints.os", NoOs())
    monkeypatch.setattr(killpoints, "_armed", None)
    kill_point("ota.switch.after")
    other = killpoints._Armed("ota.switch.before", 1, group=True)
    monkeypatch.setattr(killpoints, "_armed", other)
    for _ in range(3):
        kill_point("ota.switch.after")
    assert other.passes == 0


@pytest.mark.parametrize("world", ["fake"], indirect=True)
def test_every_point_of_the_catalogue_is_on_the_path_it_names(world: EdgeWorld) -> None:
    with recording() as passed:
        device = world.start_device(agent=world.agent(capture_to_s3=True), capture_fraction=1.0)
        assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
        assert deploy_and_wait(world, world.document("img-classification", "2"))["status"] == "SUCCEEDED"
        broken = deploy_and_wait(world, world.document("img-classification", "3", kind="broken"))
        assert broken["status"] == "FAILED"
        deadline = time.monotonic() + 20
        while "capture.batch.written" not in passed and time.monotonic() < deadline:
            time.sleep(0.05)
        device.stop()
    missing = sorted(set(POINTS) - set(passed))
    assert missing == [], f"kill points never passed: {missing}"
    # atomic.<file>.* names come from the file written: only models_config.json and the journal are catalogued.
    stray = sorted(p for p in set(passed) - set(POINTS) if not p.startswith("atomic."))
    assert stray == [], f"points placed but not catalogued: {stray}"
