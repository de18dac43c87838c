"""Tests for the offline fake Claude upstream in ``translator.demo``."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from translator.demo import create_demo_app

JSONObject = dict[str, Any]

WEATHER_TOOL: JSONObject = {
    "name": "get_weather",
    "description": "Get the weather for a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
            "note": {"type": "string"},
        },
        "required": ["city", "days", "metric", "tags", "extra"],
    },
}


def prompt_tokens(body: dict[str, Any]) -> int:
    """The demo's rough count: a token per four bytes of the prompt (system, messages, tools) as JSON."""
    return max(1, len(orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])) // 4)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> TestClient[Any, Any]:
    return await aiohttp_client(create_demo_app())


def _request(text: str = "hello there", **extra: Any) -> JSONObject:
    body: JSONObject = {
        "model": "claude-demo-1",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(extra)
    return body


async def _create(client: TestClient[Any, Any], body: JSONObject) -> JSONObject:
    resp = await client.post("/v1/messages", data=orjson.dumps(body))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert re.fullmatch(r"req_demo_[0-9a-f]{24}", resp.headers["request-id"])
    result: JSONObject = await resp.json()
    return result


async def _stream(client: TestClient[Any, Any], body: JSONObject) -> list[tuple[str, JSONObject]]:
    resp = await client.post("/v1/messages", data=orjson.dumps({**body, "stream": True}))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    raw = await resp.text()
    assert raw.endswith("\n\n")
    events: list[tuple[str, JSONObject]] = []
    for chunk in raw.strip("\n").split("\n\n"):
        event_line, data_line = chunk.split("\n")
        assert event_line.startswith("event: ")
        assert data_line.startswith("data: ")
        event_type = event_line.removeprefix("event: ")
        data = orjson.loads(data_line.removeprefix("data: "))
        assert data["type"] == event_type
        events.append((event_type, data))
    return events


def _deltas(events: list[tuple[str, JSONObject]], index: int, key: str) -> list[str]:
    return [
        data["delta"][key]
        for event_type, data in events
        if event_type == "content_block_delta" and data["index"] == index and key in data["delta"]
    ]


async def test_text_answer_shape(client: TestClient[Any, Any]) -> None:
    body = _request("hello there")
    message = await _create(client, body)

    assert re.fullmatch(r"msg_demo_[0-9a-f]{24}", message.pop("id"))
    expected_text = "Demo reply (offline upstream): you said: hello there"
    assert message == {
        "type": "message",
        "role": "assistant",
        "model": "claude-demo-1",
        "content": [{"type": "text", "text": expected_text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt_tokens(body),
            "output_tokens": len(expected_text.split()),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


async def test_beta_query_and_long_text_is_truncated(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v1/messages?beta=true", json=_request("x" * 500))
    assert resp.status == 200
    message = await resp.json()
    assert message["content"][0]["text"] == "Demo reply (offline upstream): you said: " + "x" * 200


async def test_streaming_event_order_matches_non_stream(client: TestClient[Any, Any]) -> None:
    body = _request("please stream these few words")
    message = await _create(client, body)
    events = await _stream(client, body)
    types = [event_type for event_type, _ in events]

    assert types[:3] == ["message_start", "ping", "content_block_start"]
    assert types[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert set(types[3:-3]) == {"content_block_delta"}

    start = events[0][1]["message"]
    assert start["content"] == []
    assert start["stop_reason"] is None
    assert start["stop_sequence"] is None
    assert start["model"] == "claude-demo-1"
    assert start["usage"]["input_tokens"] == message["usage"]["input_tokens"] == prompt_tokens(body)
    assert start["usage"]["output_tokens"] == 1

    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    pieces = _deltas(events, 0, "text")
    assert len(pieces) > 1
    assert "".join(pieces) == message["content"][0]["text"]

    message_delta = events[-2][1]
    assert message_delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert message_delta["usage"] == {"output_tokens": message["usage"]["output_tokens"]}


async def test_tool_use_answer_and_streamed_json(client: TestClient[Any, Any]) -> None:
    body = _request("weather in Paris?", tools=[WEATHER_TOOL])
    message = await _create(client, body)

    assert message["stop_reason"] == "tool_use"
    text_block, tool_block = message["content"]
    assert text_block == {"type": "text", "text": "I'll use the get_weather tool."}
    assert re.fullmatch(r"toolu_demo_[0-9a-f]{24}", tool_block["id"])
    assert tool_block["name"] == "get_weather"
    expected_input = {"city": "demo", "days": 1, "metric": True, "tags": [], "extra": {}}
    assert tool_block["input"] == expected_input

    events = await _stream(client, body)
    starts = [data for event_type, data in events if event_type == "content_block_start"]
    assert starts[1]["content_block"]["type"] == "tool_use"
    assert starts[1]["content_block"]["name"] == "get_weather"
    assert starts[1]["content_block"]["input"] == {}
    fragments = _deltas(events, 1, "partial_json")
    assert 2 <= len(fragments) <= 3
    assert orjson.loads("".join(fragments)) == expected_input
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


STRUCTURED_SCHEMA: JSONObject = {  # as pydantic writes a nested model: $defs and $ref, anyOf for Optional
    "$defs": {
        "Reading": {
            "type": "object",
            "properties": {"celsius": {"type": "number"}, "station": {"type": "string"}},
            "required": ["celsius"],
        }
    },
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["metric", "imperial"]},
        "reading": {"$ref": "#/$defs/Reading"},
        "sunny": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "kind": {"const": "forecast"},
        "nested": {"properties": {"days": {"type": "integer"}}},
    },
    "required": ["city", "unit", "reading", "sunny", "tags", "kind", "nested"],
    "additionalProperties": False,
}


async def test_structured_output_answers_a_document_the_schema_accepts(client: TestClient[Any, Any]) -> None:
    output_config = {"format": {"type": "json_schema", "schema": STRUCTURED_SCHEMA}}
    body = _request("weather as JSON", output_config=output_config)
    message = await _create(client, body)

    expected = {
        "city": "demo",
        "unit": "metric",
        "reading": {"celsius": 1},
        "sunny": True,
        "tags": [],
        "kind": "forecast",
        "nested": {"days": 1},
    }
    (block,) = message["content"]
    assert block == {"type": "text", "text": orjson.dumps(expected).decode()}
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)
    events = await _stream(client, body)
    assert orjson.loads("".join(_deltas(events, 0, "text"))) == expected
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


async def test_structured_output_of_other_roots_and_beside_tools(client: TestClient[Any, Any]) -> None:
    def asking(schema: JSONObject, **extra: Any) -> JSONObject:
        return _request("json", output_config={"format": {"type": "json_schema", "schema": schema}}, **extra)

    array = await _create(client, asking({"type": "array", "items": {"type": "integer"}}))
    assert array["content"] == [{"type": "text", "text": "[]"}]
    deep: JSONObject = {"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
        "child": {"$ref": "#/$defs/Node"}}, "required": ["child"]}}}
    recursive = orjson.loads((await _create(client, asking(deep)))["content"][0]["text"])
    depth = 0
    while isinstance(recursive, dict):  # a schema that refers to itself ends after a bounded depth
        recursive, depth = recursive["child"], depth + 1
    assert (recursive, depth) == ("demo", 8)
    # Offered tools still get called first, with no words before (the schema holds every text: a parse()
    # client reads the content of a turn with tool calls too)
    with_tools = await _create(client, asking(STRUCTURED_SCHEMA, tools=[WEATHER_TOOL]))
    assert with_tools["stop_reason"] == "tool_use"
    assert [b["type"] for b in with_tools["content"]] == ["tool_use"]


async def test_forced_tool_choice_omits_text(client: TestClient[Any, Any]) -> None:
    other = {"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
    forced = _request("hi", tools=[WEATHER_TOOL, other], tool_choice={"type": "tool", "name": "lookup"})
    message = await _create(client, forced)
    assert [block["type"] for block in message["content"]] == ["tool_use"]
    assert message["content"][0]["name"] == "lookup"
    assert message["content"][0]["input"] == {"q": "demo"}

    any_choice = await _create(client, _request("hi", tools=[other], tool_choice={"type": "any"}))
    assert [block["type"] for block in any_choice["content"]] == ["tool_use"]

    none_choice = await _create(client, _request("hi", tools=[other], tool_choice={"type": "none"}))
    assert none_choice["stop_reason"] == "end_turn"
    assert none_choice["content"][0]["type"] == "text"


async def test_tool_result_is_echoed(client: TestClient[Any, Any]) -> None:
    body = _request("weather?", tools=[WEATHER_TOOL])
    body["messages"] += [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "sunny, 21C"}],
                }
            ],
        },
    ]
    message = await _create(client, body)
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [
        {"type": "text", "text": "Demo reply (offline upstream): got the tool result: sunny, 21C"}
    ]


@pytest.mark.parametrize(("tool", "expected"), [
    # Codex CLI's exec_command (trimmed): Codex runs the command it gets
    ({"name": "exec_command", "input_schema": {"type": "object", "properties": {
        "cmd": {"type": "string"}, "workdir": {"type": "string"}, "tty": {"type": "boolean"}},
        "required": ["cmd"]}}, {"cmd": "echo demo"}),
    # Claude Code's Bash (trimmed)
    ({"name": "Bash", "input_schema": {"type": "object", "properties": {
        "command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}},
     {"command": "echo demo"}),
    # a command that is no free string keeps its placeholder
    ({"name": "run", "input_schema": {"type": "object", "properties": {
        "command": {"enum": ["start", "stop"]}}}}, {"command": "start"}),
])
async def test_a_shell_tool_is_called_with_a_harmless_command(
    client: TestClient[Any, Any], tool: JSONObject, expected: JSONObject
) -> None:
    """Agents run the command they are given: never a program named "demo" (Codex reported it failed, exit 127)."""
    message = await _create(client, _request("Say hello", tools=[tool]))
    assert message["content"][-1]["input"] == expected


async def test_claude_codes_turn_calls_its_shell_tool(client: TestClient[Any, Any]) -> None:
    """Claude Code's request (trimmed from a captured one): its first tool starts a sub-agent, and a
    mid-conversation system turn comes after the user's. The demo calls the shell tool, with the harmless
    command, so Claude Code's tool loop runs end to end; a result, even followed by a system turn, is answered."""
    agent = {"name": "Agent", "input_schema": {"type": "object", "properties": {
        "description": {"type": "string"}, "prompt": {"type": "string"}}, "required": ["description", "prompt"]}}
    bash = {"name": "Bash", "input_schema": {"type": "object", "properties": {
        "command": {"type": "string"}, "timeout": {"type": "number"}}, "required": ["command"]}}
    system_turn = {"role": "system", "content": [{"type": "text", "text": "# Environment"}]}
    body = _request("list the files here", tools=[agent, bash])
    body["messages"].append(system_turn)
    first = await _create(client, body)
    assert first["stop_reason"] == "tool_use"
    assert [(b["type"], b.get("name"), b.get("input")) for b in first["content"]] == [
        ("text", None, None), ("tool_use", "Bash", {"command": "echo demo"})]
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["content"][1]["id"],
                                      "content": "demo"}]},
        system_turn,
    ]
    second = await _create(client, body)
    assert (second["stop_reason"], second["content"]) == (
        "end_turn", [{"type": "text", "text": "Demo reply (offline upstream): got the tool result: demo"}])


async def test_a_tool_result_under_tool_choice_any_is_answered_with_the_last_tool(
    client: TestClient[Any, Any],
) -> None:
    """Claude must call a tool under ``any``: after a result the demo calls the last tool offered (where the
    proxy puts a response format's JSON tool beside an agent's tools), which ends the loop."""
    answer = {"name": "json_response", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
    body = _request("weather as JSON?", tools=[WEATHER_TOOL, answer], tool_choice={"type": "any"})
    first = await _create(client, body)
    assert [(block["type"], block["name"]) for block in first["content"]] == [("tool_use", "get_weather")]
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first["content"][0]["id"],
                                      "content": "sunny, 21C"}]},
    ]
    second = await _create(client, body)
    assert second["stop_reason"] == "tool_use"
    assert [(block["type"], block["name"], block["input"]) for block in second["content"]] == [
        ("tool_use", "json_response", {"city": "demo"})]


async def test_stop_sequences(client: TestClient[Any, Any]) -> None:
    body = _request("alpha beta gamma", stop_sequences=["gamma", "beta"])
    message = await _create(client, body)
    assert message["content"] == [{"type": "text", "text": "Demo reply (offline upstream): you said: alpha "}]
    assert message["stop_reason"] == "stop_sequence"
    assert message["stop_sequence"] == "beta"

    events = await _stream(client, body)
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "beta"}


async def test_max_tokens_truncation(client: TestClient[Any, Any]) -> None:
    body = _request("one two three four", max_tokens=3)
    message = await _create(client, body)
    assert message["content"] == [{"type": "text", "text": "Demo reply (offline"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["stop_sequence"] is None
    assert message["usage"]["output_tokens"] == 3

    events = await _stream(client, body)
    assert "".join(_deltas(events, 0, "text")) == "Demo reply (offline"
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"


async def test_thinking_block_comes_first(client: TestClient[Any, Any]) -> None:
    body = _request("think", thinking={"type": "enabled", "budget_tokens": 1024})
    message = await _create(client, body)
    thinking = message["content"][0]
    assert thinking["type"] == "thinking"
    assert thinking["thinking"] == "Thinking about the demo request."
    digest = hashlib.sha256(b"Thinking about the demo request.").digest()
    assert base64.b64decode(thinking["signature"]) == b"demo-signature:" + digest
    assert message["content"][1]["type"] == "text"

    events = await _stream(client, body)
    assert events[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    deltas = [data["delta"] for _, data in events if data.get("index") == 0 and "delta" in data]
    assert [delta["type"] for delta in deltas] == ["thinking_delta", "signature_delta"]
    assert deltas[1]["signature"] == thinking["signature"]


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"[]",
        orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
        orjson.dumps({"model": "claude-demo-1", "max_tokens": 5}),
        orjson.dumps({"model": "claude-demo-1", "messages": [{"role": "user", "content": "hi"}]}),
    ],
)
async def test_bad_body_is_400(client: TestClient[Any, Any], payload: bytes) -> None:
    resp = await client.post("/v1/messages", data=payload, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    error = await resp.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert isinstance(error["error"]["message"], str) and error["error"]["message"]


async def test_count_tokens(client: TestClient[Any, Any]) -> None:
    body = {"model": "claude-demo-1", "messages": [{"role": "user", "content": "count me " * 10}]}
    resp = await client.post("/v1/messages/count_tokens", data=orjson.dumps(body))
    assert resp.status == 200
    assert await resp.json() == {"input_tokens": prompt_tokens(body)}


async def test_models(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1/models")
    assert resp.status == 200
    listing = await resp.json()
    assert [model["id"] for model in listing["data"]] == ["claude-demo-1", "claude-demo-2"]
    assert listing["data"][0] == {
        "type": "model",
        "id": "claude-demo-1",
        "display_name": "Claude Demo 1",
        "created_at": "2025-01-01T00:00:00Z",
    }
    assert listing["has_more"] is False
    assert listing["first_id"] == "claude-demo-1"
    assert listing["last_id"] == "claude-demo-2"

    resp = await client.get("/v1/models/claude-demo-2")
    assert resp.status == 200
    assert (await resp.json())["display_name"] == "Claude Demo 2"

    resp = await client.get("/v1/models/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["type"] == "not_found_error"


async def test_anthropic_sdk_against_demo(client: TestClient[Any, Any]) -> None:
    sdk = anthropic.AsyncAnthropic(base_url=str(client.make_url("")), api_key="x", max_retries=0)
    try:
        message = await sdk.messages.create(
            model="claude-demo-1",
            max_tokens=100,
            messages=[{"role": "user", "content": "hi from the sdk"}],
        )
        assert message.stop_reason == "end_turn"
        assert message.content[0].type == "text"
        expected = "Demo reply (offline upstream): you said: hi from the sdk"
        assert message.content[0].text == expected

        async with sdk.messages.stream(
            model="claude-demo-1",
            max_tokens=100,
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
        ) as stream:
            final = await stream.get_final_message()
        assert final.stop_reason == "tool_use"
        assert final.model == "claude-demo-1"
        text_block, tool_block = final.content
        assert text_block.type == "text" and text_block.text == "I'll use the get_weather tool."
        assert tool_block.type == "tool_use"
        assert tool_block.name == "get_weather"
        assert tool_block.input == {"city": "demo", "days": 1, "metric": True, "tags": [], "extra": {}}
        assert final.usage.output_tokens >= 1

        models = await sdk.models.list()
        assert [model.id for model in models.data] == ["claude-demo-1", "claude-demo-2"]
    finally:
        await sdk.close()
