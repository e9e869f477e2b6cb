"""Missing region, missing credentials and an unreachable endpoint fail at once, with a clear message."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulators.moto_env import offline_session
from system.cloud.provision.session import ProvisionError, open_clients

ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback here


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = str(tmp_path)  # no ~/.aws/credentials or config
    started = time.monotonic()
    command = [sys.executable, "-m", "system.cli", "provision", "--project", "demo", *args]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    return result, time.monotonic() - started


def test_no_credentials_fails_fast_naming_them(tmp_path: Path) -> None:
    result, elapsed = _run(tmp_path, "--region", "eu-west-1", "--endpoint-url", UNREACHABLE)
    assert result.returncode == 2, result.stderr
    assert "no AWS credentials" in result.stderr and "AWS_ACCESS_KEY_ID" in result.stderr
    assert elapsed < 10
    assert not (tmp_path / "edgesim-demo-edge-device-demo").exists()


def test_no_region_fails_fast_naming_it(tmp_path: Path) -> None:
    result, elapsed = _run(tmp_path, "--endpoint-url", UNREACHABLE)
    assert result.returncode == 2
    assert "no AWS region" in result.stderr and "--region" in result.stderr
    assert elapsed < 10


def test_unreachable_endpoint_is_an_error_in_seconds_naming_the_step() -> None:
    clients = open_clients("us-east-1", UNREACHABLE, session=offline_session("us-east-1"))
    started = time.monotonic()
    with pytest.raises(ProvisionError, match="reading the account id"):
        clients.account_id()
    assert time.monotonic() - started < 10


def test_an_aws_error_names_the_operation_and_the_code(moto_server: object) -> None:
    from system.cloud.provision.session import aws_call

    clients = open_clients("us-east-1", moto_server.endpoint_url, session=offline_session("us-east-1"))  # type: ignore[attr-defined]
    iot = clients.make("iot")
    with pytest.raises(ProvisionError) as caught:
        aws_call("looking up thing nope", iot.describe_thing, thingName="no-such-thing-here")
    assert caught.value.code == "ResourceNotFoundException"
    assert str(caught.value).startswith("DescribeThing failed while looking up thing nope: ResourceNotFoundException")


class _Refusing:
    """A call AWS refuses `times` times with `code` before it goes through."""

    def __init__(self, times: int, code: str) -> None:
        self.left, self.code, self.calls = times, code, 0

    def __call__(self, **_: object) -> dict[str, str]:
        from botocore.exceptions import ClientError

        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "detach not propagated"}}, "DeleteThing")
        return {"ok": "yes"}


def test_a_delete_refused_while_a_detach_propagates_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from system.cloud.provision import session

    slept: list[float] = []
    monkeypatch.setattr(session.time, "sleep", slept.append)
    call = _Refusing(2, "InvalidRequestException")
    assert session.settled_call("deleting thing t", call, thingName="t") == {"ok": "yes"}
    assert call.calls == 3 and slept == [1.0, 2.0]


def test_a_refusal_that_outlasts_the_settling_time_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    from system.cloud.provision import session

    slept: list[float] = []
    monkeypatch.setattr(session.time, "sleep", slept.append)
    with pytest.raises(ProvisionError, match="DeleteThing failed while deleting thing t: DeleteConflictException"):
        session.settled_call("deleting thing t", _Refusing(99, "DeleteConflictException"))
    assert sum(slept) == 15.0


def test_other_refusals_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from system.cloud.provision import session

    monkeypatch.setattr(session.time, "sleep", lambda _s: pytest.fail("slept"))
    call = _Refusing(1, "AccessDeniedException")
    with pytest.raises(ProvisionError, match="AccessDeniedException"):
        session.settled_call("deleting thing t", call)
    assert call.calls == 1
