"""Structured logging: one JSON object per line on stderr.

Call `configure_logging()` once from an entry point. Log with the standard library and pass
fields through `extra={"fields": {...}}`; they are merged into the JSON object, so a log line is
both readable and machine-parsable (`jq`, log shippers).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_RESERVED = {"ts", "level", "logger", "msg", "exc"}  # a record's fields never overwrite these


def record_entry(record: logging.LogRecord, ts: Any, formatter: logging.Formatter) -> dict[str, Any]:
    """A log record as a dict: ts, level, logger, msg, the `fields` extra, and `exc` for an exception.

    Shared by the JSON log lines and the telemetry log entries (system/edge/telemetry.py), so both
    carry the same keys. A field named like a reserved key is kept as `field_<name>`.
    """
    entry: dict[str, Any] = {
        "ts": ts,
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields = getattr(record, "fields", None)
    if isinstance(fields, dict):
        for key, value in fields.items():
            entry[key if key not in _RESERVED else f"field_{key}"] = value
    if record.exc_info:
        entry["exc"] = formatter.formatException(record.exc_info)
    return entry


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        entry = record_entry(record, ts, self)
        return json.dumps(entry, default=str, separators=(",", ":"))


def configure_logging(level: str = "info", *, json_lines: bool = True) -> None:
    """Route the root logger to stderr, as JSON lines (or plain text for humans)."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` argument carrying structured fields: `log.info("loaded", extra=fields(name=n))`."""
    return {"fields": values}
