"""The real ``openai`` SDK's Responses API (sync and async) against the proxy's ``/v1/responses``, in front of
the fake upstream scripted with recorded Claude answers (``tests/fixtures/clients/``, see SOURCES.md there).

What a user of the SDK does: ``responses.create``; a function tool round trip with ``function_call_output``;
a thinking tool loop sent back whole with ``store=False`` and ``include=["reasoning.encrypted_content"]`` (as
Codex does); ``responses.stream`` and its strict accumulator; ``responses.parse`` on both structured output
paths; ``previous_response_id`` on the stored conversation; ``retrieve``, ``delete``, ``input_items.list``,
``input_tokens.count``; and the errors the SDK raises. Sync clients block, so their calls run in a thread
while the event loop keeps serving both servers.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import orjson
import pydantic
import pytest
from aiohttp.test_utils import TestClient
from openai.types.responses import ResponseItem
from pydantic import TypeAdapter

from tests.conftest import FIXTURES
from tests.fakes import FakeUpstream
from translator.demo import stream_events

HERE = FIXTURES / "clients"
MakeProxy = Callable[..., Awaitable[TestClient]]
Client = openai.OpenAI | openai.AsyncOpenAI
ONE_ATTEMPT = {"routing": {"max_attempts": 1}}  # error tests: the proxy must not retry the fake's answer


def fixture(name: str) -> bytes:
    return (HERE / name).read_bytes()


def claude(*content: dict[str, Any], stop: str = "end_turn", model: str = "claude-sonnet-4-5-20250929",
           usage: dict[str, int] | None = None) -> dict[str, Any]:
    """A Claude message with these blocks."""
    return {"id": "msg_01Scripted", "type": "message", "role": "assistant", "model": model, "content": list(content),
            "stop_reason": stop, "stop_sequence": None,
            "usage": usage or {"input_tokens": 20, "output_tokens": 10, "cache_read_input_tokens": 0,
                               "cache_creation_input_tokens": 0}}


def streamed(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The Claude stream of ``message`` (the demo upstream's event sequence: text in words, input in pieces)."""
    return [payload for _, payload in stream_events(message)]


async def run(client: Client, method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    if isinstance(client, openai.AsyncOpenAI):
        return await method(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


async def stream_final(client: Client, **kwargs: Any) -> tuple[list[Any], Any]:
    """``responses.stream(...)``: every event, then ``get_final_response()``."""
    if isinstance(client, openai.AsyncOpenAI):
        async with client.responses.stream(**kwargs) as stream:
            got = [event async for event in stream]
            return got, await stream.get_final_response()

    def sync() -> tuple[list[Any], Any]:
        with client.responses.stream(**kwargs) as stream:
            got = list(stream)
            return got, stream.get_final_response()

    return await asyncio.to_thread(sync)


async def raw_stream(client: Client, **kwargs: Any) -> list[Any]:
    """``responses.create(stream=True)``, read to the end."""
    if isinstance(client, openai.AsyncOpenAI):
        return [event async for event in await client.responses.create(stream=True, **kwargs)]
    return await asyncio.to_thread(lambda: list(client.responses.create(stream=True, **kwargs)))


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


def dumped(items: list[Any]) -> list[dict[str, Any]]:
    """Output items as a client sends them back: the SDK's models as JSON (unset fields left out)."""
    return [item.model_dump(mode="json", exclude_none=True) for item in items]


def decoded(encrypted_content: str) -> dict[str, Any]:
    prefix = "claude-block-v1:"
    assert encrypted_content.startswith(prefix)
    return dict(orjson.loads(base64.urlsafe_b64decode(encrypted_content[len(prefix):])))


# --- create ---


async def test_create_text(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    fake_upstream.raw(200, fixture("claude_response_text__vercel-ai.json"), "application/json",
                      headers={"request-id": "req_011CUpHello"})
    response = await run(client, client.responses.create, model="claude-sonnet-4-5", instructions="Be friendly.",
                         input="Hello, how are you?", temperature=0.5, max_output_tokens=300, store=False)
    assert response.id.startswith("resp_") and len(response.id) == 37
    assert re.fullmatch("[0-9a-f]{16}", response._request_id or "")  # ours: the log line has the upstream's
    assert (response.object, response.status, response.error, response.incomplete_details) == (
        "response", "completed", None, None)
    assert response.model == "claude-sonnet-4-5-20250929"
    assert (response.instructions, response.temperature, response.max_output_tokens, response.store) == (
        "Be friendly.", 0.5, 300, False)
    text = "Hello! I'm doing well, thanks for asking. How are you doing today? Is there anything I can help you with?"
    assert response.output_text == text
    [item] = response.output
    assert item.model_dump(exclude_none=True) == {
        "id": f"msg_{response.id[5:]}_0", "type": "message", "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (12, 29, 41)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert fake_upstream.last.json == {
        "model": "claude-sonnet-4-5", "max_tokens": 300, "temperature": 0.5,
        "system": [{"type": "text", "text": "Be friendly."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, how are you?"}]}],
    }
    assert fake_upstream.last.headers["Authorization"] == "Bearer sk-test"


WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                          "additionalProperties": False}}


async def test_function_tool_round_trip(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    """The call comes back as a function_call item; the client runs it and sends the whole conversation back
    with its function_call_output (store=False: nothing kept here)."""
    client = connect(await make_proxy())
    call = {"type": "tool_use", "id": "toolu_01Paris", "name": "get_weather", "input": {"city": "Paris"}}
    fake_upstream.json(claude({"type": "text", "text": "Let me check."}, call, stop="tool_use"))
    fake_upstream.json(claude({"type": "text", "text": "It is sunny in Paris."}))
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    first = await run(client, client.responses.create, model="claude-sonnet-4-5", input=ask, tools=[WEATHER],
                      store=False)
    message, function_call = first.output
    assert message.content[0].text == "Let me check."
    assert function_call.model_dump(exclude_none=True) == {
        "id": f"fc_{first.id[5:]}_1", "type": "function_call", "status": "completed", "call_id": "toolu_01Paris",
        "name": "get_weather", "arguments": '{"city":"Paris"}',
    }
    assert first.tools[0].name == "get_weather" and first.tools[0].strict is True
    follow = [*ask, *dumped(first.output),
              {"type": "function_call_output", "call_id": function_call.call_id, "output": "sunny, 21C"}]
    second = await run(client, client.responses.create, model="claude-sonnet-4-5", input=follow, tools=[WEATHER],
                       store=False)
    assert second.output_text == "It is sunny in Paris."
    sent = fake_upstream.last.json
    assert sent["tools"] == [{"name": "get_weather", "description": "The weather in a city.", "strict": True,
                              "input_schema": WEATHER["parameters"]}]
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."}, call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Paris",
                                      "content": "sunny, 21C"}]},
    ]


COUNTRY = {"type": "function", "name": "get_user_country", "description": "The user's country.",
           "parameters": {"type": "object", "properties": {}}}


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream"])
async def test_reasoning_round_trips_in_encrypted_content(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, stream: bool
) -> None:
    """A thinking tool loop with store=False: the thinking block leaves as the reasoning item's
    encrypted_content and comes back byte for byte, ahead of the text and the call, as Claude requires."""
    client = connect(await make_proxy())
    recorded = orjson.loads(fixture("claude_response_thinking_text_tool_use__pydantic-ai.json"))
    thinking, text, tool_use = recorded["content"]
    if stream:
        fake_upstream.events(streamed(recorded))
    else:
        fake_upstream.json(recorded)
    fake_upstream.raw(200, fixture("claude_response_text_after_four_tool_results__pydantic-ai.json"),
                      "application/json")
    ask = [{"role": "user", "content": "What is the largest city in the user country?"}]
    params = {"model": "claude-sonnet-4-0", "tools": [COUNTRY], "reasoning": {"effort": "low", "summary": "auto"},
              "include": ["reasoning.encrypted_content"], "store": False}
    if stream:
        _, first = await stream_final(client, input=ask, **params)
    else:
        first = await run(client, client.responses.create, input=ask, **params)
    reasoning, message, call = first.output
    assert reasoning.type == "reasoning" and reasoning.id == f"rs_{first.id[5:]}_0"
    assert [part.model_dump() for part in reasoning.summary] == [{"type": "summary_text", "text": thinking["thinking"]}]
    assert decoded(reasoning.encrypted_content) == thinking
    assert (message.type, message.content[0].text) == ("message", text["text"])
    assert (call.type, call.name, call.call_id, call.arguments) == ("function_call", "get_user_country",
                                                                    tool_use["id"], "{}")
    assert first.reasoning.model_dump(exclude_none=True) == {"effort": "low", "summary": "auto"}
    assert fake_upstream.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 2048}

    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Mexico"}
    follow = [*ask, *dumped(first.output), result]
    second = await run(client, client.responses.create, input=follow, **params)
    assert second.output_text.startswith("Based on the retrieved information")
    sent = fake_upstream.last.json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["messages"][1:] == [
        {"role": "assistant", "content": [thinking, text, tool_use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"],
                                      "content": "Mexico"}]},
    ]
    assert thinking["signature"].encode() in fake_upstream.last.raw  # as Claude wrote it, not re-encoded


# --- the stream helper ---

TOOL_STREAM_EVENTS = [
    "response.created", "response.in_progress",
    "response.output_item.added", "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
    "response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


async def test_stream_helper_thinking_then_tool_call(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """The SDK's accumulator checks order, ids and output indexes; its events and final response agree."""
    client = connect(await make_proxy())
    fake_upstream.sse(fixture("claude_stream_thinking_then_tool_use__llm-anthropic.sse"), chunk_size=50,
                      headers={"request-id": "req_stream_1"})
    tool = {"type": "function", "name": "fixed_version", "parameters": {"type": "object", "properties": {}}}
    got, final = await stream_final(client, model="claude-haiku-4-5", input="Use the fixed_version tool",
                                    tools=[tool], reasoning={"effort": "medium"})
    assert [event.type for event in got] == TOOL_STREAM_EVENTS
    assert [event.sequence_number for event in got] == list(range(len(got)))
    assert final.status == "completed" and final.id == got[0].response.id
    assert final.model == "claude-haiku-4-5-20251001"
    thinking = ("The user wants me to:\n1. Use the fixed_version tool\n2. Tell them the version\n3. Make a short "
                "joke about it\n\nLet me first call the fixed_version tool to see what version it returns.")
    reasoning, call = final.output
    assert reasoning.summary[0].text == thinking
    assert decoded(reasoning.encrypted_content)["thinking"] == thinking
    assert (call.name, call.call_id, call.arguments, call.status) == (
        "fixed_version", "toolu_01825dXWLSoJwCst1qTsiWdb", "{}", "completed")
    done = [event.item for event in got if event.type == "response.output_item.done"]
    assert [item.model_dump(exclude_none=True) for item in done] == [
        item.model_dump(exclude_none=True) for item in final.output]
    assert [(e.output_index, e.item.id) for e in got if e.type == "response.output_item.added"] == [
        (0, reasoning.id), (1, call.id)]
    usage = final.usage
    assert (usage.input_tokens, usage.output_tokens, usage.output_tokens_details.reasoning_tokens) == (598, 92, 53)


async def test_stream_helper_text_deltas_and_snapshots(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    fake_upstream.events(streamed(claude({"type": "text", "text": "Hello there, friend."})))
    got, final = await stream_final(client, model="claude-sonnet-4-5", input="Hi")
    assert [event.type for event in got] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    deltas = [event for event in got if event.type == "response.output_text.delta"]
    assert [(e.delta, e.snapshot) for e in deltas] == [
        ("Hello ", "Hello "), ("there, ", "Hello there, "), ("friend.", "Hello there, friend.")]
    assert final.output_text == "Hello there, friend."
    assert got[-1].response.output_text == "Hello there, friend."


async def test_raw_stream_events_parse_as_the_sdk_types(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """``create(stream=True)``: every event is one of the SDK's event types, nothing left over."""
    client = connect(await make_proxy())
    fake_upstream.sse(fixture("claude_stream_text_then_two_tool_use_with_args__openllmetry.sse"))
    got = await raw_stream(client, model="claude-3-5-sonnet-20240620", input="Weather and time in SF?",
                           tools=[{**WEATHER, "strict": False}])
    adapter = pydantic.TypeAdapter(openai.types.responses.ResponseStreamEvent)
    for event in got:
        strict = adapter.validate_python(event.model_dump(mode="json"))
        assert strict.model_dump(mode="json") == event.model_dump(mode="json")
    final = got[-1].response
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert [(item.name, orjson.loads(item.arguments)) for item in final.output[1:]] == [
        ("get_weather", {"location": "San Francisco, CA", "unit": "celsius"}),
        ("get_time", {"timezone": "America/Los_Angeles"}),
    ]


# --- structured output ---


class Reading(pydantic.BaseModel):
    celsius: float
    station: str | None


class Forecast(pydantic.BaseModel):
    city: str
    readings: list[Reading]


FORECAST = {"city": "Paris", "readings": [{"celsius": 21.5, "station": None}]}


async def test_parse_with_native_structured_output(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    client = connect(await make_proxy())
    fake_upstream.json(claude({"type": "text", "text": orjson.dumps(FORECAST).decode()}))
    response = await run(client, client.responses.parse, model="claude-sonnet-4-5", input="Forecast for Paris",
                         text_format=Forecast)
    assert response.output_parsed == Forecast.model_validate(FORECAST)
    assert response.output[0].content[0].parsed == Forecast.model_validate(FORECAST)
    sent = fake_upstream.last.json
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert sent["output_config"]["format"]["schema"]["required"] == ["city", "readings"]
    assert "tools" not in sent and "tool_choice" not in sent
    assert response.text.format.type == "json_schema" and response.text.format.name == "Forecast"


async def test_parse_with_forced_tool(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    """A model without native structured output (claude-sonnet-4-0): a forced tool named as the schema, whose
    input is the message's text."""
    client = connect(await make_proxy())
    fake_upstream.json(claude({"type": "tool_use", "id": "toolu_01Json", "name": "Forecast", "input": FORECAST},
                              stop="tool_use"))
    response = await run(client, client.responses.parse, model="claude-sonnet-4-0", input="Forecast for Paris",
                         text_format=Forecast)
    assert response.output_parsed == Forecast.model_validate(FORECAST)
    [message] = response.output
    assert message.type == "message" and message.status == "completed"
    assert orjson.loads(message.content[0].text) == FORECAST
    sent = fake_upstream.last.json
    assert sent["tool_choice"] == {"type": "tool", "name": "Forecast", "disable_parallel_tool_use": True}
    assert [tool["name"] for tool in sent["tools"]] == ["Forecast"]
    assert "output_config" not in sent


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-sonnet-4-0"], ids=["native", "forced-tool"])
async def test_stream_helper_parses_structured_output(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, model: str
) -> None:
    client = connect(await make_proxy())
    if model == "claude-sonnet-4-5":
        fake_upstream.events(streamed(claude({"type": "text", "text": orjson.dumps(FORECAST).decode()})))
    else:
        block = {"type": "tool_use", "id": "toolu_01Json", "name": "Forecast", "input": FORECAST}
        fake_upstream.events(streamed(claude(block, stop="tool_use")))
    got, final = await stream_final(client, model=model, input="Forecast for Paris", text_format=Forecast)
    assert final.output_parsed == Forecast.model_validate(FORECAST)
    [text_done] = [event for event in got if event.type == "response.output_text.done"]
    assert text_done.parsed == Forecast.model_validate(FORECAST)
    assert orjson.loads(text_done.text) == FORECAST


# --- stored responses ---


async def test_previous_response_id_retrieve_input_items_delete(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any
) -> None:
    """The default store: a tool call continued by previous_response_id with only the function_call_output;
    then the stored response read back, its input items listed, and deleted."""
    client = connect(await make_proxy())
    call = {"type": "tool_use", "id": "toolu_01Paris", "name": "get_weather", "input": {"city": "Paris"}}
    fake_upstream.json(claude(call, stop="tool_use"))
    fake_upstream.json(claude({"type": "text", "text": "Sunny."}))
    first = await run(client, client.responses.create, model="claude-sonnet-4-5", input="Weather in Paris?",
                      instructions="Be brief.", tools=[WEATHER])
    assert first.store is True
    output = {"type": "function_call_output", "call_id": "toolu_01Paris", "output": "sunny"}
    second = await run(client, client.responses.create, model="claude-sonnet-4-5", input=[output],
                       previous_response_id=first.id, tools=[WEATHER])
    assert second.previous_response_id == first.id
    assert second.output_text == "Sunny."
    assert fake_upstream.last.json["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01Paris",
                                      "content": "sunny"}]},
    ]
    assert "system" not in fake_upstream.last.json  # instructions are not carried over, as OpenAI does

    got = await run(client, client.responses.retrieve, second.id)
    assert got.model_dump() == second.model_dump()
    page = await run(client, client.responses.input_items.list, second.id)
    items = [item.model_dump(exclude_none=True) for item in page.data]  # newest first
    first_call = first.output[0].model_dump(exclude_none=True)
    assert [item["type"] for item in items] == ["function_call_output", "function_call", "message"]
    # the API's item shapes (a type, a status, a message's text as parts), whatever shortcut the input took
    assert items[0] == {"id": f"item_{second.id[5:]}_0", **output, "status": "completed"}
    assert items[1] == first_call
    assert items[2] == {"id": f"item_{first.id[5:]}_0", "type": "message", "role": "user", "status": "completed",
                        "content": [{"type": "input_text", "text": "Weather in Paris?"}]}
    for item in page.data:
        TypeAdapter(ResponseItem).validate_python(item.model_dump())
    assert (page.first_id, page.last_id, page.has_more) == (items[0]["id"], items[2]["id"], False)
    ascending = await run(client, client.responses.input_items.list, second.id, order="asc", limit=2)
    assert [item.type for item in ascending.data] == ["message", "function_call"] and ascending.has_more is True

    deleted = await run(client, client.responses.delete, second.id)
    assert deleted is None
    with pytest.raises(openai.NotFoundError) as info:
        await run(client, client.responses.retrieve, second.id)
    assert info.value.status_code == 404
    assert info.value.message == f"Error code: 404 - no response with id {second.id!r} (it may have expired)"
    with pytest.raises(openai.BadRequestError) as missing:
        await run(client, client.responses.create, model="claude-sonnet-4-5", input="More?",
                  previous_response_id=second.id)
    assert missing.value.param == "previous_response_id"


async def test_input_tokens_count(make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any) -> None:
    client = connect(await make_proxy())
    if not hasattr(client.responses, "input_tokens"):
        pytest.skip("this openai SDK has no responses.input_tokens")
    fake_upstream.json({"input_tokens": 37})
    counted = await run(client, client.responses.input_tokens.count, model="claude-sonnet-4-5", input="Hello",
                        instructions="Be brief.", tools=[WEATHER])
    assert (counted.object, counted.input_tokens) == ("response.input_tokens", 37)
    assert fake_upstream.last.path == "/v1/messages/count_tokens"
    assert fake_upstream.last.json == {
        "model": "claude-sonnet-4-5", "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
        "tools": [{"name": "get_weather", "description": "The weather in a city.", "strict": True,
                   "input_schema": WEATHER["parameters"]}],
    }


# --- errors ---

OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.mark.parametrize("how", ["create", "raw-stream", "stream-helper"])
async def test_an_upstream_529_raises_the_sdk_class_with_the_message(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, how: str
) -> None:
    client = connect(await make_proxy(**ONE_ATTEMPT))
    fake_upstream.json(OVERLOADED, status=529, headers={"retry-after": "2"})
    with pytest.raises(openai.InternalServerError) as info:
        if how == "create":
            await run(client, client.responses.create, model="claude-sonnet-4-5", input="Hi")
        elif how == "raw-stream":
            await raw_stream(client, model="claude-sonnet-4-5", input="Hi")
        else:
            await stream_final(client, model="claude-sonnet-4-5", input="Hi")
    err = info.value
    assert type(err) is openai.InternalServerError and err.status_code == 503
    assert err.message == "Error code: 503 - Overloaded"
    assert err.body == {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}
    assert err.response.headers["retry-after"] == "2"
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("helper", [False, True], ids=["raw-stream", "stream-helper"])
async def test_an_error_mid_stream_raises_with_its_message(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Any, helper: bool
) -> None:
    client = connect(await make_proxy(**ONE_ATTEMPT))
    events = streamed(claude({"type": "text", "text": "Partial answer"}))
    fake_upstream.events([*events[:5], {"type": "error", "error": {"type": "overloaded_error",
                                                                   "message": "Overloaded midway"}}])
    with pytest.raises(openai.APIError) as info:
        if helper:
            await stream_final(client, model="claude-sonnet-4-5", input="Hi")
        else:
            await raw_stream(client, model="claude-sonnet-4-5", input="Hi")
    err = info.value
    assert type(err) is openai.APIError  # a stream error, not an HTTP status
    assert err.message == "Overloaded midway"
    assert err.body == {"type": "server_error", "code": "server_error", "message": "Overloaded midway", "param": None}
