"""structlog set-up: one JSON object per line on stdout. Keys and prompt bodies are never logged."""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure_logging(level: str = "info") -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,  # log.exception keeps its traceback, as JSON
            structlog.processors.JSONRenderer(serializer=orjson.dumps),  # bytes, ~10x faster than json
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.BytesLoggerFactory(sys.stdout.buffer),
        cache_logger_on_first_use=True,
    )


log = structlog.get_logger("translator")
