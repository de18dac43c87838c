"""The per-request log line: written directly once logging is configured, byte for byte as structlog writes it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson
import pytest
import structlog

import translator.log
from translator.log import configure_logging, log_request

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


@pytest.fixture
def configured() -> Iterator[io.BytesIO]:
    saved = structlog.get_config()
    out = io.BytesIO()
    try:
        yield out
    finally:  # the suite's own set-up back (it captures every line the server logs)
        structlog.configure(**saved)
        translator.log._request_line = None


def _unstamped(line: bytes) -> tuple[bytes, str]:
    stamp = orjson.loads(line)["timestamp"]
    return line.replace(stamp.encode(), b"T"), stamp


def test_the_request_line_is_the_one_structlog_writes(configured: io.BytesIO) -> None:
    configure_logging("info", stream=configured)
    log_request(dict(FIELDS))
    structlog.get_logger("translator").info("request", **FIELDS)  # (a fresh proxy: the module's is not cached)
    direct, through = configured.getvalue().splitlines()
    assert _unstamped(direct)[0] == _unstamped(through)[0]  # same keys, same order, same bytes
    line = orjson.loads(direct)
    assert list(line)[-3:] == ["event", "level", "timestamp"]
    assert {k: line[k] for k in FIELDS} == FIELDS and (line["event"], line["level"]) == ("request", "info")
    assert _unstamped(direct)[1].endswith("Z")


def test_a_level_above_info_drops_the_request_line(configured: io.BytesIO) -> None:
    configure_logging("warning", stream=configured)
    log_request(dict(FIELDS))
    structlog.get_logger("translator").warning("still written")
    assert [orjson.loads(x)["event"] for x in configured.getvalue().splitlines()] == ["still written"]


def test_unconfigured_the_line_goes_through_structlog(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(translator.log, "log", type("L", (), {"info": lambda self, e, **kw: seen.append((e, kw))})())
    log_request(dict(FIELDS))
    assert seen == [("request", FIELDS)]


def test_timestamps_are_written_as_isoformat_writes_them() -> None:
    import datetime
    import re

    from translator.log import _now

    for _ in range(3):
        before = datetime.datetime.now(tz=datetime.UTC)
        stamp = _now()
        after = datetime.datetime.now(tz=datetime.UTC)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp)
        parsed = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - datetime.timedelta(milliseconds=1) <= parsed <= after + datetime.timedelta(milliseconds=1)


@pytest.mark.parametrize("ns", [1796123579_000000000, 1796123579_500000000, 1796123579_000001999,
                                1796123580_250000000, 1796123580_999999999])
def test_a_timestamp_is_isoformat_to_the_microsecond_with_none_at_a_whole_second(
    monkeypatch: pytest.MonkeyPatch, ns: int
) -> None:
    import datetime

    monkeypatch.setattr(translator.log.time, "time_ns", lambda: ns)
    second, micros = divmod(ns // 1000, 1_000_000)
    at = datetime.datetime.fromtimestamp(second, tz=datetime.UTC).replace(microsecond=micros)
    assert translator.log._now() == at.isoformat().replace("+00:00", "Z")
