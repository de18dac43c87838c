"""``translator.sse.SSEDecoder`` against real recorded Claude streams (tests/fixtures/claude/streams, see
tests/fixtures/SOURCES.md) and the WHATWG rules (HTML "9.2 Server-sent events": line endings, comments,
multi-line data, an unterminated last event is dropped)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from translator.sse import SSEDecoder, SSEEvent, encode_data, encode_event

STREAMS = Path(__file__).parent.parent / "fixtures" / "claude" / "streams"
SSE_FILES = sorted(STREAMS.glob("*.sse"))
SMALL_FILES = [
    "claude_stream_two_tool_use_blocks__llm-anthropic.sse",
    "claude_stream_text_for_image_input__llm-anthropic.sse",
]
# The anthropic-sdk-python capture ends right after the last data line: no blank line dispatches it.
UNTERMINATED = "claude_stream_tool_use_input_truncated_by_max_tokens__anthropic-sdk-python.sse"


def decode(parts: Iterable[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for part in parts:
        events += decoder.feed(part)
    return events + decoder.flush()


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_cuts(rng: random.Random, data: bytes) -> list[int]:
    return rng.sample(range(1, len(data)), rng.randint(1, min(len(data) - 1, 3000)))


def reference(data: bytes) -> list[SSEEvent]:
    """Independent reading of an LF-only recording: blank-line separated blocks of ``event:``/``data:``."""
    *blocks, _tail = data.split(b"\n\n")  # the part after the last blank line is never dispatched
    events = []
    for block in blocks:
        fields = dict(line.split(b": ", 1) for line in block.split(b"\n"))
        assert set(fields) <= {b"event", b"data"}
        events.append(SSEEvent(fields[b"event"].decode() if b"event" in fields else None, fields[b"data"]))
    return events


def test_fixture_set_is_complete() -> None:
    assert len(SSE_FILES) == 22
    assert len(list(STREAMS.glob("*.chunks.jsonl"))) == 2


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_whole_file_matches_reference_reading(path: Path) -> None:
    data = path.read_bytes()
    events = decode([data])
    assert events == reference(data)
    assert len(events) == data.count(b"\nevent: ") + 1 - (path.name == UNTERMINATED)
    for event in events:
        payload = event.json()
        assert payload["type"] == event.event  # Claude names every event after its payload's type
    assert events[0].event == "message_start"
    if path.name != UNTERMINATED:
        assert events[-1].event == "message_stop"


def test_unterminated_recording_drops_its_last_event() -> None:
    data = (STREAMS / UNTERMINATED).read_bytes()
    assert data.endswith(b'data: {"type":"message_stop" }')
    events = decode([data])
    assert [e.event for e in events[-2:]] == ["content_block_delta", "message_delta"]
    assert decode([data, b"\n\n"])[-1] == SSEEvent("message_stop", b'{"type":"message_stop" }')


@pytest.mark.parametrize("name", SMALL_FILES)
def test_split_in_two_at_every_byte(name: str) -> None:
    data = (STREAMS / name).read_bytes()
    whole = decode([data])
    assert len(whole) == 10 if "two_tool" in name else len(whole) == 11
    for i in range(len(data) + 1):
        assert decode([data[:i], data[i:]]) == whole, i


def test_one_byte_at_a_time() -> None:
    data = (STREAMS / SMALL_FILES[0]).read_bytes()
    assert decode(data[i : i + 1] for i in range(len(data))) == decode([data])


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_random_boundaries(path: Path) -> None:
    data = path.read_bytes()
    whole = decode([data])
    rng = random.Random(path.name)
    for _ in range(5):
        assert decode(split_at(data, random_cuts(rng, data))) == whole


@pytest.mark.parametrize("eol", [b"\r\n", b"\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_crlf_and_cr_line_endings(path: Path, eol: bytes) -> None:
    data = path.read_bytes()
    converted = data.replace(b"\n", eol)
    whole = decode([data])
    assert decode([converted]) == whole
    rng = random.Random(path.name + repr(eol))
    for _ in range(3):
        assert decode(split_at(converted, random_cuts(rng, converted))) == whole


def test_crlf_split_between_cr_and_lf_every_time() -> None:
    data = (STREAMS / SMALL_FILES[0]).read_bytes().replace(b"\n", b"\r\n")
    cuts = [i + 1 for i in range(len(data)) if data[i : i + 1] == b"\r"]
    assert decode(split_at(data, cuts)) == decode([data.replace(b"\r\n", b"\n")])


@pytest.mark.parametrize("path", SSE_FILES[:6], ids=lambda p: p.name)
def test_comments_and_unknown_fields_are_ignored(path: Path) -> None:
    data = path.read_bytes()
    noisy = b": stream opened\n" + data.replace(
        b"\nevent: ", b"\n: keep-alive\n:\nid: 7\nretry: 1000\nfoo\nevent: "
    ).replace(b"\ndata: ", b"\n:data: not data\ndata: ")
    whole = decode([data])
    assert decode([noisy]) == whole
    rng = random.Random(path.name)
    assert decode(split_at(noisy, random_cuts(rng, noisy))) == whole


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: a\ndata: b\n\n", [SSEEvent(None, b"a\nb")]),
        (b"data: a\ndata:\ndata: b\n\n", [SSEEvent(None, b"a\n\nb")]),
        (b"event: x\ndata:no space\n\n", [SSEEvent("x", b"no space")]),
        (b"data:  two spaces\n\n", [SSEEvent(None, b" two spaces")]),  # only one space is removed
        (b"data\n\n", [SSEEvent(None, b"")]),  # a field without colon has an empty value
        (b"data:\n\n", [SSEEvent(None, b"")]),
        (b"event: only\n\n", []),  # no data: nothing dispatched
        (b"event: a\n\ndata: 1\n\n", [SSEEvent(None, b"1")]),  # the event name is reset by a blank line
        (b"event: a\nevent: b\ndata: 1\n\n", [SSEEvent("b", b"1")]),
        (b"data: 1\n\n\n\ndata: 2\n\n", [SSEEvent(None, b"1"), SSEEvent(None, b"2")]),
        (b": comment\ndata: 1\n: in between\ndata: 2\n\n", [SSEEvent(None, b"1\n2")]),
        (b"data: caf\xc3\xa9 \xe2\x82\xac\n\n", [SSEEvent(None, "caf\u00e9 \u20ac".encode())]),
        (b"\xef\xbb\xbfdata: bom\n\n", [SSEEvent(None, b"bom")]),  # one leading BOM is stripped
        (b"\xef\xbb\xbf\xef\xbb\xbfdata: 2\n\ndata: 3\n\n", [SSEEvent(None, b"3")]),  # not a second one
        (b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n", [SSEEvent(None, b"1"), SSEEvent(None, b"2"), SSEEvent(None, b"3")]),
        # the end of the stream
        (b"data: last\n", []),  # no blank line after it: dropped
        (b"data: last", []),
        (b"data: 1\n\ndata: last\n", [SSEEvent(None, b"1")]),
        (b"data: 1\n\ndata: last\r\n", [SSEEvent(None, b"1")]),
        (b"data: last\r\r", [SSEEvent(None, b"last")]),  # a final CR is a complete line ending
        (b"data: last\n\r", [SSEEvent(None, b"last")]),
        (b"data: last\r\n\r", [SSEEvent(None, b"last")]),
    ],
)
def test_spec_cases_at_every_split(stream: bytes, expected: list[SSEEvent]) -> None:
    assert decode([stream]) == expected
    for i in range(len(stream) + 1):
        assert decode([stream[:i], stream[i:]]) == expected, i
        assert decode([stream[:i], b"", stream[i:]]) == expected, i
    assert decode(stream[i : i + 1] for i in range(len(stream))) == expected


def test_flush_resets_for_reuse_and_drops_a_half_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\ndata: 1\n") == []
    assert decoder.flush() == []
    assert decoder.feed(b"data: 2\n\n") == [SSEEvent(None, b"2")]  # neither the name nor data 1 survive


def test_events_are_returned_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"event: ping\ndata: {}\n") == []
    assert decoder.feed(b"\nevent: x\ndata: 1") == [SSEEvent("ping", b"{}")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [SSEEvent("x", b"1")]


def test_json_of_a_padded_real_event() -> None:
    event = decode([b'event: message_stop\ndata: {"type":"message_stop"          }\n\n'])[0]
    assert event.json() == {"type": "message_stop"}


def test_encoders_round_trip() -> None:
    payload = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a\nb\u00e9"}}
    assert encode_event("content_block_delta", payload) == (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"a\\nb\xc3\xa9"}}\n\n'
    )
    assert encode_data({"a": 1}) == b'data: {"a":1}\n\n'
    events = decode([encode_event("x", payload), encode_data([1, 2])])
    assert events == [SSEEvent("x", orjson.dumps(payload)), SSEEvent(None, b"[1,2]")]


def raws(parts: Iterable[bytes], *, unterminated: bool = False) -> bytes:
    decoder = SSEDecoder()
    events = [e for part in parts for e in decoder.feed(part)] + decoder.flush(unterminated=unterminated)
    return b"".join(e.raw for e in events)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_events_keep_the_bytes_they_came_in(path: Path, eol: bytes) -> None:
    data = b"\xef\xbb\xbf: opened\n" + path.read_bytes().replace(b"\n", eol)
    rng = random.Random(path.name + repr(eol))
    complete = data if path.name != UNTERMINATED else data[: data.rfind(eol + eol) + 2 * len(eol)]
    for parts in ([data], *(split_at(data, random_cuts(rng, data)) for _ in range(3))):
        assert raws(parts) == complete  # every byte up to the last dispatched event, in order
        assert raws(parts, unterminated=True) == data


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        (b"data: last\n", [SSEEvent(None, b"last")]),
        (b"data: last", [SSEEvent(None, b"last")]),
        (b'event: message_stop\ndata: {"type":"message_stop" }',
         [SSEEvent("message_stop", b'{"type":"message_stop" }')]),
        (b"data: 1\n\nevent: x\ndata: la", [SSEEvent(None, b"1"), SSEEvent("x", b"la")]),  # a cut: the caller judges
        (b"data: 1\n\nevent: x", [SSEEvent(None, b"1")]),  # no data yet: nothing
        (b"data: last\r", [SSEEvent(None, b"last")]),
        (b"data: 1\n\n: comment", [SSEEvent(None, b"1")]),
    ],
)
def test_flush_unterminated_returns_a_last_event_missing_its_blank_line(
    stream: bytes, expected: list[SSEEvent]
) -> None:
    for i in range(len(stream) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(stream[:i]) + decoder.feed(stream[i:]) + decoder.flush(unterminated=True)
        assert events == expected, i
        assert b"".join(e.raw for e in events) == stream[: len(b"".join(e.raw for e in events))]
    decoder = SSEDecoder()
    decoder.feed(stream)
    decoder.flush(unterminated=True)
    assert decoder.feed(b"data: again\n\n") == [SSEEvent(None, b"again")]  # as new after a flush


def test_a_held_back_cr_is_a_line_end_once_anything_but_lf_follows() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r\r") == []  # the last CR may be half a CRLF
    assert decoder.feed(b"event: y") == [SSEEvent(None, b"x")]  # it was not: the event is complete now
