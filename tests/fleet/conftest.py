"""Fleet fixtures: see tests/fleet/fleet_kit.py."""

from tests.fleet.fleet_kit import cloud, kit

__all__ = ["cloud", "kit"]
