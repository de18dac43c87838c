"""``translator.convert.wire``: its TypedDicts are claims nothing checks at run time, so these tests hold
them to recorded traffic (tests/fixtures, see SOURCES.md) and to what the converters write.

A recording may carry fields the types leave out (the APIs add fields) and block or event types yet to come
(the converters skip them): it must fit its type, not match it. What the converters write must match its
type exactly: every required key there, no key the type does not name.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from pathlib import Path
from typing import Any, Literal, NotRequired, Required, Union, get_args, get_origin

import orjson
import pytest

from translator.convert import ModelProfile, StreamConverter, convert_request, convert_response, wire
from translator.errors import InvalidRequest
from translator.sse import SSEDecoder

FIXTURES = Path(__file__).parent.parent / "fixtures"
RESPONSES = sorted((FIXTURES / "claude" / "responses").iterdir())
STREAMS = sorted((FIXTURES / "claude" / "streams").iterdir())
REQUESTS = sorted((FIXTURES / "openai" / "requests").iterdir())
PROFILES = {
    "budget": ModelProfile(),
    "adaptive": ModelProfile(structured_output=True, thinking_mode="adaptive", max_output_tokens=64000),
}


def misfits(value: Any, tp: Any, path: str = "$", *, exact: bool) -> list[str]:
    """Where ``value`` does not fit ``tp``, a type as wire.py writes them (empty: it fits)."""
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any or tp is object:
        return []
    if tp is None or tp is type(None):
        return [] if value is None else [f"{path}: {value!r:.60} is not null"]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r:.60} is not one of {args}"]
    if origin in (Union, types.UnionType):
        return _union_misfits(value, args, path, exact=exact)
    if typing.is_typeddict(tp):
        return _typeddict_misfits(value, tp, path, exact=exact)
    if origin in (list, collections.abc.Sequence, dict):
        return _container_misfits(value, origin, args, path, exact=exact)
    kinds = (int, float) if tp is float else tp  # (a JSON number without a fraction is an int)
    if isinstance(value, kinds) and not (isinstance(value, bool) and tp is not bool):
        return []
    return [f"{path}: {value!r:.60} is not {tp.__name__}"]


def _container_misfits(value: Any, origin: Any, args: tuple[Any, ...], path: str, *, exact: bool) -> list[str]:
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {value!r:.60} is not an object"]
        return [m for k, v in value.items() for m in misfits(v, args[1], f"{path}.{k}", exact=exact)]
    if not isinstance(value, list):
        return [f"{path}: {value!r:.60} is not an array"]
    return [m for i, v in enumerate(value) for m in misfits(v, args[0], f"{path}[{i}]", exact=exact)]


def _typeddict_misfits(value: Any, tp: Any, path: str, *, exact: bool) -> list[str]:
    if not isinstance(value, dict):
        return [f"{path}: {value!r:.60} is not an object ({tp.__name__})"]
    # (from the hints, not __required_keys__: under Python 3.11 those ignore NotRequired in string annotations)
    hints = typing.get_type_hints(tp, include_extras=True)
    found = []
    for key, hint in hints.items():
        wrapper = get_origin(hint)
        required = wrapper is Required or (tp.__total__ and wrapper is not NotRequired)
        inner = get_args(hint)[0] if wrapper in (Required, NotRequired) else hint
        if key in value:
            found += misfits(value[key], inner, f"{path}.{key}", exact=exact)
        elif required:
            found.append(f"{path}: no {key!r} ({tp.__name__})")
    if exact:
        found += [f"{path}.{key}: not in {tp.__name__}" for key in sorted(value.keys() - hints.keys())]
    return found


def _union_misfits(value: Any, members: tuple[Any, ...], path: str, *, exact: bool) -> list[str]:
    tried = [misfits(value, member, path, exact=exact) for member in members]
    if not all(tried):
        return []
    if isinstance(value, dict) and all(typing.is_typeddict(m) for m in members):  # tagged by "type"
        named = [found for member, found in zip(members, tried, strict=True) if value.get("type") in _tags(member)]
        if named:
            return named[0]
        if not exact:
            return []  # a type yet to come
    return [f"{path}: {value!r:.60} fits none of {[getattr(m, '__name__', m) for m in members]}", *tried[0]]


def _tags(tp: Any) -> tuple[Any, ...]:
    hint = typing.get_type_hints(tp).get("type")
    return get_args(hint) if get_origin(hint) is Literal else ()


def claude_events(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):  # vercel/ai: one payload a line, no SSE framing
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    decoder = SSEDecoder()
    return [event.json() for event in decoder.feed(data) + decoder.flush()]


# --- the checker itself ---


def test_misfits_names_what_is_wrong() -> None:
    block = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    assert misfits(block, wire.ToolUseBlock, exact=True) == []
    assert misfits({**block, "id": None}, wire.ToolUseBlock, exact=True) == ["$.id: None is not str"]
    assert misfits({"type": "tool_use", "id": "t", "name": "f"}, wire.ToolUseBlock, exact=True) == [
        "$: no 'input' (ToolUseBlock)"
    ]
    assert misfits({**block, "extra": 1}, wire.ToolUseBlock, exact=False) == []
    assert misfits({**block, "extra": 1}, wire.ToolUseBlock, exact=True) == ["$.extra: not in ToolUseBlock"]
    assert misfits({"type": "text", "text": "hi"}, wire.TextBlock, exact=True) == []  # (citations NotRequired)
    assert misfits({"type": "future_block"}, wire.ContentBlock, exact=False) == []
    assert misfits({"type": "future_block"}, wire.ContentBlock, exact=True) != []
    assert misfits({"type": "text", "text": 1}, wire.ContentBlock, exact=False) == ["$.text: 1 is not str"]
    assert misfits(True, int, exact=True) == ["$: True is not int"]
    assert misfits(1, float, exact=True) == []


# --- recordings fit their types ---


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.name)
def test_a_recorded_response_is_a_claude_message(path: Path) -> None:
    assert misfits(orjson.loads(path.read_bytes()), wire.ClaudeMessage, exact=False) == []


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name)
def test_each_recorded_stream_event_is_a_stream_event(path: Path) -> None:
    events = claude_events(path)
    assert events
    assert [m for e in events for m in misfits(e, wire.StreamEvent, exact=False)] == []


def test_an_error_event_is_an_error_event() -> None:
    event = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}  # ("Streaming")
    assert misfits(event, wire.ErrorEvent, exact=True) == []


# --- what the converters write matches its type ---


@pytest.mark.parametrize("path", RESPONSES, ids=lambda p: p.name)
def test_a_converted_response_is_a_chat_completion(path: Path) -> None:
    completion = convert_response(orjson.loads(path.read_bytes()), created=1, model="m")
    assert misfits(completion, wire.ChatCompletion, exact=True) == []


@pytest.mark.parametrize("path", STREAMS, ids=lambda p: p.name)
def test_each_converted_chunk_is_a_chunk(path: Path) -> None:
    conv = StreamConverter(created=1, model="m", include_usage=True)
    chunks = [chunk for event in claude_events(path) for chunk in conv.feed(event)] + conv.finish()
    assert chunks
    chunk_type = wire.ChatCompletionChunk | wire.OpenAIErrorResponse
    assert [m for chunk in chunks for m in misfits(chunk, chunk_type, exact=True)] == []


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.name)
def test_a_converted_request_is_a_claude_request(path: Path, profile: str) -> None:
    req = orjson.loads(path.read_bytes())
    try:
        conv = convert_request(req, model="claude-x", profile=PROFILES[profile])
    except InvalidRequest:  # (a request the proxy refuses has no Claude form)
        return
    assert misfits(req, wire.ChatCompletionRequest, exact=False) == []
    assert misfits(conv.body, wire.ClaudeRequest, exact=True) == []


def test_a_converted_request_with_every_mapped_field_is_a_claude_request() -> None:
    req = {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Look", "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "file", "file": {"file_data": "aGk=", "filename": "a.txt"}},
            ]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "functions.f:0", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "functions.f:0", "content": "done"},
        ],
        "max_completion_tokens": 5000,
        "stop": ["END"],
        "temperature": 0.5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": [{"type": "function", "function": {"name": "f", "description": "F.", "strict": True}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "user": "u1",
        "web_search_options": {"user_location": {"type": "approximate", "approximate": {"city": "Paris"}}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}},
        "reasoning_effort": "low",
    }
    assert misfits(req, wire.ChatCompletionRequest, exact=True) == []
    for profile in PROFILES.values():
        body = convert_request(req, model="claude-x", profile=profile).body
        assert misfits(body, wire.ClaudeRequest, exact=True) == []
