"""The log lines as production writes them: the suite logs through ``configure_logging`` (tests/conftest.py)."""

from __future__ import annotations

import datetime
import io
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from translator.log import configure_logging, log, log_request

FIELDS = {
    "request_id": "0123456789abcdef",
    "method": "POST",
    "path": "/v1/chat/completions",
    "route": "openai",
    "key": "team-a",
    "model": "gpt-4o",
    "upstream_model": "claude-sonnet-4-5",
    "stream": True,
    "n": 1,
    "upstream": "anthropic",
    "attempts": 2,
    "ttft_ms": 812.5,
    "error": None,
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0}},
    "status": 200,
    "latency_ms": 1234.56,
}


def _lines(logged: str) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in logged.splitlines()]


def test_the_request_line_is_its_fields_then_event_level_and_timestamp(server_log: Callable[[], str]) -> None:
    before = datetime.datetime.now(tz=datetime.UTC)
    log_request(dict(FIELDS))
    after = datetime.datetime.now(tz=datetime.UTC)
    (line,) = _lines(server_log())
    assert list(line) == [*FIELDS, "event", "level", "timestamp"]
    assert {k: line[k] for k in FIELDS} == FIELDS and (line["event"], line["level"]) == ("request", "info")
    stamp = line["timestamp"]  # isoformat's, in UTC: no fraction at a whole second
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
    assert before <= datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")) <= after


def test_an_exception_is_logged_as_json_without_the_frames_locals(server_log: Callable[[], str]) -> None:
    def handler() -> None:
        api_key = "sk-ant-a-local-that-must-not-be-logged"  # noqa: F841 (a local, as a request's key would be)
        raise ValueError("boom")

    try:
        handler()
    except ValueError:
        log.exception("unhandled error", request_id="0123456789abcdef")
    (line,) = _lines(server_log())
    assert (line["event"], line["level"], line["request_id"]) == ("unhandled error", "error", "0123456789abcdef")
    (exc,) = line["exception"]
    assert (exc["exc_type"], exc["exc_value"]) == ("ValueError", "boom")
    assert exc["frames"][-1]["name"] == "handler"
    assert "sk-ant-a-local" not in server_log() and "locals" not in exc["frames"][-1]


def test_a_standard_library_record_is_a_json_line_without_the_exceptions_text(server_log: Callable[[], str]) -> None:
    """aiohttp logs its parser's errors with the rejected line in the exception's text, a key included."""
    try:
        try:
            raise OSError("the cause, sk-ant-in-a-cause")
        except OSError as cause:
            raise BadHttpMessage("Invalid header value char:\n\n  b'x-api-key: sk-ant-in-a-header\\x01'") from cause
    except BadHttpMessage as exc:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (line,) = _lines(server_log())
    assert (line["event"], line["logger"], line["level"]) == ("Error handling request from 127.0.0.1",
                                                              "aiohttp.server", "error")
    assert line["exception"]["type"] == "aiohttp.http_exceptions.BadHttpMessage"
    assert line["exception"]["causes"] == ["builtins.OSError"]
    assert line["exception"]["frames"][-1].endswith(" test_a_standard_library_record_is_a_json_line_without_the_"
                                                    "exceptions_text")
    assert "sk-ant" not in server_log()


def test_a_process_that_configured_logging_writes_warnings_and_stdlib_records_as_json_lines() -> None:
    script = ("import logging, warnings\n"
              "from translator.log import configure_logging\n"
              "configure_logging()\n"
              "warnings.warn('a deprecated thing', DeprecationWarning, stacklevel=1)\n"
              "logging.getLogger('asyncio').error('Unclosed client session')\n")
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, timeout=60, check=True)
    assert done.stderr == b""
    lines = _lines(done.stdout.decode())
    assert [(line["logger"], line["level"]) for line in lines] == [("py.warnings", "warning"), ("asyncio", "error")]
    assert "DeprecationWarning: a deprecated thing" in lines[0]["event"]
    assert lines[1]["event"] == "Unclosed client session"


@pytest.fixture
def reconfigured() -> Iterator[io.BytesIO]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers, root.level
    try:
        yield io.BytesIO()
    finally:  # the suite's own set-up back (it captures every line the server logs)
        structlog.configure(**saved)
        root.handlers, root.level = handlers, level


def test_a_level_above_info_drops_the_request_line(reconfigured: io.BytesIO) -> None:
    configure_logging("warning", stream=reconfigured)
    fresh = structlog.get_logger("translator")  # (the module's logger was built with the suite's set-up)
    fresh.info("request", **FIELDS)
    fresh.warning("still written")
    assert [x["event"] for x in _lines(reconfigured.getvalue().decode())] == ["still written"]
