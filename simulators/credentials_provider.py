"""FakeIotCredentialsProvider: the AWS IoT credentials provider on loopback HTTPS, backed by moto.

What a device on the `aws` profile calls to trade its X.509 certificate for temporary S3 keys
(system/adapters/iot_credentials.py has the protocol). This fake serves
`GET /role-aliases/<alias>/credentials` over TLS with a required client certificate and decides as
AWS does, from moto's IoT state:

- the client certificate must be registered in IoT (its id is the SHA-256 of its DER, or of its PEM
  text, the id moto gives when it does not parse certificates) and ACTIVE, else 403;
- with an `x-amzn-iot-thingname` header, the certificate must be attached to that thing, else 403;
- the role alias must exist, else 404;
- a policy attached to the certificate must allow `iot:AssumeRoleWithCertificate` on the alias ARN
  (Allow/Deny statements, `*` wildcards, the thing-name policy variables), else 403;
- then moto's STS assumes the alias's role for `credentialDurationSeconds` and the keys are returned.

Limits: TLS verifies client certificates against the CA file it is given (AWS trusts every
certificate registered in IoT; moto's need `simulators.certificates.issuer_certificate_for`);
policy conditions are not evaluated; moto accepts any keys, so what the keys allow is not enforced.
`credential_seconds` shortens the lifetime below AWS's 900 s minimum, for refresh tests, and
`fail_next(n, status)` answers the next n requests with an error (an outage).
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import json
import logging
import re
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from system.errors import ConfigError

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/role-aliases/([^/]+)/credentials$")
ACTION = "iot:AssumeRoleWithCertificate"
THING_VARIABLES = ("${iot:Connection.Thing.ThingName}", "${credentials-iot:ThingName}")


@dataclass(frozen=True)
class CredentialsRequest:
    """One request the fake answered: who asked, for what, and what it said."""

    thing_name: str | None
    role_alias: str
    status: int
    access_key_id: str | None = None


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def certificate_ids(der: bytes) -> tuple[str, str]:
    """The ids AWS IoT (SHA-256 of the DER) and moto without certificate parsing (of the PEM) give it."""
    pem = x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
    return hashlib.sha256(der).hexdigest(), hashlib.sha256(pem).hexdigest()


def policy_allows(document: dict[str, Any], action: str, resource: str, thing_name: str | None) -> bool:
    """Whether an IoT policy allows `action` on `resource` (an explicit Deny wins)."""
    allowed = False
    for statement in _as_statements(document):
        actions = _as_list(statement.get("Action"))
        resources = [_substitute(r, thing_name) for r in _as_list(statement.get("Resource"))]
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(resource, r) for r in resources
        ):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]


def _substitute(resource: str, thing_name: str | None) -> str:
    for variable in THING_VARIABLES:
        # Without a thing (no header) the variable matches nothing, as in AWS.
        resource = resource.replace(variable, thing_name if thing_name else "\0")
    return resource


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    refused: list[str]  # why each connection that never became a request was dropped

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that fails the TLS handshake (no certificate, an unknown CA) is refused, not a crash.
        self.refused.append(str(sys.exc_info()[1]))
        log.debug("fake credentials provider: refused %s: %s", client_address, sys.exc_info()[1])


class FakeIotCredentialsProvider:
    """The credentials endpoint on `host`:port over mutual TLS; see the module docstring."""

    def __init__(
        self,
        iot: Any,
        sts: Any,
        *,
        server_cert: Path,
        server_key: Path,
        client_cas: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        credential_seconds: int | None = None,
    ) -> None:
        self.iot, self.sts = iot, sts
        self.host = host
        self.credential_seconds = credential_seconds
        self.requests: list[CredentialsRequest] = []
        self._lock = threading.Lock()
        self._failures: list[int] = []
        try:
            self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_cas))
            self._context.load_cert_chain(str(server_cert), str(server_key))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the fake credentials provider's TLS files: {exc}") from exc
        self._context.verify_mode = ssl.CERT_REQUIRED
        self._server = _Server((host, port), self._handler())
        self._server.refused = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """What a device config's `aws.credentials_endpoint` takes."""
        return f"{self.host}:{self.port}"

    def start(self) -> FakeIotCredentialsProvider:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-credentials", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeIotCredentialsProvider:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` requests with `status` (a fault, as during an outage)."""
        with self._lock:
            self._failures.extend([status] * count)

    @property
    def refused_connections(self) -> list[str]:
        """Why each connection refused before any request was (the TLS handshake's error)."""
        return list(self._server.refused)

    def issued(self) -> list[str]:
        """The access key ids handed out, oldest first."""
        with self._lock:
            return [r.access_key_id for r in self.requests if r.access_key_id]

    # -- the decision --------------------------------------------------------------------------

    def answer(self, alias: str, thing_name: str | None, der: bytes) -> dict[str, Any]:
        """The credentials for a request, or `_Refusal` with AWS's status for it."""
        with self._lock:
            injected = self._failures.pop(0) if self._failures else None
        if injected is not None:
            raise _Refusal(injected, "injected failure")
        certificate = self._certificate(der)
        if certificate["status"] != "ACTIVE":
            raise _Refusal(403, "Certificate is not active")
        arn = certificate["certificateArn"]
        if thing_name is not None and thing_name not in self.iot.list_principal_things(principal=arn)["things"]:
            raise _Refusal(403, f"Certificate is not attached to thing {thing_name}")
        try:
            description = self.iot.describe_role_alias(roleAlias=alias)["roleAliasDescription"]
        except ClientError as exc:
            raise _Refusal(404, f"Role alias {alias} does not exist") from exc
        if not self._policies_allow(arn, description["roleAliasArn"], thing_name):
            raise _Refusal(403, "Access Denied")
        seconds = int(description.get("credentialDurationSeconds", 3600))
        assumed = self.sts.assume_role(
            RoleArn=description["roleArn"], RoleSessionName=certificate["certificateId"][:64], DurationSeconds=seconds
        )["Credentials"]
        expiration = assumed["Expiration"]
        if self.credential_seconds is not None:
            expiration = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.credential_seconds)
        return {
            "accessKeyId": assumed["AccessKeyId"],
            "secretAccessKey": assumed["SecretAccessKey"],
            "sessionToken": assumed["SessionToken"],
            "expiration": expiration.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def _certificate(self, der: bytes) -> dict[str, Any]:
        for certificate_id in certificate_ids(der):
            try:
                description: dict[str, Any] = self.iot.describe_certificate(certificateId=certificate_id)
                return description["certificateDescription"]  # type: ignore[no-any-return]
            except ClientError:
                continue
        raise _Refusal(403, "Certificate is not registered with AWS IoT")

    def _policies_allow(self, certificate_arn: str, alias_arn: str, thing_name: str | None) -> bool:
        attached = self.iot.list_attached_policies(target=certificate_arn)["policies"]
        documents = [json.loads(self.iot.get_policy(policyName=p["policyName"])["policyDocument"]) for p in attached]
        # One set of statements, as AWS evaluates every policy of the principal together: a Deny in one wins.
        merged = {"Statement": [statement for document in documents for statement in _as_statements(document)]}
        return policy_allows(merged, ACTION, alias_arn, thing_name)

    # -- HTTP ----------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a client that stalls in the handshake or the request holds one thread, not the server

            def setup(self) -> None:
                self.request = provider._context.wrap_socket(self.request, server_side=True)
                super().setup()

            def do_GET(self) -> None:
                provider._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("fake credentials provider: " + format, *args)

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        match = _PATH.match(handler.path)
        thing_name = handler.headers.get("x-amzn-iot-thingname")
        alias = match.group(1) if match else ""
        try:
            if match is None:
                raise _Refusal(404, f"No such resource: {handler.path}")
            der = handler.request.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            if not der:
                raise _Refusal(401, "A client certificate is required")
            body: dict[str, Any] = {"credentials": self.answer(alias, thing_name, der)}
            status, key = 200, body["credentials"]["accessKeyId"]
        except _Refusal as refusal:
            body, status, key = {"message": str(refusal)}, refusal.status, None
        with self._lock:
            self.requests.append(CredentialsRequest(thing_name, alias, status, key))
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _as_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]
