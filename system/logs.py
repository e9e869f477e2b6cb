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

_RESERVED = {"ts", "level", "logger", "msg"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ts, level, logger, msg, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry[key if key not in _RESERVED else f"field_{key}"] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
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
