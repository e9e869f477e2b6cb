"""moto test fixtures: the fake AWS cloud in both modes, and unique resource names.

A conftest imports the fixtures it needs by name (see tests/contract/conftest.py). The moto server
is one per session (stopping it costs 0.5 s); an in-process environment is one per test. Both share
moto's process-global state, so tests never rely on an empty cloud: every test names its own
resources with `unique_name`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from simulators.moto_env import MotoEnvironment

MOTO_MODES = ("inprocess", "server")


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Factory: a name no other test uses (`unique_name("bucket")` -> "bucket-1a2b3c4d5e")."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoEnvironment]:
    """The session's moto server on a free loopback port; stopped at the end of the session."""
    with MotoEnvironment("server") as env:
        yield env


@pytest.fixture(params=MOTO_MODES)
def moto_env(request: pytest.FixtureRequest) -> Iterator[MotoEnvironment]:
    """A started moto environment: a fresh in-process one (stopped after the test), or the session's server."""
    if request.param == "server":
        yield request.getfixturevalue("moto_server")
        return
    with MotoEnvironment("inprocess") as env:
        yield env
