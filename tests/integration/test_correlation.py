"""Correlation, as an operator uses it: every answer carries our ``x-request-id`` (the 401, 403 and 429
included) and the upstream's ``request-id`` when one answered; the request's log line has both, and a
stream's line says how it ended."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

import aiohttp
import orjson
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.cli import serve
from translator.config import Settings
from translator.gateway.keys import hash_key

ALICE = "sk-tr-alice-correlation-0123456789"
CLIENT_KEYS.add(ALICE)
KEYS = [{"name": "alice", "hash": hash_key(ALICE), "models": ["claude-*"], "rpm": 1}]
CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 2}}
START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "claude-x", "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 1, "output_tokens": 1}}}
BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
STOP = [{"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"}]
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
OURS = re.compile("[0-9a-f]{16}")


def _sse(*events: dict) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


def request_lines(logged: str, path: str) -> list[dict]:
    lines = [orjson.loads(line) for line in logged.splitlines() if line]
    return [line for line in lines if line["event"] == "request" and line["path"] == path]


async def logged_line(server_log: Callable[[], str], path: str) -> dict:
    """The request's log line, once written (a cut stream's is written when its handler has unwound)."""
    for _ in range(200):
        if lines := request_lines(server_log(), path):
            [line] = lines
            return line
        await asyncio.sleep(0.02)
    raise AssertionError(f"no log line for {path}")


@pytest.fixture
async def gateway(make_proxy):
    return await make_proxy(keys=KEYS, upstream={"api_key": "sk-upstream-secret"})


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({}, CHAT, 401),
    ({"Authorization": f"Bearer {ALICE}"}, {**CHAT, "model": "gpt-4o"}, 403),
])
async def test_refusals_carry_our_request_id(gateway, server_log, headers, body, status) -> None:
    resp = await gateway.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status == status
    assert OURS.fullmatch(resp.headers["x-request-id"])
    [line] = request_lines(server_log(), "/v1/chat/completions")
    assert line["request_id"] == resp.headers["x-request-id"]
    assert line["status"] == status


async def test_a_429_carries_our_request_id(gateway, fake_upstream: FakeUpstream, server_log) -> None:
    fake_upstream.json(MESSAGE)
    first = await gateway.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})
    limited = await gateway.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})
    assert (first.status, limited.status) == (200, 429)
    ids = [first.headers["x-request-id"], limited.headers["x-request-id"]]
    assert all(OURS.fullmatch(i) for i in ids) and ids[0] != ids[1]
    assert [line["request_id"] for line in request_lines(server_log(), "/v1/messages")] == ids


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses", "/healthz", "/nowhere"])
async def test_every_answer_carries_our_request_id(proxy, fake_upstream: FakeUpstream, server_log, path) -> None:
    fake_upstream.json(MESSAGE, headers={"request-id": "req_up_1"})
    responses = {"model": "claude-x", "input": "hi", "store": False}
    body = {"/v1/messages": CLAUDE, "/v1/responses": responses}.get(path, CHAT)
    resp = await proxy.post(path, json=body) if path.startswith("/v1") else await proxy.get(path)
    ours = resp.headers["x-request-id"]
    assert OURS.fullmatch(ours)
    [line] = request_lines(server_log(), path)
    assert line["request_id"] == ours
    if path.startswith("/v1"):
        assert resp.status == 200
        assert resp.headers["request-id"] == "req_up_1"
        assert line["upstream_request_id"] == "req_up_1"


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_an_upstream_error_names_both_ids(make_proxy, fake_upstream: FakeUpstream, server_log, path) -> None:
    proxy = await make_proxy(routing={"max_attempts": 1})
    fake_upstream.json(OVERLOADED, status=529, headers={"request-id": "req_up_529"})
    resp = await proxy.post(path, json=CLAUDE if path == "/v1/messages" else CHAT)
    assert resp.status in (503, 529)
    assert resp.headers["request-id"] == "req_up_529"
    [line] = request_lines(server_log(), path)
    assert (line["request_id"], line["upstream_request_id"]) == (resp.headers["x-request-id"], "req_up_529")


async def test_a_completed_stream_is_logged_completed(proxy, fake_upstream: FakeUpstream, server_log) -> None:
    fake_upstream.sse(_sse(START, BLOCK, DELTA, *STOP), headers={"request-id": "req_up_s"})
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
    line = await logged_line(server_log, "/v1/chat/completions")
    assert (line["status"], line["stream_end"], line["upstream_request_id"]) == (200, "completed", "req_up_s")
    assert line["request_id"] == resp.headers["x-request-id"]
    assert "cancelled" not in line


async def test_a_stream_the_upstream_breaks_after_content_is_logged_so(
    proxy, fake_upstream: FakeUpstream, server_log
) -> None:
    fake_upstream.sse(_sse(START, BLOCK, DELTA, OVERLOADED))
    resp = await proxy.post("/v1/messages", json={**CLAUDE, "stream": True})
    assert (await resp.read()).endswith(_sse(OVERLOADED))
    line = await logged_line(server_log, "/v1/messages")
    assert (line["status"], line["stream_end"], line["stream_error"]) == (200, "upstream_error", "overloaded_error")


async def test_a_client_that_leaves_mid_stream_is_logged_gone(proxy, fake_upstream: FakeUpstream, server_log) -> None:
    head = _sse(START, BLOCK, DELTA)
    fake_upstream.sse(head + _sse(*STOP), chunk_size=len(head), delay=30)
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    await until_content(resp.content)
    resp.close()  # the client goes away
    line = await logged_line(server_log, "/v1/chat/completions")
    assert (line["status"], line["stream_end"], line["cancelled"]) == (499, "client_gone", True)


async def until_content(content: aiohttp.StreamReader) -> None:
    """Reads the stream up to its first text: its head and content went out."""
    received = b""
    while b'"hi"' not in received:
        received += await content.readuntil(b"\n\n")


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_a_502_does_not_name_the_upstream_host_but_the_log_line_does(
    make_proxy, server_log, path: str
) -> None:
    port = _port()  # nothing listens there
    proxy = await make_proxy(upstream={"base_url": f"http://127.0.0.1:{port}"}, routing={"max_attempts": 1})
    resp = await proxy.post(path, json=CLAUDE if path == "/v1/messages" else CHAT)
    assert resp.status == 502
    raw = await resp.read()
    assert b"127.0.0.1" not in raw and str(port).encode() not in raw
    assert b"Cannot connect to host <upstream> " in raw
    [line] = request_lines(server_log(), path)
    assert f"Cannot connect to host 127.0.0.1:{port} " in line["error_detail"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_stream_cut_by_shutdown_is_logged_shutdown(fake_upstream: FakeUpstream, server_log) -> None:
    head = _sse(START, BLOCK, DELTA)
    fake_upstream.sse(head + _sse(*STOP), chunk_size=len(head), delay=30)
    port = _port()
    settings = Settings.model_validate({
        "server": {"port": port, "drain_seconds": 0.1, "shutdown_grace_seconds": 0.2},
        "upstream": {"base_url": str(fake_upstream.server.make_url("")).rstrip("/")},
    })
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    async with aiohttp.ClientSession() as client:
        for _ in range(100):
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz"):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        async with client.post(f"http://127.0.0.1:{port}/v1/messages", json={**CLAUDE, "stream": True}) as resp:
            await until_content(resp.content)
            stop.set()
            assert (await resp.read()).endswith(b'"message":"the proxy is shutting down; retry the request"}}\n\n')
    await asyncio.wait_for(server, 10)
    line = await logged_line(server_log, "/v1/messages")
    assert (line["status"], line["stream_end"], line["error"]) == (200, "shutdown", "shutdown")
    assert "cancelled" not in line
