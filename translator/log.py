"""structlog set-up: one JSON object per line on stdout. Keys and prompt bodies are never logged.

A line is the call's fields, then ``event``, ``level`` and ``timestamp`` (ISO 8601 in UTC, as isoformat writes
it, ``Z`` for the offset): ``{"request_id":"…",…,"status":200,"latency_ms":12.3,"event":"request","level":"info",
"timestamp":"2026-12-01T10:40:25.788433Z"}``.
Every line, the per-request one included, goes through the processors ``configure_logging`` sets; the test
suite calls it too, so its check that no secret reaches the log reads the lines production writes."""

from __future__ import annotations

import logging
import sys
from typing import Any, BinaryIO

import orjson
import structlog

# structlog's dict_tracebacks, less the frames' local variables (its default shows them): a request's locals
# hold keys and prompt bodies.
_tracebacks = structlog.processors.ExceptionRenderer(structlog.tracebacks.ExceptionDictTransformer(show_locals=False))


def configure_logging(level: str = "info", stream: BinaryIO | None = None) -> None:
    """JSON lines on ``stream`` (stdout's bytes) from ``level`` up. Call it before the first line is logged:
    a logger is built on first use and keeps the level and stream it was built with."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _tracebacks,  # log.exception keeps its traceback, as JSON
            structlog.processors.JSONRenderer(serializer=orjson.dumps),  # bytes, ~10x faster than json
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.BytesLoggerFactory(stream or sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("translator")


def log_request(fields: dict[str, Any]) -> None:
    """The line every request writes (the README's "one JSON line per request")."""
    log.info("request", **fields)
