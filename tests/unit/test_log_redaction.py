"""No secret leaves through a log line: private keys, AWS secrets in their usual spellings, signatures
and registered secrets are masked in JSON lines, text lines and telemetry log entries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from system.logs import REDACTED, configure_logging, record_entry, redact, register_secret

SIGNATURE = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----", "MIGHAgEAMBMG"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKC\n-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKC"),
        ("truncated: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB", "MHcCAQEEIB"),
        ("{'X-Amz-Security-Token': b'IQoJb3JpZ2luX2Vj'}", "IQoJb3JpZ2luX2Vj"),
        ('{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG"}', "wJalrXUtnFEMI/K7MDENG"),
        ('{"sessionToken": "FwoGZXIvYXdzE"}', "FwoGZXIvYXdzE"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI/K7MDENG"),
        ("<Credentials><SessionToken>FQoGZXIv+/=</SessionToken>", "FQoGZXIv+/="),
        ("<SecretAccessKey>wJalrXUtnFEMI/K7</SecretAccessKey>", "wJalrXUtnFEMI/K7"),
        (f"Credential=AKIA/20261207/us-east-1/s3/aws4_request, Signature={SIGNATURE}", SIGNATURE),
    ],
)
def test_secrets_in_their_usual_spellings_are_masked(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked and REDACTED in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "job ota-1 SUCCEEDED: img-classification 3 loaded; access key id AKIAEXAMPLE; 12 frames"
    assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured as an entry point does, into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        yield stream
    finally:
        root.handlers[:], root.level = saved


@pytest.mark.parametrize("json_lines", [True, False], ids=["json", "text"])
def test_a_registered_secret_never_reaches_the_log_output(captured: io.StringIO, json_lines: bool) -> None:
    secret = "a-secret-only-this-test-knows-7f3a"
    register_secret(secret)
    configure_logging("debug", json_lines=json_lines, stream=captured)
    log = logging.getLogger("tests.redaction")
    log.debug("got %s", secret, extra={"fields": {"token": secret}})
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        log.exception("and in a traceback")
    output = captured.getvalue()
    assert secret not in output
    assert output.count(REDACTED) == (3 if json_lines else 2)  # the text format leaves the fields out


def test_telemetry_log_entries_are_redacted() -> None:
    secret = "another-secret-for-telemetry-91c2"
    register_secret(secret)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "token %s", (secret,), None)
    record.fields = {"detail": f"with {secret}", "count": 3}
    entry = record_entry(record, 0.0, logging.Formatter())
    assert secret not in json.dumps(entry) and entry["count"] == 3


def test_short_values_are_not_registered() -> None:
    register_secret("testing")  # moto's fake keys: masking them would mask the word everywhere
    assert redact("testing the testing") == "testing the testing"
