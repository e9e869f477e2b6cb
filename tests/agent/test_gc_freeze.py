"""Freezing a framework's objects out of garbage collection (system/agent/gc_freeze.py).

`gc.freeze()` is process-wide and cannot be taken back without unfreezing everything, so each
test runs its scenario in a fresh interpreter and reads the facts it printed as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

FREEZE_ONCE_PER_FRAMEWORK = """
    import gc, json
    from system.agent.gc_freeze import freeze_framework

    facts = {"before": gc.get_freeze_count()}
    facts["first"] = freeze_framework("tensorflow")
    facts["after_first"] = gc.get_freeze_count()
    keep = [[] for _ in range(1000)]  # would be frozen too by a second gc.freeze()
    facts["again"] = freeze_framework("tensorflow")
    facts["after_again"] = gc.get_freeze_count()
    facts["other"] = freeze_framework("tflite")
    facts["after_other"] = gc.get_freeze_count()
    print(json.dumps(facts))
"""

# open_runtime with the framework import replaced by a fake runtime (importing a real framework
# costs seconds); `sys.argv[1]` is EDGESIM_AGENT_GC_FREEZE's value.
OPEN_TWICE = """
    import gc, json, sys
    from pathlib import Path

    import system.agent.runtimes as runtimes
    from system.agent.package import Manifest, VerifiedPackage
    from system.agent.tensors import TensorSpec
    from system.config import load_settings

    class FakeRuntime:
        def __init__(self, package):
            self.frozen_at_open = gc.get_freeze_count()

        def run(self, inputs):
            return inputs

        def close(self):
            pass

    runtimes._opener = lambda framework, settings: FakeRuntime
    spec = (TensorSpec("x", "FLOAT32", (1, 2)),)
    package = VerifiedPackage(Path("."), Manifest("fake", "1", "tflite", "model.tflite", spec, spec, {}), 0)
    settings = load_settings({"EDGESIM_AGENT_GC_FREEZE": sys.argv[1]}).agent

    first = runtimes.open_runtime(package, settings)
    facts = {"at_first_open": first.frozen_at_open, "after_first": gc.get_freeze_count()}
    keep = [[] for _ in range(1000)]  # would be frozen too by a second gc.freeze()
    runtimes.open_runtime(package, settings)
    facts["after_second"] = gc.get_freeze_count()
    print(json.dumps(facts))
"""


def run_fresh_python(script: str, *args: str) -> dict[str, Any]:
    """Run `script` in a new interpreter; the JSON object it printed on its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return facts


def test_each_framework_freezes_once_per_process() -> None:
    facts = run_fresh_python(FREEZE_ONCE_PER_FRAMEWORK)
    assert facts["before"] == 0
    assert facts["first"] is True
    assert facts["after_first"] > 0
    assert facts["again"] is False
    assert facts["after_again"] == facts["after_first"]
    assert facts["other"] is True
    assert facts["after_other"] >= facts["after_again"] + 1000


def test_open_runtime_freezes_before_the_first_open_of_a_framework_only() -> None:
    facts = run_fresh_python(OPEN_TWICE, "true")
    assert facts["at_first_open"] > 0  # frozen before the model's own objects exist
    assert facts["after_first"] == facts["at_first_open"]
    assert facts["after_second"] == facts["after_first"]


def test_open_runtime_does_not_freeze_when_gc_freeze_is_off() -> None:
    facts = run_fresh_python(OPEN_TWICE, "false")
    assert facts == {"at_first_open": 0, "after_first": 0, "after_second": 0}
