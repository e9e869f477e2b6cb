"""A device provisioned on moto, its bundle, and the fake IoT credentials provider in front of moto.

The bundle's root CA is a test CA (`--root-ca`), which also signs the loopback servers (the fake
credentials endpoint, a TLS Mosquitto), so the device verifies them as it verifies AWS with Amazon
Root CA 1. moto signs device certificates with their own key; `issuer_certificate_for` makes the
issuer those servers trust, as AWS's servers trust AWS IoT's CA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.certificates import TlsMaterial, create_tls_material, issuer_certificate_for
from simulators.credentials_provider import FakeIotCredentialsProvider
from system.adapters.tls import TlsFiles
from system.cloud.provision import bundle
from system.cloud.provision.apply import Provisioner
from system.cloud.provision.plan import ProvisionPlan
from system.cloud.provision.report import StepLog
from system.cloud.provision.session import AwsClients


@dataclass(frozen=True)
class ProvisionedDevice:
    plan: ProvisionPlan
    folder: Path  # the bundle
    material: TlsMaterial  # the test CA, the loopback servers' certificate, other clients' certificates
    issuer: Path  # the issuer of the device certificate moto made
    signing_key: Path  # the project's package signing key (the operator's; its public half is in the bundle)
    client_cas: Path  # what loopback servers trust for client certificates: that issuer and the test CA

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(
            self.folder / bundle.ROOT_CA_FILE, self.folder / bundle.CERT_FILE, self.folder / bundle.KEY_FILE
        )

    @property
    def config_path(self) -> Path:
        return self.folder / bundle.CONFIG_FILE

    def edit_config(self, **sections: object) -> Path:
        """Merge `sections` into device.json (as a user points it at their endpoints); returns its path."""
        config = json.loads(self.config_path.read_text())
        for name, values in sections.items():
            current = config.get(name)
            both = isinstance(current, dict) and isinstance(values, dict)
            config[name] = {**current, **values} if both else values  # type: ignore[dict-item]
        bundle.write_private(self.config_path, json.dumps(config, indent=2))
        return self.config_path


@pytest.fixture
def provisioned(clients: AwsClients, project_plan: ProvisionPlan, tmp_path: Path) -> ProvisionedDevice:
    material = create_tls_material(tmp_path / "pki")
    folder = tmp_path / "bundle"
    log = StepLog()
    signing_key = tmp_path / "operator" / "signing.key"
    Provisioner(clients, project_plan, folder, log, signing_key=signing_key).apply(material.ca_cert)
    issuer = tmp_path / "moto-issuer.pem"
    issuer.write_bytes(
        issuer_certificate_for((folder / bundle.CERT_FILE).read_bytes(), (folder / bundle.KEY_FILE).read_bytes())
    )
    client_cas = tmp_path / "client-cas.pem"
    client_cas.write_bytes(issuer.read_bytes() + material.ca_cert.read_bytes())
    return ProvisionedDevice(project_plan, folder, material, issuer, signing_key, client_cas)


@pytest.fixture
def credentials_endpoint(clients: AwsClients, provisioned: ProvisionedDevice) -> Iterator[FakeIotCredentialsProvider]:
    material = provisioned.material
    fake = FakeIotCredentialsProvider(
        clients.make("iot"),
        clients.make("sts"),
        server_cert=material.server_cert,
        server_key=material.server_key,
        client_cas=provisioned.client_cas,
    )
    with fake:
        yield fake
