"""Contract-test fixtures: every backend of a port, one test body each."""

from tests.moto_fixtures import moto_env, moto_server, unique_name
from tests.mqtt_fixtures import mqtt_backend, start_mosquitto, tls_material

__all__ = ["moto_env", "moto_server", "mqtt_backend", "start_mosquitto", "tls_material", "unique_name"]
