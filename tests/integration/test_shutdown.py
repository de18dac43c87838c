"""Graceful shutdown: /readyz turns unready first, in-flight requests finish within the grace period, and
streams still open after it end with an error event instead of a cut connection."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from tests.fakes import FakeUpstream, Reply
from translator.cli import serve
from translator.config import Settings

START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "claude-x", "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 1, "output_tokens": 1}}}
BLOCK = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}
STOP = [{"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"}]


def _sse(*events: dict) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _until(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_drain_then_grace_then_farewell(fake_upstream: FakeUpstream) -> None:
    """Each phase is waited for by what marks it (the upstream has the requests, /readyz says draining, the
    listener refuses connections), not by sleeping; the phases are long (drain 1 s, grace 3 s) so that a test
    process paused for a second still sees each one."""
    head = _sse(START, BLOCK, DELTA)
    # ends 1.5 s after it started: after the drain (in flight when the grace begins), well within the grace
    fake_upstream.sse(head + _sse(*STOP), chunk_size=len(head), delay=1.5)
    fake_upstream.sse(head + _sse(*STOP), chunk_size=len(head), delay=30)  # does not
    fake_upstream.sse(head + _sse(*STOP), chunk_size=len(head), delay=30)
    # a non-streamed answer that takes longer than the grace period
    fake_upstream.replies.append(Reply(200, b"", "application/json", chunks=[b'{"id": "m",', b'"x": 1}'], delay=30))
    port = _port()
    settings = Settings.model_validate({
        "server": {"port": port, "drain_seconds": 1.0, "shutdown_grace_seconds": 3.0},
        "upstream": {"base_url": str(fake_upstream.server.make_url("")).rstrip("/")},
    })
    stop = asyncio.Event()
    server = asyncio.create_task(serve(settings, stop=stop))
    base = f"http://127.0.0.1:{port}"

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionError:  # refused; or reset: it was queued when the listener closed
            return False
        writer.close()
        return True

    async def refusing() -> bool:
        return not await listening()

    async with aiohttp.ClientSession() as client:
        await _until(listening, "the proxy to listen")
        async with client.get(base + "/readyz") as resp:
            assert resp.status == 200
        body = {"model": "claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        quick = await client.post(base + "/v1/chat/completions", json=body)
        slow_openai = await client.post(base + "/v1/chat/completions", json=body)
        slow_claude = await client.post(base + "/v1/messages", json={**body, "max_tokens": 5})
        slow_json = asyncio.create_task(client.post(base + "/v1/messages", json={**body, "stream": False,
                                                                                 "max_tokens": 5}))

        async def all_four_upstream() -> bool:
            return len(fake_upstream.requests) == 4

        await _until(all_four_upstream, "the four requests to reach the upstream")
        stop.set()

        async def draining() -> bool:
            async with client.get(base + "/readyz") as resp:
                return resp.status != 200

        await _until(draining, "/readyz to turn unready")
        async with client.get(base + "/readyz") as resp:  # draining, still answering
            assert resp.status == 503
            assert await resp.json() == {"status": "draining"}
        await _until(refusing, "the drain to end")  # the drain is over: the listener is closed
        async with client.post(base + "/v1/messages", json={**body, "max_tokens": 5}) as late:  # kept-alive
            assert late.status == 503
            assert (await late.json())["error"]["message"] == "the proxy is shutting down; retry the request"
        cut = await slow_json
        assert cut.status == 503  # its grace ran out before it could answer: a 503, not a cut connection
        assert await cut.json() == {"type": "error", "error": {
            "type": "overloaded_error", "message": "the proxy is shutting down; retry the request"}}
        quick_body = await quick.read()
        openai_body = await slow_openai.read()
        claude_body = await slow_claude.read()
        await asyncio.wait_for(server, 10)
    assert quick_body.endswith(b"data: [DONE]\n\n")
    last = orjson.loads(openai_body.rstrip().split(b"\n")[-1][6:])
    assert last == {"error": {"message": "the proxy is shutting down; retry the request", "type": "server_error",
                              "param": None, "code": "overloaded"}}
    assert claude_body.endswith(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"the proxy is shutting down; retry the request"}}\n\n'
    )

    async def three_cancelled() -> bool:
        return fake_upstream.cancelled >= 3

    await _until(three_cancelled, "the cut ones' upstream requests to be cancelled")
    assert fake_upstream.cancelled == 3  # the upstream requests of the cut ones were cancelled too
