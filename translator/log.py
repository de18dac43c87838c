"""structlog set-up: one JSON object per line on stdout. Keys and prompt bodies are never logged."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, BinaryIO, cast

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

_tracebacks = structlog.processors.dict_tracebacks  # log.exception keeps its traceback, as JSON
_json = structlog.processors.JSONRenderer(serializer=orjson.dumps)  # bytes, ~10x faster than json


def _render(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> Any:
    """structlog's add_log_level, TimeStamper(fmt="iso", utc=True), dict_tracebacks and JSONRenderer, in
    that order and with the same output, as one processor: a line is written per request, and four
    processor calls (the stamper's own wrapper, a traceback check per line) cost more than the work."""
    event_dict = structlog.processors.add_log_level(logger, method_name, event_dict)
    event_dict["timestamp"] = _now()
    if "exc_info" in event_dict:  # only then has dict_tracebacks anything to do
        event_dict = _tracebacks(logger, method_name, event_dict)
    return _json(logger, method_name, event_dict)


def configure_logging(level: str = "info", stream: BinaryIO | None = None) -> None:
    """JSON lines on ``stream`` (stdout's bytes) from ``level`` up."""
    global _request_line
    out = stream or sys.stdout.buffer
    threshold = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[_render],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.BytesLoggerFactory(out),
        cache_logger_on_first_use=True,
    )
    _request_line = partial(_write_request_line, out) if threshold <= logging.INFO else _drop


log = structlog.get_logger("translator")
_request_line: Callable[[dict[str, Any]], None] | None = None  # set by configure_logging


def log_request(fields: dict[str, Any]) -> None:
    """The line every request writes: ``log.info("request", **fields)``. Once ``configure_logging`` has run,
    the same line (the same processor, the same stream, the same bytes) is written without structlog's
    bound-logger dispatch (a proxy lookup, the context and the fields copied twice, a lock), which costs
    more than rendering the line, on every request. Set up otherwise (tests configure structlog their own
    way), it goes through structlog."""
    if _request_line is None:
        log.info("request", **fields)
    else:
        _request_line(fields)


def _write_request_line(out: BinaryIO, fields: dict[str, Any]) -> None:
    # As structlog builds it: the context (none), the fields, then "event"; then what _render adds.
    line = {**fields, "event": "request", "level": "info", "timestamp": _now()}
    out.write(cast(bytes, _json(None, "info", line)) + b"\n")  # (orjson's bytes)
    out.flush()


def _now() -> str:
    """The time as TimeStamper(fmt="iso", utc=True) writes it (``2026-12-01T10:40:25.788433Z``; no fraction
    at a whole second, as isoformat), its date and time of day formatted once a second, not per line."""
    second, micros = divmod(time.time_ns() // 1000, 1_000_000)  # (integers: no float rounding)
    if second != _stamped[0]:
        _stamped[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_stamped[1]}.{micros:06d}Z" if micros else f"{_stamped[1]}Z"


_stamped: list[Any] = [-1, ""]  # the second last formatted, and its text


def _drop(fields: dict[str, Any]) -> None:
    return None
