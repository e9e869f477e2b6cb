"""Temporary AWS credentials for a device from its X.509 certificate: the AWS IoT credentials provider.

On the `aws` profile a device holds no long-term AWS keys. It proves its identity with the same
certificate and key it uses for AWS IoT Core, and the account's `iot:CredentialProvider` endpoint
exchanges them for short-lived STS keys of the role behind a role alias
(https://docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws.html):

    GET https://<credentials endpoint>/role-aliases/<role alias>/credentials
    x-amzn-iot-thingname: <thing>            (mutual TLS with the device certificate)
    200 {"credentials": {"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}}

Errors come back as HTTP statuses with a JSON `message`: 400 bad request, 401/403 when the
certificate is not active, not attached to the thing, or its policy does not allow
`iot:AssumeRoleWithCertificate` on the alias, 404 for an unknown alias, 429 when throttled, 5xx.

`iot_credentials_session` wraps the provider in botocore's refreshable credentials: the first
fetch happens at the first AWS call (a device starts even while the endpoint is unreachable), and
keys are fetched again `refresh_before_expiry` seconds before they expire. A failed refresh with
time left keeps the current keys (botocore logs it and tries again on the next call); only in the
last `refresh_before_expiry / 4` seconds does a failure reach the caller, as a
`CredentialRetrievalError` that the S3 adapter turns into an `ObjectStoreError`.
"""

from __future__ import annotations

import datetime
import http.client
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.session
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import CredentialRetrievalError

from system.adapters.tls import TlsFiles
from system.errors import ConfigError
from system.logs import register_secret

log = logging.getLogger(__name__)

METHOD = "iot-credentials-provider"  # how botocore names where the credentials came from
THING_HEADER = "x-amzn-iot-thingname"
_TRANSIENT = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class CredentialsEndpoint:
    """`host[:port]` or `https://host[:port]` as DescribeEndpoint(iot:CredentialProvider) gives it."""

    host: str
    port: int = 443

    @classmethod
    def parse(cls, text: str) -> CredentialsEndpoint:
        parts = urlsplit(text if "://" in text else f"https://{text}")
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"the credentials endpoint must be host[:port] or https://host[:port], not {text!r}")
        try:
            port = parts.port or 443
        except ValueError as exc:
            raise ConfigError(f"the credentials endpoint {text!r} has a bad port: {exc}") from exc
        return cls(parts.hostname, port)


class IotCredentialsProvider:
    """Fetches temporary credentials for `thing_name` through `role_alias` with the thing's certificate."""

    def __init__(
        self,
        endpoint: CredentialsEndpoint | str,
        role_alias: str,
        thing_name: str,
        tls: TlsFiles,
        *,
        timeout: float = 5.0,
        attempts: int = 2,
    ) -> None:
        if tls.cert is None or tls.key is None:
            raise ConfigError("the IoT credentials provider needs the device certificate and key")
        if not role_alias or "/" in role_alias:
            raise ConfigError(f"role alias {role_alias!r} must be a non-empty name without '/'")
        self.endpoint = endpoint if isinstance(endpoint, CredentialsEndpoint) else CredentialsEndpoint.parse(endpoint)
        self.role_alias = role_alias
        self.thing_name = thing_name
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.fetches = 0  # successful fetches, for telemetry and tests
        try:
            self._context = ssl.create_default_context(cafile=str(tls.ca))
            self._context.load_cert_chain(str(tls.cert), str(tls.key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the TLS files for the credentials provider: {exc}") from exc

    @property
    def path(self) -> str:
        return f"/role-aliases/{quote(self.role_alias, safe='')}/credentials"

    def fetch(self) -> dict[str, str]:
        """Credentials in botocore's metadata shape (access_key, secret_key, token, expiry_time)."""
        for attempt in range(1, self.attempts + 1):
            try:
                status, body = self._request()
            except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError and timeouts are OSErrors
                if attempt == self.attempts:
                    raise self._error(f"cannot reach it: {exc}") from exc
                time.sleep(0.5 * attempt)
                continue
            if status == 200:
                return self._metadata(body)
            if status not in _TRANSIENT or attempt == self.attempts:
                raise self._error(f"HTTP {status}: {_message(body)}")
            time.sleep(0.5 * attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _request(self) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection(
            self.endpoint.host, self.endpoint.port, timeout=self.timeout, context=self._context
        )
        try:
            connection.request("GET", self.path, headers={THING_HEADER: self.thing_name, "Accept": "application/json"})
            response = connection.getresponse()
            return response.status, response.read(64 * 1024)
        finally:
            connection.close()

    def _metadata(self, body: bytes) -> dict[str, str]:
        try:
            credentials = json.loads(body)["credentials"]
            metadata = {
                "access_key": str(credentials["accessKeyId"]),
                "secret_key": str(credentials["secretAccessKey"]),
                "token": str(credentials["sessionToken"]),
                "expiry_time": str(credentials["expiration"]),
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error("an answer without credentials (not shown: it may hold a secret)") from exc
        register_secret(metadata["secret_key"])  # before anything can log them
        register_secret(metadata["token"])
        self.fetches += 1
        log.info(
            "S3 credentials for %s from the IoT credentials provider %s (role alias %s), valid until %s",
            self.thing_name,
            self.endpoint.host,
            self.role_alias,
            metadata["expiry_time"],
        )
        return metadata

    def _error(self, what: str) -> CredentialRetrievalError:
        where = f"https://{self.endpoint.host}:{self.endpoint.port}{self.path} as {self.thing_name}"
        return CredentialRetrievalError(provider=METHOD, error_msg=f"{where}: {what}")


def _message(body: bytes) -> str:
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace") or "(no body)"
    if isinstance(parsed, dict) and "message" in parsed:
        return str(parsed["message"])
    return str(parsed)[:200]


def iot_credentials_session(
    provider: IotCredentialsProvider,
    region: str,
    *,
    refresh_before_expiry: float = 600.0,
    now: Callable[[], datetime.datetime] | None = None,
) -> boto3.Session:
    """A boto3 session whose credentials come from `provider`, refreshed before they expire.

    `now` (an aware datetime; default the local clock) is when botocore thinks it is: tests move it.
    """
    if refresh_before_expiry <= 0:
        raise ConfigError("the credentials refresh margin must be positive")
    options = {"time_fetcher": now} if now is not None else {}
    credentials = DeferredRefreshableCredentials(refresh_using=provider.fetch, method=METHOD, **options)
    # botocore's defaults (15 and 10 minutes before expiry) as one setting: refresh from this margin on,
    # and fail calls only in its last quarter, when the keys may expire during the call.
    credentials._advisory_refresh_timeout = refresh_before_expiry
    credentials._mandatory_refresh_timeout = refresh_before_expiry / 4
    core = botocore.session.get_session()
    core._credentials = credentials  # what botocore's own credential resolver would have set
    return boto3.Session(botocore_session=core, region_name=region)
