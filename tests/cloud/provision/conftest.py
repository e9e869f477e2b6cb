"""Provisioning tests: the session's moto server, and clients bound to it with fake credentials."""

from collections.abc import Callable

import pytest

from simulators.moto_env import MotoEnvironment, offline_session
from system.cloud.provision.plan import ProvisionPlan, build_plan
from system.cloud.provision.session import AwsClients, open_clients
from tests.cloud.provision.device_fixtures import credentials_endpoint, provisioned
from tests.moto_fixtures import moto_server, unique_name
from tests.mqtt_fixtures import start_mosquitto

__all__ = ["credentials_endpoint", "moto_server", "provisioned", "start_mosquitto", "unique_name"]


@pytest.fixture
def clients(moto_server: MotoEnvironment) -> AwsClients:
    region = moto_server.region
    return open_clients(region, moto_server.endpoint_url, session=offline_session(region))


@pytest.fixture
def project_plan(clients: AwsClients, unique_name: Callable[[str], str]) -> ProvisionPlan:
    """The plan of a project no other test uses."""
    return build_plan(unique_name("p"), region=clients.region, account_id=clients.account_id())
