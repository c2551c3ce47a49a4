"""One structured log line per request (never prompt text, never a key)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

__all__ = ["configure_logging", "log_request", "logger"]

logger = logging.getLogger("skylane")


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"level": record.levelname, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    if getattr(logger, "_skylane_configured", False):
        logger.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JSONFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger._skylane_configured = True  # type: ignore[attr-defined]


def log_request(fields: dict[str, Any]) -> None:
    level = logging.INFO if fields.get("status", 200) < 500 else logging.ERROR
    if logger.isEnabledFor(level):
        logger.log(level, "request", extra={"fields": fields})
