"""One JSON object per log line, as CloudWatch Logs Insights likes them, for every line the process writes.

* Our ``flowers_serving`` loggers write JSON lines to stdout.
* So does the root logger, which is where third-party libraries log
  (requests-hardened's "Forbidden IP address" warning, urllib3, Pillow):
  its other handlers, the Lambda runtime's plain-text one included, are
  replaced and it passes WARNING and above only.
* Python warnings go through logging (``logging.captureWarnings``), so a
  stray ``warnings.warn`` is a JSON line too; the image decoder collects its
  own into one line per request (see ``flowers_serving.imaging``).
* C libraries that print to stderr (libtiff, LiteRT at start-up) are
  captured around the calls that can print, by :func:`capture_stderr`, and
  logged as JSON by the caller.

stdlib only: ``aws-lambda-powertools`` Logger does the same but costs an extra
import at every cold start, and we log one line per request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

__all__ = ["CapturedOutput", "JsonFormatter", "capture_stderr", "configure_logging"]

_STANDARD: Final = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
#: What one captured burst of C-library output may keep; the rest is counted, not stored.
_CAPTURE_LIMIT: Final = 4096


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


def _json_handler() -> logging.Handler:
    handler = _StdoutHandler()
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging() -> logging.Logger:
    """Route the ``flowers_serving`` loggers, the root logger and Python warnings to stdout as JSON lines, once."""
    logger = logging.getLogger("flowers_serving")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        logger.addHandler(_json_handler())
        logger.propagate = False
    logger.setLevel(os.environ.get("FLOWERS_LOG_LEVEL", "INFO").upper())
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        for handler in list(root.handlers):
            # Plain-text printers go (basicConfig's, the Lambda runtime's); subclasses such
            # as pytest's capture handlers stay.
            if type(handler) is logging.StreamHandler or type(handler).__module__.startswith("awslambdaric"):
                root.removeHandler(handler)
        root.addHandler(_json_handler())
    root.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return logger


class CapturedOutput:
    """What a C library printed to stderr inside :func:`capture_stderr` (set on exit)."""

    def __init__(self) -> None:
        self.text = ""
        self.size = 0


@contextmanager
def capture_stderr() -> Iterator[CapturedOutput]:
    """Catch what native code writes to file descriptor 2 (so it cannot leave a plain-text line).

    The output goes to an unlinked temporary file, and only its first few KB are
    kept. If descriptor 2 cannot be redirected, the block runs uncaptured.
    """
    captured = CapturedOutput()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.size = sink.tell()
            sink.seek(0)
            captured.text = sink.read(_CAPTURE_LIMIT).decode("utf-8", errors="replace").strip()
