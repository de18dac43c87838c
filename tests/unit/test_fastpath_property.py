"""A differential test of the fast path (``translator.convert.fastpath``) against the plain one, its reference:
on generated Claude streams (texts with escapes, quotes, backslashes, astral characters and line breaks, written
by orjson or with ASCII escapes; pings, tool and thinking blocks, text deltas where they write nothing, broken
deltas, streams cut short), with LF, CRLF or CR line ends and the upstream's reads cut anywhere, the relay writes
byte for byte the same with the fast path as without it, for the chat and the Responses converters, and their
final state (usage, stop reason, failure, the Responses object) agrees."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_relay_property import PROPERTY, TEXT, _reads, _relayed
from translator.convert import StreamConverter
from translator.convert.fastpath import FastChatConverter, FastResponsesConverter, TextRun, text_runs
from translator.convert.responses_stream import ResponsesStreamConverter
from translator.server.responses_route import _encoded_event
from translator.server.streaming import ConvertedStream, FastConvertedStream
from translator.sse import encode_data
from translator.upstream import StreamEvents

Event = dict[str, Any]
BROKEN = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "BROKEN"}}
LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])
CUTS = st.lists(st.integers(0, 10**6), max_size=30)


def _text_deltas(draw: st.DrawFn, index: int) -> list[Event]:
    events: list[Event] = []
    for text in draw(st.lists(TEXT, max_size=8)):
        events.append({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})
        if draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from([{"type": "ping"}, BROKEN])))
    return events


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """A Claude stream: text, tool, thinking and server tool blocks with generated deltas (text deltas to every kind),
    ended, or cut short anywhere."""
    tier = draw(st.sampled_from([None, "standard", "priority"]))  # (a served tier is on every chat chunk)
    events: list[Event] = [
        {"type": "message_start", "message": {"id": "msg_1", "model": "m",
                                              "usage": {"input_tokens": 3, "service_tier": tier}}}
    ]
    for index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["text", "text", "tool", "thinking", "server"]))
        block = {"text": {"type": "text", "text": draw(st.sampled_from(["", "Hi"]))},
                 "tool": {"type": "tool_use", "id": f"toolu_{index}", "name": "f", "input": {}},
                 "thinking": {"type": "thinking", "thinking": ""},
                 "server": {"type": "server_tool_use", "id": f"srvtoolu_{index}", "name": "web_search",
                            "input": {}}}[kind]  # (text after a server tool starts a new paragraph)
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        if kind == "tool":
            events += [{"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": t}}
                       for t in draw(st.lists(st.sampled_from(['{"a":', " 1", "}"]), max_size=3))]
        elif kind == "thinking":
            events += [{"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta",
                                                                              "thinking": t}}
                       for t in draw(st.lists(TEXT, max_size=3))]
        events += _text_deltas(draw, index)  # on a tool or thinking block they write nothing
        events.append({"type": "content_block_stop", "index": index})
    stop = draw(st.sampled_from(["end_turn", "max_tokens", "refusal"]))
    events.append({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 9}})
    events.append({"type": "message_stop"})
    return events[: draw(st.integers(1, len(events)))] if draw(st.booleans()) else events


def _encoded(events: list[Event], ascii_escapes: bool, eol: bytes) -> bytes:
    """The stream as an upstream writes it: compact JSON (orjson's, or with every non-ASCII character
    escaped, surrogate pairs for astral ones), a broken delta with an invalid escape."""
    out = []
    for event in events:
        if event is BROKEN:
            data = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"\\x"}}'
        elif ascii_escapes:
            data = json.dumps(event, separators=(",", ":")).encode()
        else:
            data = orjson.dumps(event)
        out.append(b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n")
    return b"".join(out).replace(b"\n", eol)


def _chat(fast: bool, include_usage: bool) -> ConvertedStream:
    settings: dict[str, Any] = {"created": 1, "model": "m", "include_usage": include_usage}
    if fast:
        return FastConvertedStream(FastChatConverter(**settings), encode_data)
    return ConvertedStream(StreamConverter(**settings), encode_data)


def _responses(fast: bool) -> ConvertedStream:
    settings: dict[str, Any] = {"response_id": "resp_1", "created_at": 1, "model": "m", "echo": {"store": True}}
    if fast:
        return FastConvertedStream(FastResponsesConverter(**settings), _encoded_event)
    return ConvertedStream(ResponsesStreamConverter(**settings), _encoded_event)


def _same(plain: ConvertedStream, fast: ConvertedStream, reads: list[bytes]) -> None:
    want = asyncio.run(_relayed(reads, plain))
    assert asyncio.run(_relayed(reads, fast)) == want
    assert (fast.done, fast.failed, fast.usage, fast.stop_reason, fast.error_type) == (
        plain.done, plain.failed, plain.usage, plain.stop_reason, plain.error_type)


@PROPERTY
@given(streams(), st.booleans(), LINE_ENDS, CUTS, st.booleans())
def test_the_chat_fast_path_writes_what_the_plain_path_writes(
    events: list[Event], ascii_escapes: bool, eol: bytes, cuts: list[int], include_usage: bool
) -> None:
    reads = _reads(_encoded(events, ascii_escapes, eol), cuts)
    _same(_chat(False, include_usage), _chat(True, include_usage), reads)


@PROPERTY
@given(streams(), st.booleans(), LINE_ENDS, CUTS)
def test_the_responses_fast_path_writes_what_the_plain_path_writes(
    events: list[Event], ascii_escapes: bool, eol: bytes, cuts: list[int]
) -> None:
    reads = _reads(_encoded(events, ascii_escapes, eol), cuts)
    plain, fast = _responses(False), _responses(True)
    _same(plain, fast, reads)
    assert getattr(fast.converter, "response", None) == getattr(plain.converter, "response", None)


# --- the fast path is taken where it should be (else the tests above would compare the plain path with itself)


def _deltas(*texts: str, index: int = 0) -> bytes:
    return _encoded([{"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": t}}
                     for t in texts], False, b"\n")


def test_a_run_of_text_deltas_is_found_with_its_texts_and_bounds() -> None:
    data = b"event: ping\ndata: {}\n\n" + _deltas("a", 'q"\\', "\U0001f916") + _deltas("b", index=1)
    start = len(b"event: ping\ndata: {}\n\n")
    split = start + len(_deltas("a", 'q"\\', "\U0001f916"))
    assert text_runs(data) == [TextRun(0, ["a", 'q"\\', "\U0001f916"], start, split),
                               TextRun(1, ["b"], split, len(data))]


def test_what_is_not_a_text_delta_in_claudes_compact_form_is_no_run() -> None:
    assert text_runs(_deltas("a").replace(b"\n", b"\r\n")) == []
    assert text_runs(_deltas("a").replace(b'"index":0', b'"index":00')) == []
    assert text_runs(_deltas("a").replace(b'"text":"a"', b'"text":"\\x"')) == []
    assert text_runs(_deltas("a").replace(b"data: ", b"data:")) == []


def test_runs_come_only_between_two_events() -> None:
    async def events(reads: list[bytes]) -> list[Any]:
        pending = reads[::-1]

        async def read() -> bytes:
            return pending.pop() if pending else b""

        stream, out = StreamEvents(read), []
        while (got := await stream.next(runs=True)) is not None:
            out += got
        return out

    start = _encoded([{"type": "message_start", "message": {}}], False, b"\n")
    got = asyncio.run(events([start + _deltas("a", "b"), _deltas("c")[:10], _deltas("c")[10:] + _deltas("d")]))
    assert [type(e).__name__ for e in got] == ["SSEEvent", "TextRun", "SSEEvent", "TextRun"]
    assert [e.texts for e in got if isinstance(e, TextRun)] == [["a", "b"], ["d"]]
    # after a comment the decoder is inside an event's lines: the run is decoded
    got = asyncio.run(events([start + b": hi\n" + _deltas("a")]))
    assert [type(e).__name__ for e in got] == ["SSEEvent", "SSEEvent"]


def _plain_deltas(stream: ConvertedStream) -> list[Any]:
    """The text deltas the stream's converter will be fed one by one (the plain path), as they come."""
    fed: list[Any] = []
    plain_feed = stream.converter.feed

    def feed(event: Any) -> Any:
        if event.get("type") == "content_block_delta":
            fed.append(event)
        return plain_feed(event)

    stream.converter.feed = feed  # type: ignore[method-assign]
    return fed


def test_the_fast_path_takes_the_runs_of_a_long_text_stream() -> None:
    # after the delta that opens the message (Responses), every run is written by write_texts
    start = _encoded([{"type": "message_start", "message": {}},
                      {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}],
                     False, b"\n")
    for stream, plain in ((_chat(True, False), 0), (_responses(True), 1)):
        fed = _plain_deltas(stream)
        asyncio.run(_relayed([start, _deltas("a", "b"), _deltas("c", "d")], stream))
        assert len(fed) == plain
