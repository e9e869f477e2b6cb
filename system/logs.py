"""Structured logging: one JSON object per line on stderr, with secrets redacted.

Call `configure_logging()` once from an entry point. Log with the standard library and pass
fields through `extra={"fields": {...}}`; they are merged into the JSON object, so a log line is
both readable and machine-parsable (`jq`, log shippers).

Nothing secret leaves through a log line, whoever logged it (botocore at debug level logs request
headers, including the session token of temporary credentials): every line written by
`configure_logging`'s handler and every telemetry log entry (`record_entry`) goes through
`redact`, which masks PEM private keys, AWS secret keys and session tokens in the usual spellings,
request signatures, and every value given to `register_secret` (the adapter that obtains a
credential registers it the moment it has it).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

_RESERVED = {"ts", "level", "logger", "msg", "exc"}  # a record's fields never overwrite these
REDACTED = "[REDACTED]"
_PATTERNS = (
    # A PEM private key of any kind (PKCS#8, RSA, EC, OpenSSH), whole.
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(-----END \1PRIVATE KEY-----|\Z)", re.S), REDACTED),
    # Header or key=value spellings of AWS secrets: X-Amz-Security-Token, aws_secret_access_key, SecretAccessKey...
    (
        re.compile(
            r"(?i)((?:x-amz-security-token|aws_session_token|sessiontoken|session_token|aws_secret_access_key"
            r"|secretaccesskey|secret_access_key|secret_key)[\"']?\s*[:=]\s*(?:b?[\"'])?)[^\s\"',;}]+"
        ),
        r"\1" + REDACTED,
    ),
    # The same in AWS's XML answers (STS AssumeRole, GetSessionToken...).
    (re.compile(r"<(SecretAccessKey|SessionToken)>[^<]*</\1>"), r"<\1>" + REDACTED + r"</\1>"),
    # A SigV4 signature (not a secret, but a replayable proof for its short life).
    (re.compile(r"(Signature=)[0-9a-f]{64}"), r"\1" + REDACTED),
)
_MIN_SECRET = 8  # shorter values would mask ordinary words (moto's "testing" keys are not secrets)


class _Secrets:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        if len(value) >= _MIN_SECRET:
            with self._lock:
                self._values.add(value)

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._values, key=len, reverse=True)  # a longer secret first: it may contain another


_SECRETS = _Secrets()


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears in log output from now on (process-wide, as logging is)."""
    _SECRETS.add(value)


def redact(text: str) -> str:
    """`text` with private keys, AWS secrets, signatures and every registered secret masked."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _SECRETS.snapshot():
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def record_entry(record: logging.LogRecord, ts: Any, formatter: logging.Formatter) -> dict[str, Any]:
    """A log record as a dict: ts, level, logger, msg, the `fields` extra, and `exc` for an exception.

    Shared by the JSON log lines and the telemetry log entries (system/edge/telemetry.py), so both
    carry the same keys. A field named like a reserved key is kept as `field_<name>`.
    """
    entry: dict[str, Any] = {
        "ts": ts,
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": redact(record.getMessage()),
    }
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            entry[key if key not in _RESERVED else f"field_{key}"] = _redact_value(value)
    if record.exc_info:
        entry["exc"] = redact(formatter.formatException(record.exc_info))
    return entry


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        entry = record_entry(record, ts, self)
        return json.dumps(entry, default=str, separators=(",", ":"))


class RedactingFormatter(logging.Formatter):
    """Another formatter's output with `redact` applied (what the text format writes)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self._inner.format(record))


def configure_logging(level: str = "info", *, json_lines: bool = True, stream: TextIO | None = None) -> None:
    """Route the root logger to `stream` (stderr), as JSON lines (or plain text for humans), redacted."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())  # redacts through record_entry
    else:
        handler.setFormatter(RedactingFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` argument carrying structured fields: `log.info("loaded", extra=fields(name=n))`."""
    return {"fields": values}
