"""The Claude route's relayed stream (what its log line says of a relayed stream: usage, stop reason, error,
whether it completed; and that it passes the bytes on as they came, up to message_stop), read from real
recordings (tests/fixtures/claude/streams, see SOURCES.md) decoded from reads cut anywhere."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from translator.server.claude_route import RelayedStream
from translator.sse import SSEDecoder

STREAMS = Path(__file__).parent.parent / "fixtures" / "claude" / "streams"


def expected(data: bytes) -> tuple[dict[str, Any], Any, bool]:
    usage: dict[str, Any] = {}
    stop = None
    events = SSEDecoder().feed(data + b"\n\n")
    for event in events:
        payload = orjson.loads(event.data)
        if payload["type"] == "message_start":
            usage.update(payload["message"].get("usage") or {})
        elif payload["type"] == "message_delta":
            usage.update({k: v for k, v in (payload.get("usage") or {}).items() if v is not None})
            stop = payload["delta"].get("stop_reason")
    return usage, stop, any(e.event == "message_stop" for e in events)


def relayed(reads: list[bytes]) -> tuple[RelayedStream, bytes]:
    stream, decoder, out = RelayedStream(), SSEDecoder(), b""
    for read in reads:
        for event in decoder.feed(read):
            out += stream.feed(event)
            if stream.done:
                return stream, out
    for event in decoder.flush(unterminated=True):
        out += stream.feed(event)
    return stream, out


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["", "bom"])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("path", sorted(STREAMS.glob("*.sse")), ids=lambda p: p.name)
def test_the_relay_reads_usage_and_stop_reason_whatever_the_reads(path: Path, eol: bytes, bom: bytes) -> None:
    data = bom + path.read_bytes().replace(b"\n", eol)
    rng = random.Random(path.name)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, min(200, len(data) - 1))))
        reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        stream, out = relayed(reads)
        usage, stop, complete = expected(path.read_bytes())
        assert (stream.usage, stream.stop_reason, stream.done, stream.failed) == (usage, stop, complete, False)
        assert out == data[: len(out)]  # the bytes as they came,
        assert out.endswith(eol * 2) or "truncated" in path.name  # through message_stop's blank line
        assert SSEDecoder().feed(data[len(out) :]) == []  # and no event after it
        assert usage and stop is not None


def test_mentions_inside_text_do_not_hide_the_events_after_them() -> None:
    def event(payload: dict[str, Any]) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(), orjson.dumps(payload))

    text = {"type": "text_delta", "text": "an error in message_x"}
    delta = {"type": "content_block_delta", "index": 0, "delta": text}
    read = event(delta) + event(delta) + event(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
    ) + event({"type": "message_stop"})
    stream, out = relayed([read])
    assert (stream.usage, stream.stop_reason, stream.done, stream.failed) == ({"output_tokens": 7}, "end_turn", True,
                                                                              False)
    assert stream.error_type is None
    assert out == read


def test_an_error_event_ends_the_stream_failed_and_is_passed_on() -> None:
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"busy"}}\n\n'
    stream, out = relayed([b'event: ping\ndata: {"type":"ping"}\n\n' + error + b"event: ping\ndata: {}\n\n"])
    assert (stream.done, stream.failed, stream.error_type) == (True, True, "overloaded_error")
    assert out.endswith(error)
