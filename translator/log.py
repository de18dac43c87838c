"""structlog set-up: one JSON object per line on stdout. Keys and prompt bodies are never logged.

A line is the call's fields, then ``event``, ``level`` and ``timestamp`` (ISO 8601 in UTC, as isoformat writes
it, ``Z`` for the offset): ``{"request_id":"…",…,"status":200,"latency_ms":12.3,"event":"request","level":"info",
"timestamp":"2026-12-01T10:40:25.788433Z"}``.
Every line, the per-request one included, goes through the processors ``configure_logging`` sets; the test
suite calls it too, so its check that no secret reaches the log reads the lines production writes.

The standard library's loggers (aiohttp's ``aiohttp.server``, ``aiohttp.access``, ``aiohttp.web``, asyncio's,
Python's warnings) write through the same renderer, as JSON lines with ``"logger"`` naming them, never as
plain text on stderr. An exception in such a record is shown by its type and frames, not its text: aiohttp's
parser errors quote the line they reject, a header with a key in it included."""

from __future__ import annotations

import logging
import sys
import traceback
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
    root = logging.getLogger()
    root.handlers = [_StdlibToJson()]
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a Python warning too (logger "py.warnings"), not plain text on stderr


log = structlog.get_logger("translator")


def log_request(fields: dict[str, Any]) -> None:
    """The line every request writes (the README's "one JSON line per request")."""
    log.info("request", **fields)


class _StdlibToJson(logging.Handler):
    """A standard-library log record as one of our lines: its message, its logger's name, and its exception's
    type and frames (``file:line function``), never the exception's text or a frame's variables."""

    def emit(self, record: logging.LogRecord) -> None:
        fields: dict[str, Any] = {"logger": record.name}
        if record.exc_info and record.exc_info[1] is not None:
            fields["exception"] = exception_outline(record.exc_info[1])
        log.log(record.levelno, record.getMessage(), **fields)


def exception_outline(exc: BaseException) -> dict[str, Any]:
    """An exception without its text: its type, where it was raised, and the types of its causes."""
    frames = [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in traceback.extract_tb(exc.__traceback__)]
    causes: list[str] = []
    cause = exc.__cause__ or exc.__context__
    while cause is not None and len(causes) < 10:
        causes.append(f"{type(cause).__module__}.{type(cause).__qualname__}")
        cause = cause.__cause__ or cause.__context__
    outline: dict[str, Any] = {"type": f"{type(exc).__module__}.{type(exc).__qualname__}", "frames": frames}
    if causes:
        outline["causes"] = causes
    return outline
