"""Bounded resources: body size (413), requests in flight (503 + Retry-After), slow request bodies (408),
oversized headers; each answered in the caller's API shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from tests.fakes import FakeUpstream

CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


async def test_body_over_the_limit_is_413_in_each_shape(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(server={"max_body_bytes": 2048})
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
    resp = await proxy.post("/v1/chat/completions", json=big)
    assert resp.status == 413
    body = await resp.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "request_too_large"
    resp = await proxy.post("/v1/messages", json={**CLAUDE, **big})
    assert resp.status == 413
    assert (await resp.json())["error"]["type"] == "request_too_large"
    assert fake_upstream.requests == []


async def handled(server_log: Callable[[], str], path: str, status: int) -> None:
    """Until the server logged a request on ``path`` answered ``status``: its handler has unwound (the log line
    is written last), so whatever it held is free."""
    async with asyncio.timeout(5):
        while not any(line.get("event") == "request" and line.get("path") == path and line.get("status") == status
                      for line in map(orjson.loads, filter(None, server_log().splitlines()))):
            await asyncio.sleep(0.01)


async def test_requests_over_the_in_flight_limit_get_503(
    make_proxy, fake_upstream: FakeUpstream, server_log: Callable[[], str]
) -> None:
    proxy = await make_proxy(server={"max_concurrent_requests": 1})
    start = {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                                  "model": "claude-x", "content": [], "usage": {}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    head = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in (start, block))
    release = asyncio.Event()  # the stream stays in flight (its message_stop unsent) until the refusals are seen
    fake_upstream.sse(head + b'event: message_stop\ndata: {"type":"message_stop"}\n\n', chunk_size=len(head),
                      release=release)
    holding = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert holding.status == 200
    refused = await proxy.post("/v1/messages", json=CLAUDE)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    assert await refused.json() == {"type": "error", "error": {
        "type": "overloaded_error", "message": "too many requests in flight at this proxy; retry shortly"}}
    refused = await proxy.post("/v1/chat/completions", json=CHAT)
    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "overloaded"
    assert (await proxy.get("/healthz")).status == 200  # health is never refused
    release.set()
    await holding.read()
    await handled(server_log, "/v1/chat/completions", 200)  # the stream's slot is free
    fake_upstream.json({"id": "m", "type": "message", "role": "assistant", "model": "claude-x",
                        "content": [], "stop_reason": "end_turn", "usage": {}})
    assert (await proxy.post("/v1/messages", json=CLAUDE)).status == 200


async def test_a_body_that_trickles_in_too_slowly_gets_408(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(server={"client_read_timeout": 0.3})
    host, port = proxy.server.host, proxy.server.port
    reader, writer = await asyncio.open_connection(host, port)
    body = orjson.dumps(CHAT)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()
    assert fake_upstream.requests == []


@pytest.mark.parametrize(("size", "status"), [(3000, 200), (5000, 431)])
async def test_header_size_is_bounded_by_the_setting(make_proxy, fake_upstream, size: int, status: int) -> None:
    proxy = await make_proxy(server={"max_header_bytes": 4096})
    fake_upstream.json({"id": "m", "type": "message", "role": "assistant", "model": "claude-x",
                        "content": [], "stop_reason": "end_turn", "usage": {}})
    resp = await proxy.post("/v1/messages", json=CLAUDE, headers={"x-big": "x" * size})
    assert resp.status == status


async def test_a_chunked_body_over_the_limit_is_413_too(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(server={"max_body_bytes": 2048})
    raw = orjson.dumps({**CLAUDE, "messages": [{"role": "user", "content": "x" * 4096}]})

    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the size is only known once read
        yield raw

    for path in ("/v1/chat/completions", "/v1/messages"):
        resp = await proxy.post(path, data=body(), headers={"Content-Type": "application/json"})
        assert resp.status == 413
        assert "request_too_large" in (await resp.text())
    assert fake_upstream.requests == []
