"""The real ``anthropic`` SDK (sync and async) against the proxy's Claude route, in front of the fake upstream
scripted with recorded streams (``tests/fixtures/clients/``, see SOURCES.md there).

Many tests are differential: the same SDK call is made straight to the fake upstream and through the proxy,
and both must give the SDK the same result and the upstream the same request bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anthropic
import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import FIXTURES
from tests.fakes import FakeUpstream

HERE = FIXTURES / "clients"
MakeProxy = Callable[..., Awaitable[TestClient]]
Client = anthropic.Anthropic | anthropic.AsyncAnthropic


def fixture(name: str) -> bytes:
    return (HERE / name).read_bytes()


def payloads(sse: bytes) -> list[dict[str, Any]]:
    """The JSON data of each event of a recorded stream (all end with a blank line)."""
    out = []
    for block in sse.split(b"\n\n"):
        data = [line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")]
        if data:
            out.append(orjson.loads(b"\n".join(data)))
    return out


def events(*items: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (p["type"].encode(), orjson.dumps(p)) for p in items)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def connect(flavour: str) -> AsyncIterator[Callable[[str], Client]]:
    made: list[Client] = []

    def make(base_url: str) -> Client:
        cls = anthropic.AsyncAnthropic if flavour == "async" else anthropic.Anthropic
        client = cls(base_url=base_url, api_key="sk-ant-test", max_retries=0, timeout=20)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, anthropic.AsyncAnthropic):
            await client.close()
        else:
            client.close()


@pytest.fixture
async def clients(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Callable[[str], Client]
) -> tuple[Client, Client]:
    """(through the proxy, straight to the fake upstream); one upstream attempt, so that error tests see the
    scripted error passed on, not a retry"""
    proxy = await make_proxy(routing={"max_attempts": 1})
    return connect(str(proxy.make_url(""))), connect(str(fake_upstream.server.make_url("")))


async def run(client: Client, method: Callable[..., Any], /, **kwargs: Any) -> Any:
    if isinstance(client, anthropic.AsyncAnthropic):
        return await method(**kwargs)
    return await asyncio.to_thread(method, **kwargs)


async def final_message(client: Client, **kwargs: Any) -> tuple[list[str], Any]:
    """messages.stream(...): the event types seen and get_final_message()."""
    if isinstance(client, anthropic.AsyncAnthropic):
        async with client.messages.stream(**kwargs) as stream:
            seen = [e.type async for e in stream]
            return seen, await stream.get_final_message()

    def sync() -> tuple[list[str], Any]:
        with client.messages.stream(**kwargs) as stream:
            return [e.type for e in stream], stream.get_final_message()

    return await asyncio.to_thread(sync)


HELLO = [{"role": "user", "content": "Hello"}]


# --- messages.create ---


async def test_create(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, direct = clients
    recorded = fixture("claude_response_thinking_text_tool_use__pydantic-ai.json")
    kwargs: dict[str, Any] = {
        "model": "claude-opus-4-1", "max_tokens": 4096, "messages": [{"role": "user", "content": "Weather?"}],
        "thinking": {"type": "enabled", "budget_tokens": 3000},
        "tools": [{"name": "get_weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "metadata": {"user_id": '{"device_id":"d","account_uuid":"","session_id":"s"}'},
    }
    results = []
    for client in (direct, proxied):
        fake_upstream.raw(200, recorded, "application/json", headers={"request-id": "req_011CUp"})
        results.append(await run(client, client.messages.create, **kwargs))
    via_direct, message = results
    assert message.to_dict() == orjson.loads(recorded) == via_direct.to_dict()
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    assert message._request_id == "req_011CUp"
    first, second = fake_upstream.requests
    assert second.raw == first.raw  # the SDK's own bytes reached the upstream
    assert (second.path, second.query) == ("/v1/messages", "")
    for name in ("anthropic-version", "Authorization"):
        assert second.headers[name] == first.headers[name]


async def test_beta_create_forwards_query_and_beta_header(
    clients: tuple[Client, Client], fake_upstream: FakeUpstream
) -> None:
    proxied, _ = clients
    fake_upstream.raw(200, fixture("claude_response_text__vercel-ai.json"), "application/json")
    # Claude Code's query string; this SDK version sends none of its own
    message = await run(proxied, proxied.beta.messages.create, model="claude-haiku-4-5", max_tokens=64,
                        messages=HELLO, betas=["interleaved-thinking-2025-05-14", "context-management-2025-06-27"],
                        extra_query={"beta": "true"})
    assert message.content[0].text.startswith("Hello! I'm doing well")
    got = fake_upstream.last
    assert (got.path, got.query) == ("/v1/messages", "beta=true")
    assert got.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-management-2025-06-27"


# --- messages.stream ---


async def test_stream_final_message(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, direct = clients
    recorded = fixture("claude_stream_thinking_signature_then_text__pydantic-ai.sse")
    kwargs = {"model": "claude-opus-4-1", "max_tokens": 2048, "messages": HELLO,
              "thinking": {"type": "enabled", "budget_tokens": 1024}}
    results = []
    for client in (direct, proxied):
        fake_upstream.sse(recorded)
        results.append(await final_message(client, **kwargs))
    (seen_direct, via_direct), (seen, message) = results
    assert seen == seen_direct
    assert message.to_dict() == via_direct.to_dict()
    deltas = [p["delta"] for p in payloads(recorded) if p["type"] == "content_block_delta"]
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    assert thinking.signature == next(d["signature"] for d in deltas if d["type"] == "signature_delta")
    assert text.text == "".join(d["text"] for d in deltas if d["type"] == "text_delta")
    assert message.stop_reason == "end_turn"
    assert fake_upstream.requests[0].raw == fake_upstream.requests[1].raw


async def test_tool_round_trip(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, direct = clients
    tools = [{"name": "pelican_name_generator", "description": "",
              "input_schema": {"properties": {}, "type": "object"}}]
    ask = [{"role": "user", "content": [{"type": "text", "text": "Two names for a pet pelican"}]}]
    for client in (direct, proxied):
        fake_upstream.sse(fixture("claude_stream_two_tool_use_blocks__llm-anthropic.sse"))
        fake_upstream.sse(fixture("claude_stream_text_after_two_tool_results__llm-anthropic.sse"))
        _, first = await final_message(client, model="claude-haiku-4-5-20251001", max_tokens=8192, messages=ask,
                                       tools=tools)
        assert first.stop_reason == "tool_use"
        calls = [(b.type, b.id, b.name, b.input) for b in first.content]
        assert calls == [("tool_use", "toolu_01LtHJmixrs9NcWQkK8hu8hj", "pelican_name_generator", {}),
                         ("tool_use", "toolu_01N8a4jWyf116qKTMqKKmjyt", "pelican_name_generator", {})]
        follow = [*ask, {"role": "assistant", "content": first.content}, {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": name}
            for b, name in zip(first.content, ("Charles", "Sammy"), strict=True)]}]
        _, second = await final_message(client, model="claude-haiku-4-5-20251001", max_tokens=8192,
                                        messages=follow, tools=tools)
        assert second.stop_reason == "end_turn"
    direct_two, proxied_two = fake_upstream.requests[1], fake_upstream.requests[3]
    assert proxied_two.raw == direct_two.raw
    sent = proxied_two.json
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert [(b["type"], b["id"], b["input"]) for b in sent["messages"][1]["content"]] == [
        ("tool_use", "toolu_01LtHJmixrs9NcWQkK8hu8hj", {}), ("tool_use", "toolu_01N8a4jWyf116qKTMqKKmjyt", {})]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01LtHJmixrs9NcWQkK8hu8hj", "content": "Charles"},
        {"type": "tool_result", "tool_use_id": "toolu_01N8a4jWyf116qKTMqKKmjyt", "content": "Sammy"}]


async def test_signed_thinking_goes_back_byte_identical(
    clients: tuple[Client, Client], fake_upstream: FakeUpstream
) -> None:
    proxied, _ = clients
    recorded = fixture("claude_stream_thinking_then_tool_use__llm-anthropic.sse")
    deltas = [p["delta"] for p in payloads(recorded) if p["type"] == "content_block_delta"]
    thinking_text = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    signature = next(d["signature"] for d in deltas if d["type"] == "signature_delta")
    tools = [{"name": "fixed_version", "description": "Return a fixed test version string",
              "input_schema": {"properties": {}, "type": "object"}}]
    ask = [{"role": "user", "content": "Use the fixed_version tool. Then tell me the version."}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    fake_upstream.sse(recorded)
    fake_upstream.sse(fixture("claude_stream_text_after_two_tool_results__llm-anthropic.sse"))
    _, first = await final_message(proxied, model="claude-haiku-4-5-20251001", max_tokens=64000, messages=ask,
                                   tools=tools, thinking=thinking)
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    follow = [*ask, {"role": "assistant", "content": first.content},
              {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[1].id,
                                            "content": "1.2.3", "cache_control": {"type": "ephemeral"}}]}]
    await final_message(proxied, model="claude-haiku-4-5-20251001", max_tokens=64000, messages=follow, tools=tools,
                        thinking=thinking)
    sent = fake_upstream.last
    assert sent.json["messages"][1]["content"][0] == {"type": "thinking", "thinking": thinking_text,
                                                      "signature": signature}
    # the signature's exact characters (base64 with '+' and '/') are in the bytes the upstream read
    assert b'"signature":"' + signature.encode() + b'"' in sent.raw
    assert "+" in signature and "/" in signature


# --- count_tokens and models ---


async def test_count_tokens(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, _ = clients
    fake_upstream.json({"input_tokens": 14})
    counted = await run(proxied, proxied.messages.count_tokens, model="claude-haiku-4-5", messages=HELLO,
                        system="Be brief.")
    assert counted.input_tokens == 14
    sent = fake_upstream.last
    assert (sent.path, sent.json) == ("/v1/messages/count_tokens",
                                      {"messages": HELLO, "model": "claude-haiku-4-5", "system": "Be brief."})


UPSTREAM_MODELS = {
    "data": [{"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
              "created_at": "2025-09-29T00:00:00Z"}],
    "has_more": False, "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-sonnet-4-5-20250929",
}


async def test_models_list_and_retrieve(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, connect: Callable[[str], Client]
) -> None:
    proxy = await make_proxy(models={"aliases": {"sonnet": "claude-sonnet-4-5-20250929"}})
    client = connect(str(proxy.make_url("")))
    fake_upstream.json(UPSTREAM_MODELS)
    fake_upstream.json(UPSTREAM_MODELS)
    page = await run(client, client.models.list)
    assert [(m.id, m.type, m.display_name) for m in page.data] == [
        ("claude-sonnet-4-5-20250929", "model", "Claude Sonnet 4.5"),
        ("sonnet", "model", "sonnet (alias of claude-sonnet-4-5-20250929)"),
    ]
    assert (page.has_more, page.first_id, page.last_id) == (False, "claude-sonnet-4-5-20250929", "sonnet")
    assert page.data[1].created_at.isoformat() == "2025-09-29T00:00:00+00:00"
    one = await run(client, client.models.retrieve, model_id="sonnet")
    assert (one.id, one.display_name) == ("sonnet", "sonnet (alias of claude-sonnet-4-5-20250929)")
    fake_upstream.json(UPSTREAM_MODELS)
    fake_upstream.json({"type": "error", "error": {"type": "not_found_error", "message": "model: x"}}, status=404)
    with pytest.raises(anthropic.NotFoundError) as info:
        await run(client, client.models.retrieve, model_id="claude-sonet-4-5")
    assert info.value.body == {"type": "error", "error": {"type": "not_found_error",
                                                          "message": "model 'claude-sonet-4-5' not found"}}


# --- errors ---


async def test_overloaded_raises_overloaded_error(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, _ = clients
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}, "request_id": "req_1"}
    fake_upstream.json(body, status=529, headers={"retry-after": "2"})
    with pytest.raises(anthropic.OverloadedError) as info:
        await run(proxied, proxied.messages.create, model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert info.value.status_code == 529
    assert info.value.body == body
    assert info.value.response.headers["retry-after"] == "2"


async def test_rate_limit_raises_rate_limit_error(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, _ = clients
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    fake_upstream.json(body, status=429, headers={"retry-after": "9"})
    with pytest.raises(anthropic.RateLimitError) as info:
        await final_message(proxied, model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert (info.value.status_code, info.value.body) == (429, body)


START = {"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [],
    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}
TEXT = [{"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}}]


async def test_error_event_mid_stream_raises(clients: tuple[Client, Client], fake_upstream: FakeUpstream) -> None:
    proxied, _ = clients
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_upstream.sse(events(START, *TEXT, error))
    with pytest.raises(anthropic.APIStatusError) as info:
        await final_message(proxied, model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert isinstance(info.value, anthropic.APIError)
    assert info.value.body == error


@pytest.mark.parametrize("tail", [b"", b'event: content_block_delta\ndata: {"type":"content_block_delta","ind'],
                         ids=["between-events", "inside-an-event"])
async def test_stream_cut_short_raises_with_the_proxys_error(
    clients: tuple[Client, Client], fake_upstream: FakeUpstream, tail: bytes
) -> None:
    proxied, _ = clients
    fake_upstream.sse(events(START, *TEXT) + tail)
    with pytest.raises(anthropic.APIStatusError) as info:
        await final_message(proxied, model="claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert info.value.body == {"type": "error", "error": {"type": "api_error",
                                                          "message": "upstream stream ended before message_stop"}}
