"""The Claude route's stream watch (what its log line says of a relayed stream: usage, stop reason, error,
whether it completed), read from real recordings (tests/fixtures/claude/streams, see SOURCES.md) in reads
cut at event boundaries, as the relay hands them over."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from translator.server.claude_route import _end_of_last_event, _StreamWatch
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


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["", "bom"])
@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("path", sorted(STREAMS.glob("*.sse")), ids=lambda p: p.name)
def test_the_watch_reads_usage_and_stop_reason_whatever_the_reads(path: Path, eol: bytes, bom: bytes) -> None:
    data = path.read_bytes().rstrip(b"\n") + b"\n\n"
    sep = eol + eol
    events = (bom + data.replace(b"\n", eol)).split(sep)[:-1]
    rng = random.Random(path.name)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(events)), rng.randint(0, len(events) - 1)))
        reads = [sep.join(events[a:b]) + sep for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]
        watch = _StreamWatch()
        for read in reads:
            watch.feed(read)
            if watch.complete:  # where the relay cuts the stream: found by the watch, or searched for (CR)
                assert watch.ended_at == (None if eol != b"\n" else _end_of_last_event(read))
                cut = read[: _end_of_last_event(read)]
                assert cut.endswith(sep) and SSEDecoder().feed(cut + b"\n\n")[-1].event == "message_stop"
                break
        usage, stop, complete = expected(data)
        assert (watch.usage, watch.stop_reason, watch.complete) == (usage, stop, complete)
        assert usage and stop is not None


def test_mentions_inside_text_do_not_hide_the_events_after_them() -> None:
    def event(payload: dict[str, Any]) -> bytes:
        return b"event: %s\ndata: %s\n\n" % (payload["type"].encode(), orjson.dumps(payload))

    text = {"type": "text_delta", "text": "an error in message_x"}
    delta = {"type": "content_block_delta", "index": 0, "delta": text}
    read = event(delta) + event(delta) + event(
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}}
    ) + event({"type": "message_stop"})
    watch = _StreamWatch()
    watch.feed(read)
    assert (watch.usage, watch.stop_reason, watch.complete) == ({"output_tokens": 7}, "end_turn", True)
    assert watch.error is None
