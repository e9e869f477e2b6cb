"""Scenario fixtures: a Mosquitto of the test's own (skips, saying why, without the binary)."""

from tests.mqtt_fixtures import start_mosquitto

__all__ = ["start_mosquitto"]
