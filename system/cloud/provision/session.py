"""boto3 clients for provisioning that fail fast, and the translation of their errors.

A missing region or missing credentials is a ConfigError naming what is missing, raised before
any request. Timeouts and retries are low so an unreachable endpoint is an error in seconds, not
the minutes botocore's defaults (60 s reads, several retries) would take.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from system.errors import ConfigError, EdgesimError

CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"total_max_attempts": 2, "mode": "standard"})
_MISSING_CREDENTIALS = (
    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
    "or run where an instance/container role provides them"
)
_MISSING_REGION = "no AWS region: pass --region or set AWS_REGION (or AWS_DEFAULT_REGION)"


class ProvisionError(EdgesimError):
    """An AWS call of provisioning failed; `code` is the AWS error code (e.g. "AccessDenied")."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AwsClients:
    """The clients provisioning uses, all of one session, region and endpoint."""

    region: str
    partition: str
    make: Callable[[str], Any]

    def account_id(self) -> str:
        identity = aws_call("reading the account id", self.make("sts").get_caller_identity)
        return str(identity["Account"])


def open_clients(region: str | None, endpoint_url: str | None = None, session: Any = None) -> AwsClients:
    """Clients for `region` (or the session's default); raise ConfigError when region or credentials lack."""
    session = session or boto3.Session()
    region = region or session.region_name
    if not region:
        raise ConfigError(_MISSING_REGION)
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # e.g. a named profile that does not exist
        raise ConfigError(f"cannot load AWS credentials: {exc}") from exc
    if credentials is None:
        raise ConfigError(_MISSING_CREDENTIALS)
    partition = session.get_partition_for_region(region) if endpoint_url is None else "aws"

    def make(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url, config=CLIENT_CONFIG)

    return AwsClients(region=region, partition=partition, make=make)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def aws_call(what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
    """`call(**kwargs)`, with botocore's errors turned into ProvisionError/ConfigError naming `what`."""
    try:
        return call(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = f"{exc.operation_name} failed while {what}: {error_code(exc)}: {error.get('Message', '')}"
        raise ProvisionError(message.rstrip(": "), error_code(exc)) from exc
    except NoCredentialsError as exc:
        raise ConfigError(_MISSING_CREDENTIALS) from exc
    except NoRegionError as exc:
        raise ConfigError(_MISSING_REGION) from exc
    except BotoCoreError as exc:  # endpoint unreachable, timeouts, malformed responses
        raise ProvisionError(f"AWS call failed while {what}: {exc}") from exc


# The answers AWS gives while a detach has not propagated yet: DetachThingPrincipal and DetachPolicy
# are asynchronous ("it might take several seconds"), so the delete right after them can be refused.
SETTLING_CODES = frozenset({"InvalidRequestException", "DeleteConflictException", "DeleteConflict"})
SETTLE_DELAYS = (1.0, 2.0, 4.0, 8.0)  # 15 s in all, then the refusal stands


def settled_call(what: str, call: Callable[..., Any], **kwargs: Any) -> Any:
    """`aws_call`, retried while AWS refuses it for a detach still propagating (SETTLING_CODES)."""
    for delay in (*SETTLE_DELAYS, None):
        try:
            return aws_call(what, call, **kwargs)
        except ProvisionError as exc:
            if exc.code not in SETTLING_CODES or delay is None:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")
