"""Reliability fixtures: see tests/edge_world.py (worlds) and tests/mqtt_fixtures.py (brokers)."""

from tests.edge_world import packages, world
from tests.moto_fixtures import unique_name
from tests.mqtt_fixtures import start_mosquitto

__all__ = ["packages", "start_mosquitto", "unique_name", "world"]
