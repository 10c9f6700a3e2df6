"""One JSON object per log line, as CloudWatch Logs Insights likes them.

stdlib only: ``aws-lambda-powertools`` Logger does the same but costs an extra
import at every cold start, and we log one line per request.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Final

__all__ = ["JsonFormatter", "configure_logging"]

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` is at emit time (Lambda captures stdout; so do tests)."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging() -> logging.Logger:
    """Route the ``flowers_serving`` loggers to stdout as JSON lines, once."""
    logger = logging.getLogger("flowers_serving")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(os.environ.get("FLOWERS_LOG_LEVEL", "INFO").upper())
    return logger
