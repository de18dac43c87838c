"""The OpenAI route end to end: the real proxy in front of the fake Claude upstream.

For each row of the request mapping, the exact body and headers the upstream receives, and the policy
headers the client gets back; then auth, ``n`` > 1 (plain and streamed), and the error mapping.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from tests.fakes import FakeUpstream, Recorded, Reply

JSONObject = dict[str, Any]
MakeProxy = Callable[..., Awaitable[TestClient]]
REQUESTS = Path(__file__).parent.parent / "fixtures" / "openai" / "requests"

SONNET = "claude-sonnet-4-5"  # built-in profile: max_tokens 8192, native structured output
HAIKU3 = "claude-3-5-haiku-20241022"  # built-in profile: max_tokens 4096, no structured output
CHAT = "/v1/chat/completions"
TRANSPORT = {"host", "accept", "accept-encoding", "user-agent", "content-length"}
BASE_HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}

MESSAGE: JSONObject = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": SONNET,
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1},
}
PNG_B64 = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
PDF_B64 = base64.b64encode(b"%PDF-1.4 fake").decode()
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": SCHEMA}}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather.", "input_schema": SCHEMA}
SIGNED = {"type": "thinking", "thinking": "Need the weather.", "signature": "EqQBCkYIBxgCKkB+sig=="}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}


def hi(text: str = "Hi") -> JSONObject:
    return {"role": "user", "content": text}


def turn(role: str, *blocks: JSONObject) -> JSONObject:
    return {"role": role, "content": list(blocks)}


def text(value: str) -> JSONObject:
    return {"type": "text", "text": value}


def sent_headers(rec: Recorded) -> dict[str, str]:
    """What the proxy put on the upstream request, less what any HTTP client adds."""
    return {k.lower(): v for k, v in rec.headers.items() if k.lower() not in TRANSPORT}


# (id, OpenAI request, Claude body upstream, x-translator-ignored, x-translator-adjustments)
MAPPING: list[tuple[str, JSONObject, JSONObject, str | None, str | None]] = [
    (
        "system and developer hoisted, kept as separate blocks",
        {"model": SONNET, "messages": [
            {"role": "system", "content": "Rule one."},
            {"role": "developer", "content": [{"type": "text", "text": "Rule two."}]},
            hi(),
        ]},
        {"model": SONNET, "max_tokens": 8192, "system": [text("Rule one."), text("Rule two.")],
         "messages": [turn("user", text("Hi"))]},
        None, None,
    ),
    (
        "strings and part arrays; same-role turns merged; tool results lead their user turn",
        {"model": SONNET, "messages": [
            hi("a"),
            {"role": "user", "content": [{"type": "text", "text": "b"}]},
            {"role": "assistant", "content": "x", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}},
                {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "warm"},
            {"role": "user", "content": "and?"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "cold"}]},
        ]},
        {"model": SONNET, "max_tokens": 8192, "messages": [
            turn("user", text("a"), text("b")),
            turn("assistant", text("x"),
                 {"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Rome"}},
                 {"type": "tool_use", "id": "c2", "name": "get_weather", "input": {}}),
            turn("user", {"type": "tool_result", "tool_use_id": "c1", "content": "warm"},
                 {"type": "tool_result", "tool_use_id": "c2", "content": [text("cold")]}, text("and?")),
        ]},
        None, None,
    ),
    (
        "image_url: data URL -> base64 source, https URL -> url source; PDF file -> document",
        {"model": SONNET, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            {"type": "file", "file": {"filename": "r.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"}},
            {"type": "text", "text": "Describe."},
        ]}]},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn(
            "user",
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
             "title": "r.pdf"},
            text("Describe."),
        )]},
        None, None,
    ),
    (
        "tools, tool_choice required -> any, parallel_tool_calls false",
        {"model": SONNET, "messages": [hi()], "tools": [WEATHER], "tool_choice": "required",
         "parallel_tool_calls": False},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "tools": [WEATHER_TOOL],
         "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
        None, None,
    ),
    (
        "tool_choice named -> tool",
        {"model": SONNET, "messages": [hi()], "tools": [WEATHER],
         "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "tools": [WEATHER_TOOL],
         "tool_choice": {"type": "tool", "name": "get_weather"}},
        None, None,
    ),
    (
        "tool_choice none",
        {"model": SONNET, "messages": [hi()], "tools": [WEATHER], "tool_choice": "none"},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "tools": [WEATHER_TOOL],
         "tool_choice": {"type": "none"}},
        None, None,
    ),
    (
        "legacy functions, function_call, and function-role results",
        {"model": SONNET, "functions": [WEATHER["function"]], "function_call": {"name": "get_weather"},
         "messages": [
             hi(),
             {"role": "assistant", "content": None, "function_call": {"name": "get_weather", "arguments": "{}"}},
             {"role": "function", "name": "get_weather", "content": "sunny"},
         ]},
        {"model": SONNET, "max_tokens": 8192, "tools": [WEATHER_TOOL],
         "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
         "messages": [
             turn("user", text("Hi")),
             turn("assistant", {"type": "tool_use", "id": "call_legacy_1", "name": "get_weather", "input": {}}),
             turn("user", {"type": "tool_result", "tool_use_id": "call_legacy_1", "content": "sunny"}),
         ]},
        None, None,
    ),
    (
        "max_completion_tokens",
        {"model": SONNET, "messages": [hi()], "max_completion_tokens": 77},
        {"model": SONNET, "max_tokens": 77, "messages": [turn("user", text("Hi"))]},
        None, None,
    ),
    (
        "max_tokens absent: the model's default",
        {"model": HAIKU3, "messages": [hi()]},
        {"model": HAIKU3, "max_tokens": 4096, "messages": [turn("user", text("Hi"))]},
        None, None,
    ),
    (
        "stop: whitespace-only entries dropped and reported",
        {"model": SONNET, "messages": [hi()], "stop": ["END", " "]},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "stop_sequences": ["END"]},
        None, "whitespace-only stop sequences dropped: [' ']",
    ),
    (
        "temperature clamped and reported; top_k; user -> metadata.user_id",
        {"model": SONNET, "messages": [hi()], "temperature": 1.7, "top_k": 50, "user": "u-42"},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "temperature": 1.0,
         "top_k": 50, "metadata": {"user_id": "u-42"}},
        None, "temperature 1.7 clamped to 1",
    ),
    (
        "top_p beside temperature dropped and reported (newer models refuse the pair)",
        {"model": SONNET, "messages": [hi()], "temperature": 0.3, "top_p": 0.9},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))], "temperature": 0.3},
        None, "top_p 0.9 dropped: newer Claude models refuse it beside temperature",
    ),
    (
        "reasoning_effort -> thinking budget",
        {"model": SONNET, "messages": [hi()], "reasoning_effort": "medium"},
        {"model": SONNET, "max_tokens": 8192 + 8192, "messages": [turn("user", text("Hi"))],
         "thinking": {"type": "enabled", "budget_tokens": 8192}},
        None, None,
    ),
    (
        "thinking passed through",
        {"model": SONNET, "messages": [hi()], "thinking": {"type": "enabled", "budget_tokens": 3000},
         "max_tokens": 9000},
        {"model": SONNET, "max_tokens": 9000, "messages": [turn("user", text("Hi"))],
         "thinking": {"type": "enabled", "budget_tokens": 3000}},
        None, None,
    ),
    (
        "response_format json_schema -> native output_config.format (claude-sonnet-4-5)",
        {"model": SONNET, "messages": [hi()],
         "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))],
         "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        None, None,
    ),
    (
        "response_format json_schema -> forced tool (claude-3-5-haiku)",
        {"model": HAIKU3, "messages": [hi()],
         "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}},
        {"model": HAIKU3, "max_tokens": 4096, "messages": [turn("user", text("Hi"))],
         "tools": [{"name": "place", "description": "Respond with JSON matching this schema.", "input_schema": SCHEMA}],
         "tool_choice": {"type": "tool", "name": "place", "disable_parallel_tool_use": True}},
        None, None,
    ),
    (
        "response_format json_object -> forced tool",
        {"model": SONNET, "messages": [hi()], "response_format": {"type": "json_object"}},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))],
         "tools": [{"name": "json_response", "description": "Respond with JSON matching this schema.",
                    "input_schema": {"type": "object"}}],
         "tool_choice": {"type": "tool", "name": "json_response", "disable_parallel_tool_use": True}},
        None, None,
    ),
    (
        "thinking_blocks go back before tool_use",
        {"model": SONNET, "thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 4000, "messages": [
            hi(),
            {"role": "assistant", "content": None, "thinking_blocks": [SIGNED, REDACTED], "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "snow"},
        ], "tools": [WEATHER]},
        {"model": SONNET, "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2000},
         "tools": [WEATHER_TOOL], "messages": [
             turn("user", text("Hi")),
             turn("assistant", SIGNED, REDACTED,
                  {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}),
             turn("user", {"type": "tool_result", "tool_use_id": "toolu_1", "content": "snow"}),
         ]},
        None, None,
    ),
    (
        "ignored fields reported; harmless logprobs false is not",
        {"model": SONNET, "messages": [hi()], "seed": 3, "presence_penalty": 0.2, "frequency_penalty": 0.1,
         "logit_bias": {"1": 1}, "some_new_field": True, "logprobs": False},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))]},
        "frequency_penalty; logit_bias; presence_penalty; seed; some_new_field", None,
    ),
    (
        "strict dropped for a model without structured outputs, with every other adjustment",
        {"model": HAIKU3, "messages": [hi()], "temperature": 3, "stop": "\n",
         "tools": [{"type": "function", "function": {**WEATHER["function"], "strict": True}}]},
        {"model": HAIKU3, "max_tokens": 4096, "messages": [turn("user", text("Hi"))], "temperature": 1.0,
         "tools": [WEATHER_TOOL]},
        None,
        "temperature 3 clamped to 1; whitespace-only stop sequences dropped: ['\\n']; "
        "strict dropped from tools ['get_weather']: the model has no strict tool use",
    ),
]

_CALL = {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
MAPPING += [
    (
        "reasoning_effort in a tool loop whose calls came back without thinking_blocks: thinking off, reported",
        {"model": SONNET, "reasoning_effort": "low", "messages": [
            hi(), {"role": "assistant", "content": None, "tool_calls": [_CALL]},
            {"role": "tool", "tool_call_id": "toolu_01", "content": "cold"}]},
        {"model": SONNET, "max_tokens": 8192, "messages": [
            turn("user", text("Hi")),
            turn("assistant", {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}}),
            turn("user", {"type": "tool_result", "tool_use_id": "toolu_01", "content": "cold"})]},
        None,
        "thinking off for this request: the last assistant tool calls came back without their thinking_blocks, "
        "which Claude requires with thinking on",
    ),
    (
        "nested fields with no Claude form are listed as ignored",
        {"model": SONNET, "messages": [{"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]}]},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Look"), {
            "type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}})]},
        "messages[].name; messages[].content[].image_url.detail",
        None,
    ),
]

SONNET46 = "claude-sonnet-4-6"  # built-in profile: adaptive thinking, output limit 128000
OPUS41 = "claude-opus-4-1"  # built-in profile: budget thinking, output limit 32000
MAPPING += [
    (
        "reasoning_effort on an adaptive model: thinking adaptive and output_config.effort",
        {"model": SONNET46, "messages": [hi()], "reasoning_effort": "xhigh"},
        {"model": SONNET46, "max_tokens": 8192 + 32768, "messages": [turn("user", text("Hi"))],
         "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
        None, None,
    ),
    (
        "max_tokens above the model's output limit lowered to it, reported",
        {"model": OPUS41, "messages": [hi()], "max_completion_tokens": 64000},
        {"model": OPUS41, "max_tokens": 32000, "messages": [turn("user", text("Hi"))]},
        None, "max_completion_tokens 64000 lowered to 32000, the model's output limit",
    ),
    (
        "whitespace-only text dropped; a final prefill loses its trailing whitespace, reported",
        {"model": SONNET, "messages": [{"role": "system", "content": " "}, hi(), {"role": "user", "content": "\n"},
                                       {"role": "assistant", "content": "Sure, "}]},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi")),
                                                           turn("assistant", text("Sure,"))]},
        None, "trailing whitespace trimmed from the final assistant message (a prefill)",
    ),
    (
        "another provider's tool ids rewritten alike in the call and its result",
        {"model": SONNET, "messages": [hi(), {"role": "assistant", "content": None, "tool_calls": [
            {"id": "functions.get_weather:0", "type": "function",
             "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "functions.get_weather:0", "content": "cold"}]},
        {"model": SONNET, "max_tokens": 8192, "messages": [
            turn("user", text("Hi")),
            turn("assistant", {"type": "tool_use", "id": "functions_get_weather_0", "name": "get_weather",
                               "input": {}}),
            turn("user", {"type": "tool_result", "tool_use_id": "functions_get_weather_0", "content": "cold"})]},
        None, None,
    ),
    (
        "a user id over 256 characters goes as its SHA-256, reported",
        {"model": SONNET, "messages": [hi()], "user": "u" * 300},
        {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))],
         "metadata": {"user_id": hashlib.sha256(b"u" * 300).hexdigest()}},
        None, "user longer than 256 characters sent as its SHA-256 hex digest",
    ),
]


@pytest.mark.parametrize(("req", "body", "ignored", "adjusted"), [m[1:] for m in MAPPING], ids=[m[0] for m in MAPPING])
async def test_mapping(
    proxy: TestClient, fake_upstream: FakeUpstream, req: JSONObject, body: JSONObject, ignored: str | None,
    adjusted: str | None,
) -> None:
    fake_upstream.json(MESSAGE)
    resp = await proxy.post(CHAT, data=orjson.dumps(req), headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    (sent,) = fake_upstream.requests
    assert (sent.method, sent.path, sent.query) == ("POST", "/v1/messages", "")
    assert sent.json == body
    assert sent_headers(sent) == BASE_HEADERS
    assert resp.headers.get("x-translator-ignored") == ignored
    assert resp.headers.get("x-translator-adjustments") == adjusted


async def test_thinking_blocks_are_sent_byte_identical(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    blocks = [SIGNED, REDACTED]
    req = {"model": SONNET, "messages": [hi(), {"role": "assistant", "content": "a", "thinking_blocks": blocks},
                                         hi("b")]}
    resp = await proxy.post(CHAT, json=req)
    assert resp.status == 200
    assert orjson.dumps(blocks)[1:-1] in fake_upstream.last.raw


async def test_forced_json_tool_answer_comes_back_as_content(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json({**MESSAGE, "model": HAIKU3, "stop_reason": "tool_use",
                        "content": [{"type": "tool_use", "id": "toolu_1", "name": "place", "input": {"city": "Oslo"}}]})
    req = {"model": HAIKU3, "messages": [hi()],
           "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}}
    resp = await proxy.post(CHAT, json=req)
    assert resp.status == 200
    choice = (await resp.json())["choices"][0]
    assert choice == {"index": 0, "finish_reason": "stop", "logprobs": None,
                      "message": {"role": "assistant", "content": '{"city":"Oslo"}', "refusal": None}}


async def test_streaming_request_carries_the_policy_headers(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.events(text_stream("msg_s", ["Hi"], 2, 1))
    req = {"model": SONNET, "messages": [hi()], "stream": True, "seed": 1, "temperature": 5}
    resp = await proxy.post(CHAT, json=req)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert resp.headers["x-translator-ignored"] == "seed"
    assert resp.headers["x-translator-adjustments"] == "temperature 5 clamped to 1"
    await resp.read()
    assert fake_upstream.last.json == {"model": SONNET, "max_tokens": 8192, "stream": True, "temperature": 1.0,
                                       "messages": [turn("user", text("Hi"))]}


async def test_unprefixed_route(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/chat/completions", json={"model": SONNET, "messages": [hi()]})
    assert resp.status == 200
    assert fake_upstream.last.json == {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))]}


# --- the recorded OpenAI requests, through model aliases (tests/fixtures/openai/requests, see SOURCES.md) ---

UK = turn("user", text("What is the capital of the UK? Use the tool, then answer."))
GET_CAPITAL = {"name": "get_capital", "input_schema": {"additionalProperties": False,
               "properties": {"country": {"type": "string"}}, "required": ["country"], "type": "object"}}
ALIASES = {"gpt-4o-mini": "claude-haiku-4-5", "gpt-5": "claude-sonnet-4-5", "o3-mini": HAIKU3,
           "gpt-5-mini": HAIKU3}

RECORDED: list[tuple[str, JSONObject, str | None, str | None]] = [
    (
        "openai_stream_text_after_tool_result_include_usage__pydantic-ai",
        {"model": "claude-haiku-4-5", "max_tokens": 8192, "stream": True, "messages": [
            UK,
            turn("assistant", {"type": "tool_use", "id": "call_ZR5UUuTt3pf61kjwAJIYdVMj", "name": "get_capital",
                               "input": {"country": "UK"}}),
            turn("user", {"type": "tool_result", "tool_use_id": "call_ZR5UUuTt3pf61kjwAJIYdVMj", "content": "London"}),
        ], "tools": [{**GET_CAPITAL, "strict": True}], "tool_choice": {"type": "auto"}},
        None, None,
    ),
    (
        "openai_stream_gpt5_include_usage_with_moderation__pydantic-ai",
        {"model": SONNET, "max_tokens": 8192, "stream": True,
         "messages": [turn("user", text("What is the capital of France?"))]},
        "moderation", None,
    ),
    (
        "openai_response_stop_param_o3mini__pydantic-ai",
        {"model": HAIKU3, "max_tokens": 4096, "stop_sequences": ["Paris"], "messages": [turn("user", text(
            'What is the capital of France? Give me an answer that contains the word "Paris", '
            "but is not the first word."
        ))]},
        None, None,
    ),
    (
        "openai_response_tool_choice_required__pydantic-ai",
        {"model": HAIKU3, "max_tokens": 4096, "messages": [turn("user", text("What's the weather in Paris?"))],
         "tools": [{"name": "get_weather", "description": "Get weather for a city", "input_schema": {
             "additionalProperties": False, "properties": {"city": {"type": "string"}}, "required": ["city"],
             "type": "object"}}],
         "tool_choice": {"type": "any"}},
        None, "strict dropped from tools ['get_weather']: the model has no strict tool use",
    ),
]


@pytest.mark.parametrize(("name", "body", "ignored", "adjusted"), RECORDED, ids=[r[0] for r in RECORDED])
async def test_recorded_requests(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, name: str, body: JSONObject, ignored: str | None,
    adjusted: str | None,
) -> None:
    proxy = await make_proxy(models={"aliases": ALIASES})
    raw = (REQUESTS / f"{name}.request.json").read_bytes()
    if body.get("stream"):
        fake_upstream.events(text_stream("msg_r", ["ok"], 3, 1))
    else:
        fake_upstream.json(MESSAGE)
    resp = await proxy.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200, await resp.text()
    await resp.read()
    assert fake_upstream.last.json == body
    assert resp.headers.get("x-translator-ignored") == ignored
    assert resp.headers.get("x-translator-adjustments") == adjusted


async def test_recorded_n2_stream(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(models={"aliases": {"gpt-3.5-turbo": HAIKU3}})
    for i in range(2):
        fake_upstream.events(text_stream(f"msg_{i}", ["ok"], 3, 1))
    raw = (REQUESTS / "openai_stream_n2_tool_calls_interleaved__dd-trace-py.request.json").read_bytes()
    resp = await proxy.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    await resp.read()
    expected = orjson.loads(raw)["tools"][0]["function"]
    body = {"model": HAIKU3, "max_tokens": 4096, "stream": True,
            "messages": [turn("user", text("What is the weather like in San Francisco, CA?"))],
            "tools": [{"name": expected["name"], "description": expected["description"],
                       "input_schema": expected["parameters"]}],
            "tool_choice": {"type": "auto"}}
    assert [r.json for r in fake_upstream.requests] == [body, body]


# --- upstream auth ---


@pytest.mark.parametrize(
    ("upstream", "client", "expected"),
    [
        ({}, {}, {}),
        ({}, {"Authorization": "Bearer sk-client"}, {"authorization": "Bearer sk-client"}),
        ({}, {"x-api-key": "sk-client"}, {"x-api-key": "sk-client"}),
        ({}, {"x-api-key": "sk-a", "Authorization": "Bearer sk-b"}, {"x-api-key": "sk-a"}),
        ({}, {"Authorization": "Bearer sk-ant-api03-xyz"}, {"x-api-key": "sk-ant-api03-xyz"}),
        ({}, {"Authorization": "bearer  sk-ant-api03-xyz"}, {"x-api-key": "sk-ant-api03-xyz"}),
        ({"api_key": "k"}, {"Authorization": "Bearer sk-client"}, {"x-api-key": "k"}),
        ({"api_key": "k"}, {"x-api-key": "sk-client"}, {"x-api-key": "k"}),
        ({"api_key": "k", "auth": "bearer"}, {"x-api-key": "sk-client"}, {"authorization": "Bearer k"}),
        ({"api_key": "k", "auth": "bearer"}, {"Authorization": "Bearer sk-client"}, {"authorization": "Bearer k"}),
        ({"api_key": "k"}, {"anthropic-beta": "b1,b2"}, {"x-api-key": "k", "anthropic-beta": "b1,b2"}),
        ({"anthropic_version": "2024-01-01"}, {}, {"anthropic-version": "2024-01-01"}),
        ({}, {"anthropic-version": "1999-01-01", "X-Other": "x", "Cookie": "c=1"}, {}),
    ],
    ids=[
        "no keys", "client bearer forwarded", "client x-api-key forwarded", "client x-api-key preferred",
        "anthropic key sent as bearer goes as x-api-key", "the scheme in any case",
        "configured key replaces client bearer", "configured key replaces client x-api-key",
        "configured bearer replaces client x-api-key", "configured bearer replaces client bearer",
        "anthropic-beta passed on", "configured anthropic-version", "other client headers not passed on",
    ],
)
async def test_upstream_headers(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, upstream: JSONObject, client: dict[str, str],
    expected: dict[str, str],
) -> None:
    proxy = await make_proxy(upstream=upstream)
    fake_upstream.json(MESSAGE)
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [hi()]}, headers=client)
    assert resp.status == 200
    assert sent_headers(fake_upstream.last) == {**BASE_HEADERS, **expected}


async def test_repeated_anthropic_beta_headers_all_go(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    headers = CIMultiDict([("anthropic-beta", "context-1m-2025-08-07"), ("anthropic-beta", "files-api-2025-04-14")])
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [hi()]}, headers=headers)
    assert resp.status == 200
    assert sent_headers(fake_upstream.last) == {
        **BASE_HEADERS, "anthropic-beta": "context-1m-2025-08-07,files-api-2025-04-14"
    }


# --- n > 1 ---


def text_stream(
    msg_id: str, parts: list[str], input_tokens: int, output_tokens: int, model: str = SONNET
) -> list[JSONObject]:
    return [
        {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in parts),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": output_tokens}},
        {"type": "message_stop"},
    ]


def usage(prompt: int, completion: int) -> JSONObject:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0}, "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0}


async def test_n2_runs_two_requests_and_merges_two_choices(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    for msg_id, answer, output_tokens in (("msg_a", "one", 2), ("msg_b", "two", 3)):
        fake_upstream.json({**MESSAGE, "id": msg_id, "content": [text(answer)],
                            "usage": {"input_tokens": 5, "output_tokens": output_tokens}})
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [hi()], "n": 2})
    assert resp.status == 200
    got = await resp.json()
    assert isinstance(got.pop("created"), int)
    # Which answer becomes which choice is the order the upstream took the two requests in; the id is choice 0's.
    first, second = ("one", "two") if got["id"] == "chatcmpl-msg_a" else ("two", "one")
    assert got == {
        "id": "chatcmpl-msg_a" if first == "one" else "chatcmpl-msg_b", "object": "chat.completion", "model": SONNET,
        "choices": [
            {"index": 0, "finish_reason": "stop", "logprobs": None,
             "message": {"role": "assistant", "content": first, "refusal": None}},
            {"index": 1, "finish_reason": "stop", "logprobs": None,
             "message": {"role": "assistant", "content": second, "refusal": None}},
        ],
        "usage": usage(10, 5),
    }
    body = {"model": SONNET, "max_tokens": 8192, "messages": [turn("user", text("Hi"))]}
    assert [r.json for r in fake_upstream.requests] == [body, body]


def sse_reply(events: list[JSONObject], delay: float) -> Reply:
    chunks = [b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events]
    return Reply(200, b"", "text/event-stream", chunks=chunks, delay=delay)


async def test_n2_streaming_interleaves_choices(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    dated = f"{SONNET}-20250929"  # the model the upstream says answered: every chunk names it, the usage one too
    fake_upstream.replies.append(sse_reply(text_stream("msg_a", ["A1", "A2", "A3", "A4"], 5, 4, dated), 0.02))
    fake_upstream.replies.append(sse_reply(text_stream("msg_b", ["B1", "B2", "B3", "B4"], 6, 5, dated), 0.02))
    req = {"model": SONNET, "messages": [hi()], "n": 2, "stream": True, "stream_options": {"include_usage": True}}
    resp = await proxy.post(CHAT, json=req)
    assert resp.status == 200
    raw = await resp.read()
    lines = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]
    assert lines[-1] == b"[DONE]"
    chunks = [orjson.loads(x) for x in lines[:-1]]
    *choice_chunks, usage_chunk = chunks
    stream_id = usage_chunk["id"]
    assert stream_id.startswith("chatcmpl-")
    assert usage_chunk == {"id": stream_id, "object": "chat.completion.chunk", "created": usage_chunk["created"],
                           "model": dated, "choices": [], "usage": usage(11, 9)}
    assert {(c["id"], c["model"]) for c in choice_chunks} == {(stream_id, dated)}
    order = [c["choices"][0]["index"] for c in choice_chunks]
    assert sorted(set(order)) == [0, 1]
    assert order.index(1) < len(order) - 1 - order[::-1].index(0)  # interleaved, not one after the other
    letters = []  # (which upstream stream becomes which choice is the order the upstream took the two requests)
    for index in (0, 1):
        deltas = [c["choices"][0] for c in choice_chunks if c["choices"][0]["index"] == index]
        letter = deltas[1]["delta"]["content"][:1]
        letters.append(letter)
        assert [(d["delta"], d["finish_reason"]) for d in deltas] == [
            ({"role": "assistant", "content": ""}, None),
            *(({"content": f"{letter}{k}"}, None) for k in range(1, 5)),
            ({}, "stop"),
        ]
    assert sorted(letters) == ["A", "B"]
    body = {"model": SONNET, "max_tokens": 8192, "stream": True, "messages": [turn("user", text("Hi"))]}
    assert [r.json for r in fake_upstream.requests] == [body, body]


# --- errors ---


def openai_error(message: str, type_: str, param: str | None = None, code: str | None = None) -> JSONObject:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        ({"model": SONNET, "messages": [hi()], "logprobs": True}, openai_error(
            "'logprobs' is not supported: Claude models do not return log probabilities", "invalid_request_error",
            "logprobs", "unsupported_parameter")),
        ({"model": SONNET, "messages": [hi()], "top_logprobs": 3}, openai_error(
            "'top_logprobs' is not supported: Claude models do not return log probabilities",
            "invalid_request_error", "top_logprobs", "unsupported_parameter")),
        ({"model": SONNET, "messages": [hi()], "audio": {"voice": "alloy", "format": "wav"}}, openai_error(
            "'audio' is not supported: Claude models do not produce audio", "invalid_request_error", "audio",
            "unsupported_parameter")),
        ({"model": SONNET, "messages": [hi()], "modalities": ["text", "audio"]}, openai_error(
            "'modalities' is not supported: Claude models do not produce audio", "invalid_request_error",
            "modalities", "unsupported_parameter")),
        ({"messages": [hi()]}, openai_error("'model' must be a non-empty string", "invalid_request_error", "model")),
        ({"model": SONNET, "messages": []}, openai_error(
            "'messages' must be a non-empty array", "invalid_request_error", "messages")),
        ({"model": SONNET, "messages": [hi()], "n": 20}, openai_error(
            "'n' must be between 1 and 8", "invalid_request_error", "n")),
        ({"model": SONNET, "messages": [hi(), {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "[]"}}]}]}, openai_error(
            "messages[1].tool_calls[0].function.arguments must be a JSON object", "invalid_request_error",
            "messages[1].tool_calls[0].function.arguments")),
    ],
    ids=["logprobs", "top_logprobs", "audio", "modalities", "no model", "no messages", "n", "arguments"],
)
async def test_bad_input_is_400_in_openai_shape(
    proxy: TestClient, fake_upstream: FakeUpstream, req: JSONObject, expected: JSONObject
) -> None:
    resp = await proxy.post(CHAT, json=req)
    assert resp.status == 400
    assert resp.content_type == "application/json"
    assert await resp.json() == expected
    assert fake_upstream.requests == []


async def test_strict_mode_makes_ignored_fields_400(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(server={"strict": True})
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [hi()], "seed": 1})
    assert resp.status == 400
    assert await resp.json() == openai_error(
        "'seed' has no Claude equivalent and this proxy runs in strict mode", "invalid_request_error", "seed",
        "unsupported_parameter")
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[1, 2]", "request body must be a JSON object"),
        (b'"text"', "request body must be a JSON object"),
        (b"null", "request body must be a JSON object"),
    ],
)
async def test_non_object_body_is_400(proxy: TestClient, fake_upstream: FakeUpstream, raw: bytes, message: str) -> None:
    resp = await proxy.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert await resp.json() == openai_error(message, "invalid_request_error")
    assert fake_upstream.requests == []


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"model": "x",}'])
async def test_invalid_json_body_is_400(proxy: TestClient, fake_upstream: FakeUpstream, raw: bytes) -> None:
    resp = await proxy.post(CHAT, data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    got = await resp.json()
    assert got["error"]["message"].startswith("request body is not valid JSON: ")
    assert {**got["error"], "message": ""} == {"message": "", "type": "invalid_request_error", "param": None,
                                               "code": None}
    assert fake_upstream.requests == []


@pytest.fixture
async def direct(make_proxy: MakeProxy) -> TestClient:
    """One upstream attempt per request: the upstream's error goes straight to the client (retries and
    failover are the router's, tested in test_failover.py)."""
    return await make_proxy(routing={"max_attempts": 1})


RATE_LIMITED = {"type": "error",
                "error": {"type": "rate_limit_error", "message": "Number of requests has exceeded your rate limit"}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_upstream_429_keeps_retry_after(direct: TestClient, fake_upstream: FakeUpstream, stream: bool) -> None:
    fake_upstream.json(RATE_LIMITED, status=429, headers={"retry-after": "17", "request-id": "req_011"})
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()], "stream": stream})
    assert resp.status == 429
    assert resp.content_type == "application/json"
    assert resp.headers["Retry-After"] == "17"
    assert resp.headers["request-id"] == "req_011"  # x-request-id is ours
    assert await resp.json() == openai_error(
        "Number of requests has exceeded your rate limit", "rate_limit_error", code="rate_limit_exceeded")


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_upstream_529_is_503(direct: TestClient, fake_upstream: FakeUpstream, stream: bool) -> None:
    fake_upstream.json(OVERLOADED, status=529)
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()], "stream": stream})
    assert resp.status == 503
    assert await resp.json() == openai_error("Overloaded", "server_error", code="overloaded")


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, {"type": "invalid_request_error", "message": "max_tokens: too large"},
         openai_error("max_tokens: too large", "invalid_request_error")),
        (401, {"type": "authentication_error", "message": "invalid x-api-key"},
         openai_error("invalid x-api-key", "authentication_error", code="invalid_api_key")),
        (404, {"type": "not_found_error", "message": "model: claude-nope"},
         openai_error("model: claude-nope", "invalid_request_error", code="not_found")),
        (500, {"type": "api_error", "message": "Internal server error"},
         openai_error("Internal server error", "server_error")),
        # Claude's wording for a prompt over the context window; OpenAI clients know it by its code
        (400, {"type": "invalid_request_error", "message": "prompt is too long: 209364 tokens > 200000 maximum"},
         openai_error("prompt is too long: 209364 tokens > 200000 maximum", "invalid_request_error",
                      code="context_length_exceeded")),
    ],
    ids=["400", "401", "404", "500", "400 prompt too long"],
)
async def test_upstream_error_status_passes_through(
    direct: TestClient, fake_upstream: FakeUpstream, status: int, error: JSONObject, expected: JSONObject
) -> None:
    fake_upstream.json({"type": "error", "error": error}, status=status)
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()]})
    assert resp.status == status
    assert await resp.json() == expected


async def test_upstream_html_502_becomes_clean_json(direct: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.raw(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>")
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()]})
    assert resp.status == 502
    assert resp.content_type == "application/json"
    assert await resp.json() == openai_error(
        "upstream answered HTTP 502 (text/html): <html><body><h1>502 Bad Gateway</h1></body></html>", "server_error")


async def test_overloaded_error_event_before_content_is_503(direct: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.events([{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}])
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()], "stream": True})
    assert resp.status == 503
    assert resp.content_type == "application/json"
    assert await resp.json() == openai_error("Overloaded", "server_error", code="overloaded")


async def test_upstream_200_that_is_not_json_is_502(direct: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.raw(200, b"<html>maintenance</html>")
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()]})
    assert resp.status == 502
    assert await resp.json() == openai_error("upstream answered 200 with a body that is not JSON", "server_error")


async def test_one_failed_choice_of_n_fails_the_request(direct: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    fake_upstream.json(RATE_LIMITED, status=429, headers={"retry-after": "3"})
    resp = await direct.post(CHAT, json={"model": SONNET, "messages": [hi()], "n": 2})
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "3"
    assert (await resp.json())["error"]["type"] == "rate_limit_error"
    assert len(fake_upstream.requests) == 2


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_upstream_connection_refused_is_502(make_proxy: MakeProxy, stream: bool) -> None:
    proxy = await make_proxy(upstream={"base_url": f"http://127.0.0.1:{closed_port()}"}, routing={"max_attempts": 1})
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [hi()], "stream": stream})
    assert resp.status == 502
    got = await resp.json()
    assert got["error"]["message"].startswith(  # the upstream's address is not the client's to know
        "upstream unavailable: ClientConnectorError: Cannot connect to host <upstream> ")
    assert {**got["error"], "message": ""} == {"message": "", "type": "server_error", "param": None, "code": None}
