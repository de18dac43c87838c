"""The Claude route (``/v1/messages``, ``/v1/messages/count_tokens``, ``/v1/models``) through the real
server, in front of the fake upstream.

The recorded streams in ``tests/fixtures/claude_route/`` (see SOURCES.md there) are replayed unchanged:
the client must get the upstream's bytes back, event for event, whatever block types they carry.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import FIXTURES
from tests.fakes import FakeUpstream, Reply

HERE = FIXTURES / "claude_route"
SSE_FILES = sorted(p.name for p in HERE.glob("*.sse"))
CHUNK_FILES = sorted(p.name for p in HERE.glob("*.chunks.jsonl"))
VERSION = {"anthropic-version": "2023-06-01"}
JSON = {"Content-Type": "application/json"}
MakeProxy = Callable[..., Awaitable[TestClient]]
# Error tests answer from one attempt: they are about how an error is passed on, not about failover.
ONE_ATTEMPT = {"routing": {"max_attempts": 1}}

MESSAGE = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 2},
}
MESSAGE_START = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}


def sse_events(body: bytes) -> list[tuple[str | None, bytes]]:
    """A reader written for the tests (not translator.sse): (event name, data) per dispatched event."""
    events: list[tuple[str | None, bytes]] = []
    name: str | None = None
    data: list[bytes] = []
    for line in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not line:
            if data:
                events.append((name, b"\n".join(data)))
            name, data = None, []
        elif not line.startswith(b":"):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                name = value.decode()
            elif field == b"data":
                data.append(value)
    return events  # an event without its closing blank line is not dispatched (WHATWG SSE)


def encode(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


def request_for(stem: str) -> bytes:
    """The recorded request of a stream when the corpus has it, else a minimal streaming request."""
    recorded = HERE / f"{stem}.request.json"
    if recorded.exists():
        return recorded.read_bytes()
    return orjson.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
                         "messages": [{"role": "user", "content": "Hello"}]})


def block_types(body: bytes) -> list[str]:
    return [orjson.loads(d)["content_block"]["type"] for n, d in sse_events(body) if n == "content_block_start"]


# --- recorded streams, relayed unchanged ---


@pytest.mark.parametrize("tiny", [False, True], ids=["whole", "tiny-chunks"])
@pytest.mark.parametrize("name", SSE_FILES)
async def test_recorded_stream_is_relayed_byte_identical(
    proxy: TestClient, fake_upstream: FakeUpstream, name: str, tiny: bool
) -> None:
    sent = (HERE / name).read_bytes()
    if tiny:  # 7 bytes (up to 1/1500 of the big recordings); the delay makes the proxy read them one by one
        fake_upstream.sse(sent, chunk_size=max(7, len(sent) // 1500), delay=1e-6)
    else:
        fake_upstream.sse(sent)
    body = request_for(name.removesuffix(".sse"))
    resp = await proxy.post("/v1/messages?beta=true", data=body, headers={**VERSION, **JSON})
    got = await resp.read()
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/event-stream"
    assert sse_events(got) == sse_events(sent)
    assert got == sent
    assert fake_upstream.last.raw == body
    assert (fake_upstream.last.path, fake_upstream.last.query) == ("/v1/messages", "beta=true")
    assert fake_upstream.cancelled == 0


@pytest.mark.parametrize("chunk_size", [None, 3], ids=["whole", "tiny-chunks"])
@pytest.mark.parametrize("name", CHUNK_FILES)
async def test_recorded_vercel_chunks_are_relayed_byte_identical(
    proxy: TestClient, fake_upstream: FakeUpstream, name: str, chunk_size: int | None
) -> None:
    # vercel's fixture format keeps only the data payloads: put each back into an SSE event
    payloads = (HERE / name).read_bytes().splitlines()
    sent = b"".join(b"event: %s\ndata: %s\n\n" % (orjson.loads(p)["type"].encode(), p) for p in payloads)
    fake_upstream.sse(sent, chunk_size=chunk_size, delay=1e-6 if chunk_size else 0.0)
    resp = await proxy.post("/v1/messages", data=request_for(name), headers=JSON)
    got = await resp.read()
    assert resp.status == 200
    assert [d for _, d in sse_events(got)] == payloads
    assert got == sent


@pytest.mark.parametrize(("name", "types"), [
    ("claude_stream_mcp_tool_use_and_result__pydantic-ai.sse",
     ["thinking", "mcp_tool_use", "mcp_tool_result", "text"]),
    ("claude_stream_thinking_code_execution__pydantic-ai.sse",
     ["thinking", "text", "server_tool_use", "bash_code_execution_tool_result", "text"]),
    ("claude_stream_tool_search_then_client_tool_use__pydantic-ai.sse",
     ["text", "server_tool_use", "tool_search_tool_result", "text", "tool_use"]),
    ("claude_stream_thinking_web_fetch__pydantic-ai.sse",
     ["thinking", "server_tool_use", "web_fetch_tool_result", "text"]),
    ("claude_stream_redacted_thinking_x2_then_text__pydantic-ai.sse",
     ["redacted_thinking", "redacted_thinking", "text"]),
])
async def test_server_tool_and_other_block_types_reach_the_client(
    proxy: TestClient, fake_upstream: FakeUpstream, name: str, types: list[str]
) -> None:
    fake_upstream.sse((HERE / name).read_bytes())
    resp = await proxy.post("/v1/messages", data=request_for(name.removesuffix(".sse")), headers=JSON)
    assert block_types(await resp.read()) == types


async def test_unknown_events_blocks_comments_and_crlf_pass_through(
    proxy: TestClient, fake_upstream: FakeUpstream
) -> None:
    sent = (
        b": keep-alive comment\r\n\r\n"
        + encode(MESSAGE_START).replace(b"\n", b"\r\n")
        + b"id: 7\r\nretry: 3000\r\n"
        + encode({"type": "content_block_start", "index": 0, "content_block": {"type": "hologram", "beam": [1]}})
        + encode({"type": "content_block_delta", "index": 0, "delta": {"type": "hologram_delta", "beam": 2}})
        + encode({"type": "content_block_stop", "index": 0})
        + encode({"type": "telemetry_hint", "note": "an event type from the future"})
        + encode({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                  "usage": {"output_tokens": 3}})
        + encode({"type": "message_stop"})
    )
    fake_upstream.sse(sent, chunk_size=5, delay=1e-6)
    resp = await proxy.post("/v1/messages", json={"model": "claude-x", "max_tokens": 5, "stream": True,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert await resp.read() == sent


# --- the request: forwarded as the client's bytes ---


async def test_request_body_reaches_upstream_byte_identical(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    raw = (b'{ "model" : "claude-sonnet-4-5",\n "max_tokens": 50, "temperature": 0.50,'
           b' "future_knob": {"x": [1e2, 2.50]},'
           b' "messages": [{"role": "user", "content": "caf\\u00e9"}, {"role": "system", "content": "mid-turn system"},'
           b' {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],'
           b' "metadata": {"user_id": "{\\"device_id\\":\\"d\\",\\"session_id\\":\\"s\\"}"}, "tools": [{"name": "t",'
           b' "input_schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},'
           b' "defer_loading": true}]}')
    fake_upstream.json(MESSAGE, headers={"request-id": "req_up_1"})
    resp = await proxy.post("/v1/messages", data=raw, headers={**VERSION, **JSON})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["request-id"] == "req_up_1"
    assert await resp.read() == orjson.dumps(MESSAGE)
    assert fake_upstream.last.raw == raw
    got = fake_upstream.last
    assert (got.method, got.path, got.query) == ("POST", "/v1/messages", "")


async def test_alias_rewrites_only_the_model(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(models={"aliases": {"my-alias": "claude-x"}})
    body = {"max_tokens": 10, "model": "my-alias", "messages": [{"role": "user", "content": "hi"}],
            "future_field": {"keep": [1, "two", None]}, "stream": False}
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/v1/messages", json=body)
    assert resp.status == 200
    sent = fake_upstream.last.json
    assert sent == {**body, "model": "claude-x"}
    assert list(sent) == list(body)  # key order kept
    fake_upstream.json({"input_tokens": 9})
    resp = await proxy.post("/v1/messages/count_tokens", json={"model": "my-alias", "messages": []})
    assert await resp.json() == {"input_tokens": 9}
    assert fake_upstream.last.json == {"model": "claude-x", "messages": []}


async def test_alias_splices_the_model_into_the_clients_bytes(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream
) -> None:
    proxy = await make_proxy(models={"aliases": {"my-alias": "claude-x"}})
    raw = (b'{"max_tokens": 10,\n "model" :  "my-alias", "messages": [{"role": "user", "content": "hi"}],'
           b' "big": 123456789012345678901234567890, "f": 1.50}')
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/v1/messages", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert fake_upstream.last.raw == raw.replace(b'"model" :  "my-alias"', b'"model":"claude-x"')


async def test_alias_named_twice_in_the_body_is_reencoded(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    # The same "model": "my-alias" inside a tool input too: which one is the request's is not a byte question.
    proxy = await make_proxy(models={"aliases": {"my-alias": "claude-x"}})
    call = {"type": "tool_use", "id": "t1", "name": "f", "input": {"model": "my-alias"}}
    turn = {"role": "assistant", "content": [call]}
    body = {"model": "my-alias", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}, turn]}
    fake_upstream.json(MESSAGE)
    assert (await proxy.post("/v1/messages", json=body)).status == 200
    assert fake_upstream.last.json == {**body, "model": "claude-x"}
    # The top-level name spelt with an escape, the nested one plainly: still the top one that changes.
    raw = orjson.dumps(body).replace(b'{"model":"my-alias"', b'{"model":"my-\\u0061lias"', 1)
    assert raw.startswith(b'{"model":"my-\\u0061lias"')
    fake_upstream.json(MESSAGE)
    assert (await proxy.post("/v1/messages", data=raw, headers={"Content-Type": "application/json"})).status == 200
    assert fake_upstream.last.json == {**body, "model": "claude-x"}


async def test_unaliased_model_is_not_reencoded(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(models={"aliases": {"my-alias": "claude-x"}})
    raw = b'{"model":"claude-y",  "max_tokens":1,"messages":[]}'
    fake_upstream.json(MESSAGE)
    await proxy.post("/v1/messages", data=raw)
    assert fake_upstream.last.raw == raw


async def test_query_and_anthropic_headers_are_forwarded(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    beta = "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27"
    fake_upstream.json(MESSAGE)
    await proxy.post("/v1/messages?beta=true", json={"model": "m", "max_tokens": 1, "messages": []},
                     headers={"anthropic-version": "2023-01-01", "anthropic-beta": beta, "x-api-key": "sk-client",
                              "X-Claude-Code-Session-Id": "0b7c", "Accept-Encoding": "gzip, deflate, br, zstd"})
    got = fake_upstream.last
    assert got.query == "beta=true"
    assert got.headers["anthropic-version"] == "2023-01-01"
    assert got.headers["anthropic-beta"] == beta
    assert got.headers["x-api-key"] == "sk-client"
    assert got.headers["Content-Type"] == "application/json"
    assert "X-Claude-Code-Session-Id" not in got.headers
    assert got.headers.get("Accept-Encoding") != "gzip, deflate, br, zstd"  # aiohttp's own, not the client's
    fake_upstream.json({"input_tokens": 1})
    await proxy.post("/v1/messages/count_tokens?beta=true", json={"model": "m", "messages": []},
                     headers={"anthropic-beta": "token-counting-2024-11-01"})
    got = fake_upstream.last
    assert (got.path, got.query) == ("/v1/messages/count_tokens", "beta=true")
    assert got.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert got.headers["anthropic-version"] == "2023-06-01"  # the default when the client sends none


async def test_configured_upstream_key_replaces_the_clients(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"api_key": "sk-proxy"})
    fake_upstream.json(MESSAGE)
    await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []},
                     headers={"x-api-key": "sk-client", "Authorization": "Bearer sk-client"})
    assert fake_upstream.last.headers["x-api-key"] == "sk-proxy"
    assert "Authorization" not in fake_upstream.last.headers


# --- validation ---


@pytest.mark.parametrize(("path", "raw", "message"), [
    ("/v1/messages", b"{not json", "request body is not valid JSON"),
    ("/v1/messages", b"", "request body is not valid JSON"),
    ("/v1/messages", b"[1, 2]", "request body must be a JSON object"),
    ("/v1/messages", b'{"max_tokens": 1, "messages": []}', "'model' must be a non-empty string"),
    ("/v1/messages", b'{"model": "", "max_tokens": 1, "messages": []}', "'model' must be a non-empty string"),
    ("/v1/messages", b'{"model": "m", "max_tokens": 1}', "messages: field required, an array of messages"),
    ("/v1/messages", b'{"model": "m", "max_tokens": 1, "messages": "hi"}',
     "messages: field required, an array of messages"),
    ("/v1/messages", b'{"model": "m", "messages": []}', "max_tokens: field required, an integer"),
    ("/v1/messages", b'{"model": "m", "max_tokens": true, "messages": []}', "max_tokens: field required, an integer"),
    ("/v1/messages", b'{"model": "m", "max_tokens": "5", "messages": []}', "max_tokens: field required, an integer"),
    ("/v1/messages/count_tokens", b'{"messages": []}', "'model' must be a non-empty string"),
    ("/v1/messages/count_tokens", b'{"model": "m"}', "messages: field required, an array of messages"),
])
async def test_invalid_requests_get_a_claude_400(
    proxy: TestClient, fake_upstream: FakeUpstream, path: str, raw: bytes, message: str
) -> None:
    resp = await proxy.post(path, data=raw, headers=JSON)
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "application/json"
    body = await resp.json()
    assert list(body) == ["type", "error"]
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith(message)
    assert fake_upstream.requests == []


async def test_count_tokens_needs_no_max_tokens(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    raw = b'{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}'
    fake_upstream.json({"input_tokens": 14})
    resp = await proxy.post("/v1/messages/count_tokens", data=raw, headers=VERSION)
    assert resp.status == 200
    assert await resp.json() == {"input_tokens": 14}
    assert fake_upstream.last.raw == raw


# --- upstream errors ---


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("status", "body", "headers"), [
    (529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     {"retry-after": "7", "request-id": "req_529"}),
    (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of request tokens has exceeded"
                                      " your per-minute rate limit"}, "request_id": "req_011"},
     {"retry-after": "30"}),
    (401, orjson.loads((HERE / "claude_error_401_authentication__dd-trace-py.json").read_bytes()), {}),
    (404, orjson.loads((HERE / "claude_error_404_not_found_model__pydantic-ai.json").read_bytes()), {}),
    (500, {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}, {}),
])
async def test_upstream_error_status_and_body_are_passed_on(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, status: int, body: dict[str, Any], headers: dict[str, str],
    stream: bool,
) -> None:
    proxy = await make_proxy(**ONE_ATTEMPT)
    fake_upstream.json(body, status=status, headers=headers)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 1, "stream": stream,
                                                  "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status == status
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == body
    assert resp.headers.get("Retry-After") == headers.get("retry-after")
    assert resp.headers.get("request-id") == headers.get("request-id")  # where the anthropic SDK reads it
    assert len(fake_upstream.requests) == 1


async def test_upstream_html_error_is_wrapped_in_claude_shape(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream
) -> None:
    proxy = await make_proxy(**ONE_ATTEMPT)
    fake_upstream.raw(502, b"<html><body>Bad Gateway</body></html>")
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []})
    assert resp.status == 502
    message = "upstream answered HTTP 502 (text/html): <html><body>Bad Gateway</body></html>"
    assert await resp.json() == {"type": "error", "error": {"type": "api_error", "message": message}}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_upstream_down_is_a_502_api_error(make_proxy: MakeProxy, path: str) -> None:
    proxy = await make_proxy(upstream={"base_url": f"http://127.0.0.1:{_closed_port()}"}, **ONE_ATTEMPT)
    resp = await proxy.post(path, json={"model": "m", "max_tokens": 1, "stream": True, "messages": []})
    assert resp.status == 502
    body = await resp.json()
    assert list(body) == ["type", "error"]
    assert body["error"]["type"] == "api_error"
    assert body["error"]["message"].startswith(  # the upstream's address is not the client's to know
        "upstream unavailable: ClientConnectorError: Cannot connect to host <upstream> ")


# --- streams that do not end well ---

CUT_ERROR = (b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
             b'"message":"upstream stream ended before message_stop"}}\n\n')


async def test_stream_ending_without_message_stop_gets_a_trailing_error(
    proxy: TestClient, fake_upstream: FakeUpstream
) -> None:
    sent = encode(MESSAGE_START, TEXT_START, TEXT_DELTA)
    fake_upstream.sse(sent)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert resp.status == 200
    assert await resp.read() == sent + CUT_ERROR


@pytest.mark.parametrize("cut", [
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"del',
    b"event: content_block_delta",
    b"event: content_block_delta\r",
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"x"}}\n',
])
async def test_stream_cut_inside_an_event_drops_the_fragment_before_the_error(
    proxy: TestClient, fake_upstream: FakeUpstream, cut: bytes
) -> None:
    # Our error written right after a half event would merge with it into one broken event.
    whole = encode(MESSAGE_START, TEXT_START, TEXT_DELTA)
    fake_upstream.sse(whole + cut, chunk_size=11, delay=1e-6)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    got = await resp.read()
    assert got == whole + CUT_ERROR
    assert [n for n, _ in sse_events(got)] == ["message_start", "content_block_start", "content_block_delta", "error"]


async def test_final_message_stop_without_blank_line_counts_as_complete(
    proxy: TestClient, fake_upstream: FakeUpstream
) -> None:
    # claude_stream_tool_use_input_truncated_by_max_tokens__anthropic-sdk-python.sse ends this way too
    sent = encode(MESSAGE_START, TEXT_START, TEXT_DELTA, {"type": "content_block_stop", "index": 0},
                  {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}})
    sent += b'event: message_stop\ndata: {"type":"message_stop"   }'
    fake_upstream.sse(sent, chunk_size=4, delay=1e-6)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert await resp.read() == sent


@pytest.mark.parametrize("chunk_size", [None, 7])
async def test_nothing_after_message_stop_reaches_the_client(
    proxy: TestClient, fake_upstream: FakeUpstream, chunk_size: int | None
) -> None:
    # A delta that mentions both names first: the end is found by event, not by the first mention.
    mention = {"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "an error\n\nevent: message_stop"}}
    sent = encode(MESSAGE_START, TEXT_START, mention, {"type": "content_block_stop", "index": 0},
                  {"type": "message_stop"})
    after = encode({"type": "message_start", "message": {}}, TEXT_DELTA)
    fake_upstream.sse(sent + after, chunk_size=chunk_size, delay=1e-6 if chunk_size else 0.0)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert await resp.read() == sent


async def test_mid_stream_error_event_is_relayed_as_sent(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    error = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n'
    sent = encode(MESSAGE_START, TEXT_START, TEXT_DELTA) + error
    fake_upstream.sse(sent)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert resp.status == 200
    assert await resp.read() == sent  # the error is the stream's proper end: nothing added


async def test_stalled_stream_ends_with_a_timeout_error_event(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream
) -> None:
    # the read timeout also bounds the wait for the head: long enough for a loaded machine's pause there
    proxy = await make_proxy(upstream={"read_timeout": 1.0}, **ONE_ATTEMPT)
    first = encode(MESSAGE_START, TEXT_START)
    fake_upstream.replies.append(_chunks([first, encode(TEXT_DELTA)], delay=30))  # the stall: far past it
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert await resp.read() == first + (b'event: error\ndata: {"type":"error","error":{"type":"timeout_error",'
                                         b'"message":"upstream timed out: Timeout on reading data from socket"}}\n\n')


def _chunks(chunks: list[bytes], delay: float) -> Reply:
    return Reply(200, b"", "text/event-stream", chunks=chunks, delay=delay)


# --- client disconnect ---


async def test_client_disconnect_cancels_the_upstream_request(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    sent = encode(MESSAGE_START, TEXT_START, *[TEXT_DELTA] * 200)
    fake_upstream.sse(sent, chunk_size=len(encode(TEXT_DELTA)), delay=0.02)
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert (await resp.content.readuntil(b"\n\n")).startswith(b"event: message_start\n")
    resp.close()
    for _ in range(200):
        if fake_upstream.cancelled:
            break
        await asyncio.sleep(0.01)
    assert fake_upstream.cancelled == 1


# --- /v1/models ---

UPSTREAM_MODELS = {
    "data": [
        {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
         "created_at": "2025-09-29T00:00:00Z"},
        {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "Claude Haiku 4.5",
         "created_at": "2025-10-15T00:00:00Z"},
    ],
    "has_more": False, "first_id": "claude-sonnet-4-5-20250929", "last_id": "claude-haiku-4-5-20251001",
}
ALIASES = {"models": {"aliases": {"sonnet": "claude-sonnet-4-5-20250929", "ghost": "claude-nowhere"}}}
SONNET_ALIAS = {"type": "model", "id": "sonnet", "display_name": "sonnet (alias of claude-sonnet-4-5-20250929)",
                "created_at": "2025-09-29T00:00:00Z"}
GHOST_ALIAS = {"type": "model", "id": "ghost", "display_name": "ghost (alias of claude-nowhere)",
               "created_at": "1970-01-01T00:00:00Z"}


async def test_models_openai_shape_by_default(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(**ALIASES)
    fake_upstream.json(UPSTREAM_MODELS)
    resp = await proxy.get("/v1/models", headers={"Authorization": "Bearer sk-client"})
    assert resp.status == 200
    assert await resp.json() == {"object": "list", "data": [
        {"id": "claude-sonnet-4-5-20250929", "object": "model", "created": 1759104000, "owned_by": "anthropic"},
        {"id": "claude-haiku-4-5-20251001", "object": "model", "created": 1760486400, "owned_by": "anthropic"},
        {"id": "sonnet", "object": "model", "created": 1759104000, "owned_by": "anthropic"},
        {"id": "ghost", "object": "model", "created": 0, "owned_by": "anthropic"},
    ]}
    got = fake_upstream.last
    assert (got.method, got.path, got.query) == ("GET", "/v1/models", "limit=1000")
    assert got.headers["Authorization"] == "Bearer sk-client"


async def test_models_claude_shape_with_anthropic_version(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(**ALIASES)
    fake_upstream.json(UPSTREAM_MODELS)
    resp = await proxy.get("/v1/models", headers={**VERSION, "x-api-key": "sk-client"})
    assert resp.status == 200
    assert await resp.json() == {
        "data": [*UPSTREAM_MODELS["data"], SONNET_ALIAS, GHOST_ALIAS],
        "has_more": False, "first_id": "claude-sonnet-4-5-20250929", "last_id": "ghost",
    }
    assert fake_upstream.last.headers["x-api-key"] == "sk-client"


async def test_models_empty_list_in_claude_shape(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json({"data": [], "has_more": False, "first_id": None, "last_id": None})
    resp = await proxy.get("/v1/models", headers=VERSION)
    assert await resp.json() == {"data": [], "has_more": False, "first_id": None, "last_id": None}


@pytest.mark.parametrize(("model_id", "claude", "openai"), [
    ("claude-haiku-4-5-20251001", UPSTREAM_MODELS["data"][1],
     {"id": "claude-haiku-4-5-20251001", "object": "model", "created": 1760486400, "owned_by": "anthropic"}),
    ("sonnet", SONNET_ALIAS, {"id": "sonnet", "object": "model", "created": 1759104000, "owned_by": "anthropic"}),
])
async def test_get_model_in_both_shapes(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, model_id: str, claude: Any, openai: Any
) -> None:
    proxy = await make_proxy(**ALIASES)
    fake_upstream.default = _json_reply(UPSTREAM_MODELS)
    resp = await proxy.get(f"/v1/models/{model_id}", headers=VERSION)
    assert (resp.status, await resp.json()) == (200, claude)
    resp = await proxy.get(f"/v1/models/{model_id}")
    assert (resp.status, await resp.json()) == (200, openai)


UPSTREAM_NOT_FOUND = {"type": "error", "error": {"type": "not_found_error", "message": "model: claude-sonet-4-5"}}


async def test_get_unknown_model_is_404_in_both_shapes(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    for _ in range(2):  # the list, then the upstream's own lookup by id, which does not know it either
        fake_upstream.json(UPSTREAM_MODELS)
        fake_upstream.json(UPSTREAM_NOT_FOUND, status=404)
    resp = await proxy.get("/v1/models/claude-sonet-4-5", headers=VERSION)
    assert resp.status == 404
    assert await resp.json() == {"type": "error", "error": {"type": "not_found_error",
                                                            "message": "model 'claude-sonet-4-5' not found"}}
    resp = await proxy.get("/v1/models/claude-sonet-4-5")
    assert resp.status == 404
    assert await resp.json() == {"error": {"message": "model 'claude-sonet-4-5' not found",
                                           "type": "invalid_request_error", "param": "model",
                                           "code": "model_not_found"}}


async def test_get_model_asks_the_upstream_for_an_id_it_does_not_list(
    proxy: TestClient, fake_upstream: FakeUpstream
) -> None:
    # Anthropic answers /v1/models/claude-sonnet-4-5 (an alias of its own) with the dated model it lists.
    dated = UPSTREAM_MODELS["data"][0]
    fake_upstream.json(UPSTREAM_MODELS)
    fake_upstream.json(dated)
    resp = await proxy.get("/v1/models/claude-sonnet-4-5", headers=VERSION)
    assert (resp.status, await resp.json()) == (200, dated)
    assert [(r.path, r.query) for r in fake_upstream.requests] == [
        ("/v1/models", "limit=1000"), ("/v1/models/claude-sonnet-4-5", "")]


async def test_models_upstream_error_in_caller_shape(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    body = orjson.loads((HERE / "claude_error_401_authentication__dd-trace-py.json").read_bytes())
    fake_upstream.default = _json_reply(body, status=401)
    resp = await proxy.get("/v1/models", headers=VERSION)
    assert (resp.status, await resp.json()) == (401, body)
    resp = await proxy.get("/v1/models")
    assert (resp.status, await resp.json()) == (401, {"error": {
        "message": "invalid x-api-key", "type": "authentication_error", "param": None, "code": "invalid_api_key"}})


async def test_models_list_is_cached_with_the_proxys_key(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"api_key": "sk-proxy"})
    fake_upstream.json(UPSTREAM_MODELS)
    first = await (await proxy.get("/v1/models", headers=VERSION)).json()
    second = await (await proxy.get("/v1/models", headers=VERSION)).json()
    one = await proxy.get("/v1/models/claude-haiku-4-5-20251001")
    assert first == second == UPSTREAM_MODELS
    assert one.status == 200
    assert len(fake_upstream.requests) == 1
    assert fake_upstream.last.headers["x-api-key"] == "sk-proxy"


async def test_models_list_is_not_shared_between_client_keys(proxy: TestClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = _json_reply(UPSTREAM_MODELS)
    await proxy.get("/v1/models", headers={"x-api-key": "sk-a"})
    await proxy.get("/v1/models", headers={"x-api-key": "sk-b"})
    assert [r.headers["x-api-key"] for r in fake_upstream.requests] == ["sk-a", "sk-b"]


async def test_models_cache_expires(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"api_key": "sk-proxy"}, models={"list_cache_seconds": 0})
    fake_upstream.default = _json_reply(UPSTREAM_MODELS)
    await proxy.get("/v1/models")
    await proxy.get("/v1/models")
    assert len(fake_upstream.requests) == 2


def _json_reply(payload: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(payload))


async def test_models_list_is_cached_with_a_key_in_the_upstreams_list(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream
) -> None:
    base_url = str(fake_upstream.server.make_url("")).rstrip("/")
    proxy = await make_proxy(upstreams=[{"name": "main", "base_url": base_url, "api_key": "sk-proxy"}])
    fake_upstream.default = _json_reply(UPSTREAM_MODELS)
    await proxy.get("/v1/models")
    await proxy.get("/v1/models")
    assert len(fake_upstream.requests) == 1
    assert fake_upstream.last.headers["x-api-key"] == "sk-proxy"


async def test_error_event_before_any_content_is_answered_as_its_status(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream
) -> None:
    # Before the first content event nothing has reached the client: the error is answered as the status it
    # stands for (the upstream pool could still have retried it elsewhere).
    proxy = await make_proxy(**ONE_ATTEMPT)
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_upstream.sse(encode(MESSAGE_START, error))
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert resp.status == 529
    assert resp.headers["Content-Type"] == "application/json"
    assert await resp.json() == error


async def test_error_event_before_any_content_is_retried(make_proxy: MakeProxy, fake_upstream: FakeUpstream) -> None:
    healthy = encode(MESSAGE_START, TEXT_START, TEXT_DELTA, {"type": "content_block_stop", "index": 0},
                     {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
                     {"type": "message_stop"})
    fake_upstream.sse(encode(MESSAGE_START, {"type": "error", "error": {"type": "api_error", "message": "boom"}}))
    fake_upstream.sse(healthy)
    proxy = await make_proxy(routing={"max_attempts": 2})
    resp = await proxy.post("/v1/messages", json={"model": "m", "max_tokens": 9, "stream": True, "messages": []})
    assert (resp.status, await resp.read()) == (200, healthy)
    assert len(fake_upstream.requests) == 2
    assert fake_upstream.requests[0].raw == fake_upstream.requests[1].raw


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions", "/v1/responses"])
async def test_a_write_that_finds_the_client_gone_is_no_server_error(
    proxy: TestClient, fake_upstream: FakeUpstream, server_log: Any, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    # Before aiohttp notices a closed connection (and cancels the handler), a write to it fails.
    writes = 0
    write = web.StreamResponse.write

    async def gone_after_the_first(self: web.StreamResponse, data: bytes) -> None:
        nonlocal writes
        if self.headers.get("X-Accel-Buffering") == "no":  # the proxy's stream (not the fake upstream's)
            writes += 1
            if writes > 1:
                raise ConnectionResetError("Cannot write to closing transport")
        await write(self, data)

    monkeypatch.setattr(web.StreamResponse, "write", gone_after_the_first)
    fake_upstream.sse(encode(MESSAGE_START, TEXT_START, *[TEXT_DELTA] * 20), chunk_size=len(encode(TEXT_DELTA)),
                      delay=0.01)
    body = {"model": "m", "max_tokens": 9, "stream": True, "input": "hi",
            "messages": [{"role": "user", "content": "hi"}]}
    resp = await proxy.post(path, json=body)
    await resp.read()
    assert writes == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    line = [orjson.loads(x) for x in server_log().splitlines() if '"request"' in x][-1]
    assert (line["status"], line.get("cancelled")) == (499, True)
