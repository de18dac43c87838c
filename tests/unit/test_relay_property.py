"""A differential test of the stream relay on generated streams: whatever the text (escapes, quotes,
backslashes, astral characters, line breaks), the line ends (LF, CRLF, CR) and the places the upstream's
reads are cut, what the relay writes for the client is exactly what feeding each event to the converter
gives. (There is one path, the plain one; this guards the decoder and the pump around it.)"""

from __future__ import annotations

import asyncio
import itertools
import os
from types import SimpleNamespace
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from translator.convert import ConvertedRequest
from translator.errors import ProxyOverloaded
from translator.server.claude_route import RelayedStream
from translator.server.openai_route import chat_converter
from translator.server.streaming import ConvertedStream, EventStream, pump
from translator.sse import encode_data
from translator.upstream import StreamEvents

PROPERTY = settings(
    max_examples=200, deadline=None, database=None,
    derandomize=os.environ.get("CI") == "true",  # CI replays one fixed set; local runs keep exploring
    suppress_health_check=[HealthCheck.too_slow],
)

TEXT = st.lists(
    st.characters(codec="utf-8") | st.sampled_from(['"', "\\", "\\n", "\n", "\r", "\r\n", "\U0001f916", "\u2028"]),
    max_size=20,
).map("".join)


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A Claude stream: text and tool blocks with generated deltas."""
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3}}}
    ]
    for index in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            start = {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            events.append(start)
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}}
                       for t in draw(st.lists(TEXT, max_size=6))]
        else:
            events.append({"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": f"toolu_{index}", "name": "f", "input": {}}})
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": t}}
                       for t in draw(st.lists(TEXT, max_size=6))]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
    events.append({"type": "message_stop"})
    return events


def _reads(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({c % (len(data) + 1) for c in cuts}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]  # (an empty read is the stream's end)


def _upstream_stream(reads: list[bytes]) -> Any:
    """An upstream stream as the relay's ``pump`` reads it: the given reads, then its end."""
    pending = reads[::-1]

    async def read() -> bytes:
        return pending.pop() if pending else b""

    return SimpleNamespace(next_events=StreamEvents(read).next, abort=lambda error: None)


async def _relayed(reads: list[bytes], stream: EventStream) -> bytes:
    source = SimpleNamespace(upstream=SimpleNamespace(settings=SimpleNamespace(stream_idle_timeout=60.0)),
                             response=_upstream_stream(reads))
    written: list[bytes] = []

    async def write(data: bytes) -> None:
        written.append(data)

    end = await pump(source, stream, write)  # type: ignore[arg-type]
    return b"".join(written) + end


def _new_chat_stream() -> ConvertedStream:
    converter = chat_converter(ConvertedRequest(body={}, include_usage=True), 0, created=1, model="m", stream_id=None)
    return ConvertedStream(converter, encode_data)


@PROPERTY
@given(streams(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(0, 10**6), max_size=30))
def test_the_openai_relay_writes_what_feeding_each_event_gives(
    events: list[dict[str, Any]], eol: bytes, cuts: list[int]
) -> None:
    expected = _new_chat_stream()
    want = b"".join(encode_data(chunk) for event in events for chunk in expected.converter.feed(event))
    data = b"".join(_event(e) for e in events).replace(b"\n", eol)
    stream = _new_chat_stream()
    assert asyncio.run(_relayed(_reads(data, cuts), stream)) == want
    assert (stream.done, stream.failed) == (True, False)


@PROPERTY
@given(streams(), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.lists(st.integers(0, 10**6), max_size=30))
def test_the_claude_relay_passes_the_bytes_on_as_they_came(
    events: list[dict[str, Any]], eol: bytes, cuts: list[int]
) -> None:
    data = b"".join(_event(e) for e in events).replace(b"\n", eol)
    stream = RelayedStream()
    assert asyncio.run(_relayed(_reads(data, cuts), stream)) == data
    assert (stream.usage, stream.stop_reason, stream.failed) == ({"input_tokens": 3, "output_tokens": 9}, "end_turn",
                                                                 False)


def test_nothing_follows_a_stream_that_has_ended() -> None:
    # The relay's shutdown farewell is the stream's own fail(): once the stream is done it adds nothing.
    err = ProxyOverloaded("the proxy is shutting down; retry the request")
    for stream in (_new_chat_stream(), RelayedStream()):
        stream.end()
        assert (stream.done, stream.fail(err)) == (True, b"")
