"""Reliability fixtures: see tests/edge_world.py (worlds) and tests/mqtt_fixtures.py (brokers); the
counted figures are printed (and written for RELIABILITY.md) at the end of the session
(tests/reliability/reporting.py)."""

from typing import Any

import pytest

from tests.edge_world import packages, world
from tests.moto_fixtures import unique_name
from tests.mqtt_fixtures import mqtt_backend, start_mosquitto, tls_material
from tests.reliability.reporting import REPORTS

__all__ = ["mqtt_backend", "packages", "start_mosquitto", "tls_material", "unique_name", "world"]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    ran = [report for report in REPORTS.values() if report.ran()]
    if ran:
        terminalreporter.section("reliability figures")
    for report in ran:
        terminalreporter.write_line(report.line())
        written = report.write()
        if written is not None:
            terminalreporter.write_line(f"  -> {written}")
