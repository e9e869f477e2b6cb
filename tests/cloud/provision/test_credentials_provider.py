"""The device's S3 credentials from its certificate (the AWS IoT credentials provider), end to end on
moto: provisioning makes the certificate, policy and role alias; the fake endpoint decides as AWS
does; botocore refreshes the keys before they expire and keeps them through a failed refresh."""

from __future__ import annotations

import datetime
import json
import re
import time
from typing import Any

import pytest
from botocore.exceptions import CredentialRetrievalError

from simulators.credentials_provider import FakeIotCredentialsProvider, policy_allows
from system.adapters.iot_credentials import CredentialsEndpoint, IotCredentialsProvider, iot_credentials_session
from system.adapters.tls import TlsFiles
from system.cloud.provision.session import AwsClients
from system.errors import ConfigError
from tests.cloud.provision.device_fixtures import ProvisionedDevice

_SIGNED_WITH = re.compile(r"Credential=([A-Z0-9]+)/")


class MovableClock:
    """botocore's idea of now: the real time plus what the test moved it by."""

    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + self.offset

    def move(self, seconds: float) -> None:
        self.offset += datetime.timedelta(seconds=seconds)


def _provider(
    device: ProvisionedDevice, endpoint: FakeIotCredentialsProvider, *, thing: str | None = None, **kwargs: Any
) -> IotCredentialsProvider:
    return IotCredentialsProvider(
        endpoint.endpoint, device.plan.role_alias, thing or device.plan.thing_name, device.tls, **kwargs
    )


def _s3_signing_keys(session: Any, endpoint_url: str) -> tuple[Any, list[str]]:
    """An S3 client of `session` and the access key ids its requests were signed with."""
    s3 = session.client("s3", endpoint_url=endpoint_url)
    used: list[str] = []

    def record(request: Any, **_: Any) -> None:
        found = _SIGNED_WITH.search(request.headers.get("Authorization", b"").decode())
        used.append(found.group(1) if found else "unsigned")

    s3.meta.events.register("before-send.s3", record)
    return s3, used


def test_the_device_certificate_gets_keys_that_reach_the_models_prefix(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    session = iot_credentials_session(_provider(provisioned, credentials_endpoint), clients.region)
    s3, used = _s3_signing_keys(session, clients.make("s3").meta.endpoint_url)
    clients.make("s3").put_object(Bucket=provisioned.plan.bucket, Key="models/m-1.tar.gz", Body=b"package")

    assert s3.get_object(Bucket=provisioned.plan.bucket, Key="models/m-1.tar.gz")["Body"].read() == b"package"
    [request] = credentials_endpoint.requests
    assert (request.thing_name, request.role_alias, request.status) == (
        provisioned.plan.thing_name, provisioned.plan.role_alias, 200,
    )  # fmt: skip
    assert used == credentials_endpoint.issued()


def test_keys_are_fetched_again_before_they_expire_and_only_then(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    clock = MovableClock()
    provider = _provider(provisioned, credentials_endpoint)
    session = iot_credentials_session(provider, clients.region, refresh_before_expiry=600, now=clock)
    s3, used = _s3_signing_keys(session, clients.make("s3").meta.endpoint_url)
    bucket = provisioned.plan.bucket

    s3.list_objects_v2(Bucket=bucket)
    clock.move(3600 - 601)  # the role alias's 1-hour keys, just outside the margin: still the same keys
    s3.list_objects_v2(Bucket=bucket)
    assert provider.fetches == 1
    clock.move(2)  # inside the margin: fetched again before the call is signed
    s3.list_objects_v2(Bucket=bucket)

    first, second = credentials_endpoint.issued()
    assert first != second
    assert used == [first, first, second]


def test_a_failed_refresh_keeps_the_current_keys_until_the_last_quarter_of_the_margin(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    clock = MovableClock()
    provider = _provider(provisioned, credentials_endpoint, attempts=1)
    session = iot_credentials_session(provider, clients.region, refresh_before_expiry=600, now=clock)
    s3, used = _s3_signing_keys(session, clients.make("s3").meta.endpoint_url)
    bucket = provisioned.plan.bucket
    s3.list_objects_v2(Bucket=bucket)

    clock.move(3600 - 300)  # inside the margin, 5 minutes left: the endpoint is down
    credentials_endpoint.fail_next(1, status=503)
    s3.list_objects_v2(Bucket=bucket)  # no error: the keys still have time
    [first] = credentials_endpoint.issued()
    assert used == [first, first]

    clock.move(300 - 100)  # 100 s left, within the last quarter (150 s): a failure now reaches the caller
    credentials_endpoint.fail_next(1, status=503)
    with pytest.raises(CredentialRetrievalError, match="HTTP 503"):
        s3.list_objects_v2(Bucket=bucket)
    s3.list_objects_v2(Bucket=bucket)  # the endpoint is back: new keys
    assert used[-1] == credentials_endpoint.issued()[-1] != first
    assert [r.status for r in credentials_endpoint.requests] == [200, 503, 503, 200]


def test_a_transient_error_is_retried_once(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    credentials_endpoint.fail_next(1, status=429)
    metadata = _provider(provisioned, credentials_endpoint).fetch()
    assert metadata["access_key"] == credentials_endpoint.issued()[0]
    assert [r.status for r in credentials_endpoint.requests] == [429, 200]


def test_another_things_name_is_refused(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    with pytest.raises(CredentialRetrievalError, match="HTTP 403: Certificate is not attached to thing other"):
        _provider(provisioned, credentials_endpoint, thing="other").fetch()


def test_an_unknown_role_alias_is_404(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    provider = IotCredentialsProvider(
        credentials_endpoint.endpoint, "no-such-alias", provisioned.plan.thing_name, provisioned.tls
    )
    with pytest.raises(CredentialRetrievalError, match="HTTP 404: Role alias no-such-alias does not exist"):
        provider.fetch()


def test_an_inactive_certificate_is_refused(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    iot = clients.make("iot")
    [arn] = iot.list_thing_principals(thingName=provisioned.plan.thing_name)["principals"]
    iot.update_certificate(certificateId=arn.rsplit("/", 1)[1], newStatus="INACTIVE")
    with pytest.raises(CredentialRetrievalError, match="HTTP 403: Certificate is not active"):
        _provider(provisioned, credentials_endpoint).fetch()


def test_a_certificate_unknown_to_iot_is_refused(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    stranger = provisioned.material.client(provisioned.plan.thing_name)  # a valid TLS client, never registered
    provider = IotCredentialsProvider(
        credentials_endpoint.endpoint, provisioned.plan.role_alias, provisioned.plan.thing_name,
        TlsFiles(provisioned.tls.ca, stranger.cert, stranger.key),
    )  # fmt: skip
    with pytest.raises(CredentialRetrievalError, match="HTTP 403: Certificate is not registered"):
        provider.fetch()


def test_a_policy_without_assume_role_is_refused(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    iot = clients.make("iot")
    document = dict(provisioned.plan.policy_document)
    document["Statement"] = [s for s in document["Statement"] if s["Sid"] != "TemporaryS3Credentials"]
    iot.create_policy_version(
        policyName=provisioned.plan.policy_name, policyDocument=json.dumps(document), setAsDefault=True
    )
    with pytest.raises(CredentialRetrievalError, match="HTTP 403: Access Denied"):
        _provider(provisioned, credentials_endpoint).fetch()


def test_a_client_without_the_servers_ca_does_not_connect(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider, tmp_path: Any
) -> None:
    tls = TlsFiles(provisioned.issuer, provisioned.tls.cert, provisioned.tls.key)  # a CA, not the servers'
    provider = IotCredentialsProvider(
        credentials_endpoint.endpoint, provisioned.plan.role_alias, provisioned.plan.thing_name, tls, attempts=1
    )
    with pytest.raises(CredentialRetrievalError, match=r"cannot reach it: .*CERTIFICATE_VERIFY_FAILED"):
        provider.fetch()
    assert credentials_endpoint.requests == []
    deadline = time.monotonic() + 5  # the server notices the aborted handshake on its own thread
    while not credentials_endpoint.refused_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "UNKNOWN_CA" in credentials_endpoint.refused_connections[0]


def test_a_client_without_a_certificate_is_refused_in_the_handshake(
    provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    import ssl
    import urllib.request

    context = ssl.create_default_context(cafile=str(provisioned.tls.ca))  # verifies the server, shows no certificate
    url = f"https://{credentials_endpoint.endpoint}/role-aliases/{provisioned.plan.role_alias}/credentials"
    with pytest.raises(OSError):
        urllib.request.urlopen(url, context=context, timeout=5).read()
    assert credentials_endpoint.issued() == []


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("abc.credentials.iot.eu-west-1.amazonaws.com", "abc.credentials.iot.eu-west-1.amazonaws.com", 443),
        ("https://127.0.0.1:8443", "127.0.0.1", 8443),
        ("127.0.0.1:8443", "127.0.0.1", 8443),
    ],
)
def test_credentials_endpoint_forms(text: str, host: str, port: int) -> None:
    assert CredentialsEndpoint.parse(text) == CredentialsEndpoint(host, port)


@pytest.mark.parametrize("text", ["http://host", "https://host/path", "https://", "host:notaport"])
def test_bad_credentials_endpoints_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="credentials endpoint"):
        CredentialsEndpoint.parse(text)


@pytest.mark.parametrize(
    ("statements", "thing", "allowed"),
    [
        ([{"Effect": "Allow", "Action": "iot:AssumeRoleWithCertificate", "Resource": "arn:a:rolealias/r"}], None, True),
        ([{"Effect": "Allow", "Action": "iot:*", "Resource": "arn:a:rolealias/*"}], None, True),
        ([{"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*"}], None, False),
        (
            [
                {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "iot:AssumeRoleWithCertificate", "Resource": "arn:a:rolealias/r"},
            ],
            None,
            False,
        ),
        (
            [{"Effect": "Allow", "Action": "iot:*", "Resource": "arn:a:rolealias/${credentials-iot:ThingName}"}],
            "r",
            True,
        ),
        (
            [{"Effect": "Allow", "Action": "iot:*", "Resource": "arn:a:rolealias/${iot:Connection.Thing.ThingName}"}],
            None,
            False,
        ),
    ],
)
def test_policy_evaluation_of_the_fake(statements: list[dict[str, Any]], thing: str | None, allowed: bool) -> None:
    assert (
        policy_allows({"Statement": statements}, "iot:AssumeRoleWithCertificate", "arn:a:rolealias/r", thing) == allowed
    )


def test_a_provider_needs_the_certificate_and_key(provisioned: ProvisionedDevice) -> None:
    with pytest.raises(ConfigError, match="certificate and key"):
        IotCredentialsProvider("127.0.0.1:1", "alias", "thing", TlsFiles(provisioned.tls.ca))


def test_debug_logs_of_an_s3_call_show_neither_the_secret_key_nor_the_token(
    clients: AwsClients, provisioned: ProvisionedDevice, credentials_endpoint: FakeIotCredentialsProvider
) -> None:
    import io
    import logging

    from system.logs import REDACTED, configure_logging

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging("debug", stream=stream)  # botocore logs every request's headers at debug
        session = iot_credentials_session(_provider(provisioned, credentials_endpoint), clients.region)
        s3 = session.client("s3", endpoint_url=clients.make("s3").meta.endpoint_url)
        s3.list_objects_v2(Bucket=provisioned.plan.bucket)
        logging.getLogger("tests").error("the device key: %s", provisioned.tls.key.read_text())  # type: ignore[union-attr]
    finally:
        root.handlers[:], root.level = saved
    frozen = session.get_credentials().get_frozen_credentials()
    output = stream.getvalue()
    assert "X-Amz-Security-Token" in output  # the header was logged...
    assert frozen.token not in output and frozen.secret_key not in output  # ...its value was not
    assert "PRIVATE KEY" not in output and REDACTED in output
