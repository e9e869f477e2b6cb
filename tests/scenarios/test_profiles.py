"""Every scenario declares the profiles it runs on, and an unsupported profile is refused at once (issue 10)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from scenarios.runner import declared_profiles, discover, run_scenario
from system.config import PROFILES
from system.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_every_scenario_declares_known_profiles_in_its_module() -> None:
    catalog = discover()
    assert len(catalog) >= 17
    for name, scenario in catalog.items():
        assert isinstance(vars(scenario.module).get("PROFILES"), tuple), f"{name} does not declare PROFILES"
        assert scenario.profiles and set(scenario.profiles) <= set(PROFILES), name
        assert "fake" in scenario.profiles, f"{name}: every scenario must run on the embedded profile (CI)"


@pytest.mark.parametrize("value", [None, (), ("fake", "staging"), ["fake"]])
def test_a_module_without_a_valid_profiles_declaration_is_refused(value: object) -> None:
    module = types.ModuleType("scenarios.example")
    if value is not None:
        module.PROFILES = value  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"scenarios\.example must declare PROFILES"):
        declared_profiles(module)


def test_every_scenario_refuses_a_profile_it_does_not_declare_before_starting_anything() -> None:
    for name, scenario in discover().items():
        for profile in set(PROFILES) - set(scenario.profiles):
            started = time.monotonic()
            with pytest.raises(ConfigError, match=re.escape(f"runs on {', '.join(scenario.profiles)}, not {profile}")):
                run_scenario(name, profile=profile)
            assert time.monotonic() - started < 5, name


def test_the_aws_profile_without_credentials_fails_fast_with_a_message(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "system.cli", "scenario", "run", "first-deployment", "--profile", "aws"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "first-deployment runs on fake, local, not aws" in done.stderr
    assert time.monotonic() - started < 30
