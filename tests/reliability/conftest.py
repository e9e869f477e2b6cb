"""Reliability fixtures: see tests/edge_world.py (worlds) and tests/mqtt_fixtures.py (brokers)."""

from tests.edge_world import packages, world
from tests.moto_fixtures import unique_name
from tests.mqtt_fixtures import mqtt_backend, start_mosquitto, tls_material

__all__ = ["mqtt_backend", "packages", "start_mosquitto", "tls_material", "unique_name", "world"]
