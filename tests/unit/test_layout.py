"""DESIGN.md section 1: `system` never imports `simulators` (or scenarios, tests, benchmarks)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("simulators", "scenarios", "tests", "benchmarks")


def test_system_never_imports_the_fakes_or_the_harness() -> None:
    offenders = []
    for path in (ROOT / "system").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_layout_of_design_section_1_exists() -> None:
    for entry in (
        "system/ports.py",
        "system/config.py",
        "system/adapters",
        "system/agent",
        "system/edge",
        "system/cloud",
        "system/proto/agent.proto",
        "simulators",
        "scenarios",
        "tests/unit",
        "benchmarks",
        "pyproject.toml",
        "README.md",
        "Makefile",
        ".ci/run",
        "CONTRIBUTING.md",
    ):
        assert (ROOT / entry).exists(), entry
