"""The real ``openai`` SDK (sync and async) against the proxy, in front of the fake upstream scripted with
recorded Claude answers (``tests/fixtures/clients/``, see SOURCES.md there), or the built-in demo upstream.

Sync clients block, so their calls run in a thread while the event loop keeps serving both servers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import orjson
import pydantic
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import FIXTURES
from tests.fakes import FakeUpstream

HERE = FIXTURES / "clients"
CLAUDE = FIXTURES / "claude"  # the recordings with cache writes (see tests/fixtures/SOURCES.md)
MakeProxy = Callable[..., Awaitable[TestClient]]
Client = openai.OpenAI | openai.AsyncOpenAI
ONE_ATTEMPT = {"routing": {"max_attempts": 1}}  # error tests: the proxy must not retry the fake's answer


def fixture(name: str) -> bytes:
    return (HERE / name).read_bytes()


def events(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (p["type"].encode(), orjson.dumps(p)) for p in payloads)


async def run(client: Client, method: Callable[..., Any], /, **kwargs: Any) -> Any:
    if isinstance(client, openai.AsyncOpenAI):
        return await method(**kwargs)
    return await asyncio.to_thread(method, **kwargs)


async def collect(client: Client, **kwargs: Any) -> list[Any]:
    """chat.completions.create(stream=True), read to the end."""
    if isinstance(client, openai.AsyncOpenAI):
        stream = await client.chat.completions.create(stream=True, **kwargs)
        return [chunk async for chunk in stream]
    return await asyncio.to_thread(lambda: list(client.chat.completions.create(stream=True, **kwargs)))


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connect(flavour: str) -> AsyncIterator[Callable[[TestClient], Client]]:
    made: list[Client] = []

    def make(proxy: TestClient) -> Client:
        cls = openai.AsyncOpenAI if flavour == "async" else openai.OpenAI
        client = cls(base_url=str(proxy.make_url("/v1")), api_key="sk-test", max_retries=0, timeout=20)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, openai.AsyncOpenAI):
            await client.close()
        else:
            client.close()


# --- plain completions ---


async def test_create(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.raw(200, fixture("claude_response_text__vercel-ai.json"), "application/json",
                      headers={"request-id": "req_011CUpHello"})
    completion = await run(client, client.chat.completions.create, model="claude-sonnet-4-5", temperature=0.5,
                           messages=[{"role": "system", "content": "Be friendly."},
                                     {"role": "user", "content": "Hello, how are you?"}])
    assert completion.id == "chatcmpl-msg_01VdEjxAP5ahtHKrrRdNBteQ"
    assert re.fullmatch("[0-9a-f]{16}", completion._request_id or "")  # ours: the log line has the upstream's
    assert completion.object == "chat.completion"
    assert completion.model == "claude-sonnet-4-5-20250929"
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert (choice.index, choice.finish_reason) == (0, "stop")
    assert choice.message.role == "assistant"
    assert choice.message.content == ("Hello! I'm doing well, thanks for asking. How are you doing today? "
                                      "Is there anything I can help you with?")
    assert choice.message.tool_calls is None
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 29, 41)
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.prompt_tokens_details.cache_write_tokens == 0
    assert fake_upstream.last.json == {
        "model": "claude-sonnet-4-5", "max_tokens": 8192, "temperature": 0.5,
        "system": [{"type": "text", "text": "Be friendly."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}],
    }
    assert fake_upstream.last.headers["Authorization"] == "Bearer sk-test"


# --- prompt caching in usage: cached_tokens = cache read, cache_write_tokens = cache creation ---


@pytest.mark.parametrize(("name", "prompt", "completion", "read", "written"), [
    ("claude_response_cache_read_and_write__pydantic-ai.json", 3 + 1111 + 418, 33, 1111, 418),
    ("claude_response_cache_write_1h_ttl__dd-trace-py.json", 17 + 2056, 100, 0, 2056),
])
async def test_create_reports_cache_reads_and_writes(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, name: str, prompt: int, completion: int,
    read: int, written: int,
) -> None:
    client = connect(await make_proxy())
    fake_upstream.raw(200, (CLAUDE / "responses" / name).read_bytes(), "application/json")
    reply = await run(client, client.chat.completions.create, model="claude-sonnet-4-5",
                      messages=[{"role": "user", "content": "Hello"}])
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (prompt, completion,
                                                                                  prompt + completion)
    assert usage.prompt_tokens_details.model_dump(exclude_unset=True) == {"cached_tokens": read,
                                                                          "cache_write_tokens": written}
    assert usage.prompt_tokens_details.cache_write_tokens == written
    assert usage.model_extra == {"cache_read_input_tokens": read, "cache_creation_input_tokens": written}


async def test_stream_reports_cache_writes_with_null_usage_before(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """include_usage: every chunk but the last has ``usage`` set to null; the last, ``choices: []``, has the
    usage with the cache write (message_start: input 18, cache_creation 1031; message_delta: output 100)."""
    client = connect(await make_proxy())
    fake_upstream.sse((CLAUDE / "streams" / "claude_stream_cache_write__dd-trace-py.sse").read_bytes())
    chunks = await collect(client, model="claude-sonnet-4-0", messages=[{"role": "user", "content": "Hello"}],
                           stream_options={"include_usage": True})
    *body, last = chunks
    assert all(c.choices and "usage" in c.model_fields_set and c.usage is None for c in body)
    assert last.choices == []
    assert last.usage.model_dump(exclude_unset=True) == {
        "prompt_tokens": 1049, "completion_tokens": 100, "total_tokens": 1149,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 1031},
        "cache_read_input_tokens": 0, "cache_creation_input_tokens": 1031,
    }
    assert last.usage.prompt_tokens_details.cache_write_tokens == 1031


async def test_stream_without_include_usage_has_no_usage_field(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    fake_upstream.sse((CLAUDE / "streams" / "claude_stream_cache_write__dd-trace-py.sse").read_bytes())
    chunks = await collect(client, model="claude-sonnet-4-0", messages=[{"role": "user", "content": "Hello"}])
    assert chunks[-1].choices[0].finish_reason == "length"
    assert not any("usage" in c.model_fields_set for c in chunks)


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Get the current time in a given time zone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}},
]
WEATHER_TEXT = ("Certainly! I can help you with that information. To get the weather and current time in San Francisco,"
                " I'll need to use two separate functions. Let me fetch that data for you.")
WEATHER_CALLS = [
    ("toolu_014x5X91kx3fvdhpLvwXZWE2", "get_weather", '{"location": "San Francisco, CA", "unit": "celsius"}'),
    ("toolu_0121kXsENLvoDZ72LCuAnCCz", "get_time", '{"timezone": "America/Los_Angeles"}'),
]
WEATHER_ASK = [{"role": "user", "content": "What is the weather and current time in San Francisco?"}]


async def test_create_stream(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.sse(fixture("claude_stream_text_then_two_tool_use_with_args__openllmetry.sse"))
    chunks = await collect(client, model="claude-3-5-sonnet-20240620", messages=WEATHER_ASK, tools=TOOLS,
                           stream_options={"include_usage": True})
    assert {c.id for c in chunks} == {"chatcmpl-msg_0138UNF3YbNp49KkqZtUBWqz"}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, last = chunks
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (506, 153, 659)
    assert "".join(c.choices[0].delta.content or "" for c in body) == WEATHER_TEXT
    calls: dict[int, list[str]] = {}
    for chunk in body:
        for tc in chunk.choices[0].delta.tool_calls or []:
            if tc.id is not None:
                calls[tc.index] = [tc.id, tc.function.name, tc.function.arguments]
            else:
                calls[tc.index][2] += tc.function.arguments
    assert [tuple(calls[i]) for i in sorted(calls)] == WEATHER_CALLS
    assert [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason] == ["tool_calls"]
    assert fake_upstream.last.json["stream"] is True
    assert fake_upstream.last.json["tools"][1] == {
        "name": "get_time", "description": "Get the current time in a given time zone",
        "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}


async def test_stream_helper_final_completion(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.sse(fixture("claude_stream_text_then_two_tool_use_with_args__openllmetry.sse"))
    kwargs = {"model": "claude-3-5-sonnet-20240620", "messages": WEATHER_ASK, "tools": TOOLS,
              "stream_options": {"include_usage": True}}

    if isinstance(client, openai.AsyncOpenAI):
        async with client.chat.completions.stream(**kwargs) as stream:
            seen = [e async for e in stream]
            final = await stream.get_final_completion()
    else:
        def sync() -> tuple[list[Any], Any]:
            with client.chat.completions.stream(**kwargs) as stream:
                return list(stream), stream.get_final_completion()

        seen, final = await asyncio.to_thread(sync)
    done = [(e.name, e.arguments) for e in seen if e.type == "tool_calls.function.arguments.done"]
    assert done == [(name, args) for _, name, args in WEATHER_CALLS]  # each once: the usage chunk adds none
    assert [e.content for e in seen if e.type == "content.done"] == [WEATHER_TEXT]
    message = final.choices[0].message
    assert message.content == WEATHER_TEXT
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == WEATHER_CALLS
    assert final.choices[0].finish_reason == "tool_calls"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (506, 153)
    assert final.usage.prompt_tokens_details.model_dump(exclude_unset=True) == {"cached_tokens": 0,
                                                                                "cache_write_tokens": 0}


# --- a full tool round trip (recorded: pydantic-ai's four parallel calls) ---

FAMILY_REQUEST = "claude_response_text_after_four_tool_results__pydantic-ai.request.json"
FAMILY_SYSTEM = orjson.loads(fixture(FAMILY_REQUEST))["system"]
FAMILY_TOOL = {"type": "function", "function": {
    "name": "retrieve_entity_info", "description": "Get the knowledge about the given entity.",
    "parameters": {"additionalProperties": False, "properties": {"name": {"type": "string"}},
                   "required": ["name"], "type": "object"}}}
FAMILY_RESULTS = ["alice is bob's wife", "bob is alice's husband", "charlie is alice's son",
                  "daisy is bob's daughter and charlie's younger sister"]


async def test_tool_round_trip(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.raw(200, fixture("claude_response_text_and_four_parallel_tool_use__pydantic-ai.json"),
                      "application/json")
    fake_upstream.raw(200, fixture("claude_response_text_after_four_tool_results__pydantic-ai.json"),
                      "application/json")
    messages: list[Any] = [
        {"role": "system", "content": FAMILY_SYSTEM},
        {"role": "user", "content": "Alice, Bob, Charlie and Daisy are a family. Who is the youngest?"},
    ]
    first = await run(client, client.chat.completions.create, model="claude-haiku-4-5", messages=messages,
                      tools=[FAMILY_TOOL], tool_choice="auto")
    assert first.choices[0].finish_reason == "tool_calls"
    reply = first.choices[0].message
    assert [(c.function.name, c.function.arguments) for c in reply.tool_calls] == [
        ("retrieve_entity_info", f'{{"name":"{n}"}}') for n in ("Alice", "Bob", "Charlie", "Daisy")]
    messages.append(reply)  # the SDK's own message object goes back, as users write it
    messages += [{"role": "tool", "tool_call_id": c.id, "content": r} for c, r in zip(reply.tool_calls, FAMILY_RESULTS,
                                                                                       strict=True)]
    second = await run(client, client.chat.completions.create, model="claude-haiku-4-5", messages=messages,
                       tools=[FAMILY_TOOL], tool_choice="auto")
    assert second.choices[0].message.content.startswith("Based on the retrieved information")
    assert second.choices[0].finish_reason == "stop"

    recorded = orjson.loads(fixture(FAMILY_REQUEST))
    sent = fake_upstream.last.json
    assert sent == {
        "model": "claude-haiku-4-5", "max_tokens": 8192,
        "system": [{"type": "text", "text": FAMILY_SYSTEM}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": messages[1]["content"]}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": reply.content},
                *[{"type": "tool_use", "id": c.id, "name": "retrieve_entity_info",
                   "input": {"name": n}} for c, n in zip(reply.tool_calls, ("Alice", "Bob", "Charlie", "Daisy"),
                                                          strict=True)],
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": c.id, "content": r}
                                         for c, r in zip(reply.tool_calls, FAMILY_RESULTS, strict=True)]},
        ],
        "tools": [{"name": "retrieve_entity_info", "description": "Get the knowledge about the given entity.",
                   "input_schema": FAMILY_TOOL["function"]["parameters"]}],
        "tool_choice": {"type": "auto"},
    }
    # the same conversation pydantic-ai sent the real API (ours leaves out the default is_error: false)
    for block in recorded["messages"][2]["content"]:
        del block["is_error"]
    assert sent["messages"] == recorded["messages"]
    assert sent["tools"] == recorded["tools"]


# --- structured output with parse() ---


class Order(pydantic.BaseModel):
    order_ids: list[int]
    note: str


ORDER_SCHEMA = {
    "type": "object", "title": "Order", "additionalProperties": False, "required": ["order_ids", "note"],
    "properties": {"order_ids": {"items": {"type": "integer"}, "title": "Order Ids", "type": "array"},
                   "note": {"title": "Note", "type": "string"}},
}
ORDER_ASK = [{"role": "user", "content": "Extract order IDs from: Order 12345, Order 67890"}]
ORDER = Order(order_ids=[12345, 67890], note="two orders")


def message(*content: dict[str, Any], model: str, stop: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_parse", "type": "message", "role": "assistant", "model": model, "content": list(content),
            "stop_reason": stop, "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 9}}


async def test_parse_with_native_structured_output(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    fake_upstream.json(message({"type": "text", "text": ORDER.model_dump_json()}, model="claude-sonnet-4-5"))
    completion = await run(client, client.chat.completions.parse, model="claude-sonnet-4-5", messages=ORDER_ASK,
                           response_format=Order)
    assert completion.choices[0].message.parsed == ORDER
    sent = fake_upstream.last.json
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": ORDER_SCHEMA}}
    assert "tools" not in sent
    assert "tool_choice" not in sent


async def test_parse_with_forced_tool(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.json(message({"type": "tool_use", "id": "toolu_1", "name": "Order", "input": ORDER.model_dump()},
                               model="claude-3-haiku-20240307", stop="tool_use"))
    completion = await run(client, client.chat.completions.parse, model="claude-3-haiku-20240307",
                           messages=ORDER_ASK, response_format=Order)
    choice = completion.choices[0]
    assert choice.message.parsed == ORDER
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    sent = fake_upstream.last.json
    assert sent["tools"] == [{"name": "Order", "description": "Respond with JSON matching this schema.",
                              "input_schema": ORDER_SCHEMA}]
    assert sent["tool_choice"] == {"type": "tool", "name": "Order", "disable_parallel_tool_use": True}
    assert "output_config" not in sent


LEGACY_FUNCTION = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
WEATHER_CALL = {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Paris"}}


async def test_legacy_functions_are_answered_with_a_function_call(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """A request with the legacy functions (no tools) gets the legacy answer: message.function_call and
    finish_reason function_call, streamed as function_call deltas; Claude is told to call one at a time."""
    client = connect(await make_proxy())
    model = "claude-sonnet-4-5"
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    fake_upstream.json(message({"type": "text", "text": "Let me check."}, WEATHER_CALL, model=model, stop="tool_use"))
    completion = await run(client, client.chat.completions.create, model=model, messages=ask,
                           functions=[LEGACY_FUNCTION])
    choice = completion.choices[0]
    assert choice.finish_reason == "function_call"
    assert (choice.message.content, choice.message.tool_calls) == ("Let me check.", None)
    assert choice.message.function_call.model_dump() == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert fake_upstream.last.json["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}

    start = message(model=model, stop="tool_use")
    fake_upstream.events([
        {"type": "message_start", "message": {**start, "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {**WEATHER_CALL, "input": {}}},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}
          for p in ('{"city": ', '"Paris"}')],
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ])
    chunks = await collect(client, model=model, messages=ask, functions=[LEGACY_FUNCTION])
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert [d.function_call.model_dump() for d in deltas if d.function_call] == [
        {"name": "get_weather", "arguments": ""}, {"name": None, "arguments": '{"city": '},
        {"name": None, "arguments": '"Paris"}'}]
    assert all(d.tool_calls is None for d in deltas)
    assert chunks[-1].choices[0].finish_reason == "function_call"


class LookUp(pydantic.BaseModel):
    """Find an order by its number."""

    order_id: int


async def test_parse_beside_the_clients_own_tools_keeps_them_callable(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """An agent loop with an answer schema on a model without native structured output: the JSON tool is
    offered beside the client's tool (tool_choice any), so the model can call the client's tool first and
    answer through the JSON tool after."""
    client = connect(await make_proxy())
    model = "claude-3-haiku-20240307"
    tools = [openai.pydantic_function_tool(LookUp)]
    fake_upstream.json(message({"type": "tool_use", "id": "toolu_1", "name": "LookUp", "input": {"order_id": 12345}},
                               model=model, stop="tool_use"))
    first = await run(client, client.chat.completions.parse, model=model, messages=ORDER_ASK, tools=tools,
                      response_format=Order)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.parsed is None
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name) == ("toolu_1", "LookUp")
    assert call.function.parsed_arguments == LookUp(order_id=12345)
    sent = fake_upstream.last.json
    assert [tool["name"] for tool in sent["tools"]] == ["LookUp", "Order"]
    assert sent["tool_choice"] == {"type": "any"}

    fake_upstream.json(message({"type": "tool_use", "id": "toolu_2", "name": "Order", "input": ORDER.model_dump()},
                               model=model, stop="tool_use"))
    history = [*ORDER_ASK, choice.message.model_dump(exclude_none=True, exclude={"parsed"}),
               {"role": "tool", "tool_call_id": "toolu_1", "content": "found"}]
    for item in history[1]["tool_calls"]:
        item["function"].pop("parsed_arguments", None)
    second = await run(client, client.chat.completions.parse, model=model, messages=history, tools=tools,
                       response_format=Order)
    answer = second.choices[0]
    assert (answer.finish_reason, answer.message.parsed, answer.message.tool_calls) == ("stop", ORDER, None)
    sent = fake_upstream.last.json
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["messages"][1]["content"] == [{"type": "tool_use", "id": "toolu_1", "name": "LookUp",
                                               "input": {"order_id": 12345}}]
    assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "found"}]


async def test_stream_helper_parses_forced_tool_output(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    raw = ORDER.model_dump_json()
    start = message(model="claude-3-haiku-20240307", stop="tool_use")
    fake_upstream.events([
        {"type": "message_start", "message": {**start, "stop_reason": None}},
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Order", "input": {}}},
        *[{"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}}
          for p in ("", raw[:7], raw[7:20], raw[20:])],
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ])
    kwargs = {"model": "claude-3-haiku-20240307", "messages": ORDER_ASK, "response_format": Order}
    if isinstance(client, openai.AsyncOpenAI):
        async with client.chat.completions.stream(**kwargs) as stream:
            final = await stream.get_final_completion()
    else:
        def sync() -> Any:
            with client.chat.completions.stream(**kwargs) as stream:
                return stream.get_final_completion()

        final = await asyncio.to_thread(sync)
    assert final.choices[0].message.parsed == ORDER
    assert final.choices[0].message.content == raw
    assert final.choices[0].finish_reason == "stop"


async def test_json_schema_stream_matches_the_recorded_claude_request(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    recorded = orjson.loads(fixture("claude_stream_structured_output_json_schema__anthropic-sdk-python.request.json"))
    fake_upstream.sse(fixture("claude_stream_structured_output_json_schema__anthropic-sdk-python.sse"))
    schema = {"type": "array", "items": {"type": "integer"}}
    chunks = await collect(client, model="claude-sonnet-4-5", max_tokens=1024, messages=recorded["messages"],
                           response_format={"type": "json_schema", "json_schema": {"name": "ids", "schema": schema}})
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "[12345,67890]"
    assert chunks[-1].choices[0].finish_reason == "stop"
    sent = fake_upstream.last.json
    # what the anthropic SDK sent the real API for the same ask
    assert sent["output_config"] == recorded["output_config"]
    assert (sent["model"], sent["max_tokens"], sent["stream"]) == (recorded["model"], recorded["max_tokens"], True)


# --- errors ---


async def test_error_event_mid_stream_raises_api_error(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy(**ONE_ATTEMPT))
    start = message(model="claude-sonnet-4-5")
    fake_upstream.sse(events(
        {"type": "message_start", "message": {**start, "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}},
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    ))
    got: list[str] = []

    async def read() -> None:
        if isinstance(client, openai.AsyncOpenAI):
            async for chunk in await client.chat.completions.create(stream=True, model="claude-sonnet-4-5",
                                                                    messages=ORDER_ASK):
                got.append(chunk.choices[0].delta.content)
        else:
            def sync() -> None:
                for chunk in client.chat.completions.create(stream=True, model="claude-sonnet-4-5", messages=ORDER_ASK):
                    got.append(chunk.choices[0].delta.content)

            await asyncio.to_thread(sync)

    with pytest.raises(openai.APIError) as info:
        await read()
    assert type(info.value) is openai.APIError  # a stream error, not an HTTP status
    assert info.value.message == "Overloaded"
    assert info.value.body == {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    assert got == ["", "Partial"]


@pytest.mark.parametrize(("status", "error", "expected", "client_status", "body"), [
    (429, {"type": "rate_limit_error", "message": "Number of request tokens has exceeded your per-minute rate limit"},
     openai.RateLimitError, 429, {"message": "Number of request tokens has exceeded your per-minute rate limit",
                                  "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}),
    (529, {"type": "overloaded_error", "message": "Overloaded"}, openai.InternalServerError, 503,
     {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}),
])
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_error_status_raises_the_sdk_class(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, status: int, error: dict[str, str],
    expected: type[openai.APIStatusError], client_status: int, body: dict[str, Any], stream: bool,
) -> None:
    client = connect(await make_proxy(**ONE_ATTEMPT))
    fake_upstream.json({"type": "error", "error": error}, status=status, headers={"retry-after": "3"})
    with pytest.raises(expected) as info:
        if stream:
            await collect(client, model="claude-sonnet-4-5", messages=ORDER_ASK)
        else:
            await run(client, client.chat.completions.create, model="claude-sonnet-4-5", messages=ORDER_ASK)
    err = info.value
    assert err.status_code == client_status
    assert type(err) is expected
    assert err.body == body
    assert (err.code, err.type) == (body["code"], body["type"])
    assert err.response.headers["retry-after"] == "3"
    assert len(fake_upstream.requests) == 1


async def test_logprobs_is_a_400_naming_the_param(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    with pytest.raises(openai.BadRequestError) as info:
        await run(client, client.chat.completions.create, model="claude-sonnet-4-5", messages=ORDER_ASK, logprobs=True)
    assert info.value.status_code == 400
    assert info.value.param == "logprobs"
    assert info.value.code == "unsupported_parameter"
    assert info.value.type == "invalid_request_error"
    assert fake_upstream.requests == []


# --- n > 1 ---


async def test_n_two(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.json(message({"type": "text", "text": "first"}, model="claude-sonnet-4-5"))
    fake_upstream.json(message({"type": "text", "text": "second"}, model="claude-sonnet-4-5"))
    completion = await run(client, client.chat.completions.create, model="claude-sonnet-4-5", messages=ORDER_ASK, n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert sorted(c.message.content for c in completion.choices) == ["first", "second"]
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (40, 18)
    assert len(fake_upstream.requests) == 2
    assert fake_upstream.requests[0].raw == fake_upstream.requests[1].raw
    assert "n" not in fake_upstream.requests[0].json


async def test_n_two_streamed(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    for text in ("first answer", "second answer"):
        start = message(model="claude-sonnet-4-5")
        fake_upstream.events([
            {"type": "message_start", "message": {**start, "stop_reason": None}},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            *[{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
              for w in text.split(" ")],
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 9}},
            {"type": "message_stop"},
        ])
    chunks = await collect(client, model="claude-sonnet-4-5", messages=ORDER_ASK, n=2,
                           stream_options={"include_usage": True})
    assert len({c.id for c in chunks}) == 1
    texts = {0: "", 1: ""}
    finish = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk.choices
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finish[choice.index] = choice.finish_reason
    assert sorted(texts.values()) == ["firstanswer", "secondanswer"]
    assert finish == {0: "stop", 1: "stop"}
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (40, 18)


# --- the built-in demo upstream, end to end ---


async def test_demo_upstream_tool_round_trip(make_proxy: MakeProxy, connect: Any) -> None:
    client = connect(await make_proxy(demo=True))
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"]}}}]
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    first = await run(client, client.chat.completions.create, model="claude-demo-1", messages=ask, tools=tools)
    reply = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert reply.content == "I'll use the lookup tool."
    (tool_call,) = reply.tool_calls
    assert tool_call.function.name == "lookup"
    assert orjson.loads(tool_call.function.arguments) == {"city": "demo", "days": 1}
    assert tool_call.id.startswith("toolu_demo_")
    follow = [*ask, reply, {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 21C"}]
    if isinstance(client, openai.AsyncOpenAI):
        async with client.chat.completions.stream(model="claude-demo-1", messages=follow, tools=tools) as stream:
            final = await stream.get_final_completion()
    else:
        def sync() -> Any:
            with client.chat.completions.stream(model="claude-demo-1", messages=follow, tools=tools) as stream:
                return stream.get_final_completion()

        final = await asyncio.to_thread(sync)
    assert final.choices[0].message.content == "Demo reply (offline upstream): got the tool result: sunny, 21C"
    assert final.choices[0].finish_reason == "stop"


class Reading(pydantic.BaseModel):
    celsius: float
    station: str | None = None


class Forecast(pydantic.BaseModel):
    city: str
    readings: list[Reading]
    today: Reading


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-demo-1"])  # native structured output; forced tool
async def test_demo_upstream_parse(make_proxy: MakeProxy, connect: Any, model: str) -> None:
    client = connect(await make_proxy(demo=True))
    ask = [{"role": "user", "content": "Forecast for Oslo as JSON"}]
    completion = await run(client, client.chat.completions.parse, model=model, messages=ask, response_format=Forecast)
    assert completion.choices[0].finish_reason == "stop"
    # (the SDK marks every field required: the demo fills in the optional station too)
    today = Reading(celsius=1, station="demo")
    assert completion.choices[0].message.parsed == Forecast(city="demo", readings=[], today=today)


# --- a recorded stream whose last event has no closing blank line ---


async def test_recorded_stream_ending_without_blank_line(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    fake_upstream.sse(fixture("claude_stream_tool_use_input_truncated_by_max_tokens__anthropic-sdk-python.sse"))
    chunks = await collect(client, model="claude-3-7-sonnet-20250219", messages=ORDER_ASK)
    args = "".join(tc.function.arguments or "" for c in chunks for tc in c.choices[0].delta.tool_calls or [])
    assert args == '{"filename": "taxes.txt", "lines_of_text": [\n"# COMPREHENSIVE TAX GUIDE FOR INDIVIDUALS ' \
                   'WITH MULTIPLE W-2s",\n"",\n"## INTRODUCTION",\n"",\n"Filing taxes'
    assert chunks[-1].choices[0].finish_reason == "length"
