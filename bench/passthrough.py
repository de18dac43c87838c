"""The reference: the least an aiohttp proxy can do on the same path, to compare the real one against.

``python -m bench.passthrough --port P --upstream URL`` serves:

- ``POST /v1/chat/completions``: parses the body (orjson), wraps its messages into a Claude body, sends
  it to ``URL/v1/messages`` with one shared ClientSession; a JSON answer is converted trivially into a
  chat.completion, a stream is relayed chunk by chunk with a trivial per-chunk transformation.
- ``POST /v1/responses``: the same, with the Responses body's ``input`` (a string: one user message) as the
  messages and ``max_output_tokens`` as ``max_tokens``; a JSON answer becomes a trivial response object, a
  stream ends with a ``response.completed`` event.
- ``POST /v1/messages``: a plain relay of the client's bytes and the upstream's bytes.
- ``GET /healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

from bench.fleet import die_with_parent, pin_self

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM_URL = web.AppKey("upstream_url", str)
_UPSTREAM_HEADERS = {"Content-Type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": "bench"}
_SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def claude_body(req: dict[str, Any], messages: object, max_tokens: object) -> bytes:
    return orjson.dumps({
        "model": req.get("model"),
        "max_tokens": max_tokens or 4096,
        "messages": messages,
        "tools": req.get("tools"),
        "stream": req.get("stream") is True,
    })


def _text(message: dict[str, Any]) -> str:
    return "".join(b.get("text", "") for b in message.get("content", []))


def completion(message: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": _text(message)}, "finish_reason": "stop"}],
        "usage": message.get("usage"),
    })


def response(message: dict[str, Any]) -> bytes:
    """A Responses API response object, its usage last (as the proxy's, which the benchmark checks for)."""
    usage = message.get("usage") or {}
    tokens = {"input_tokens": usage.get("input_tokens", 0), "output_tokens": usage.get("output_tokens", 0)}
    return orjson.dumps({
        "id": message.get("id"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": message.get("model"),
        "output": [{"type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": _text(message), "annotations": []}]}],
        "usage": {**tokens, "total_tokens": tokens["input_tokens"] + tokens["output_tokens"]},
    })


async def chat_completions(request: web.Request) -> web.StreamResponse:
    req = orjson.loads(await request.read())
    body = claude_body(req, req.get("messages"), req.get("max_tokens"))
    session, url = request.app[SESSION], request.app[UPSTREAM_URL]
    async with session.post(url, data=body, headers=_UPSTREAM_HEADERS) as up:
        if req.get("stream") is not True:
            return web.Response(body=completion(orjson.loads(await up.read())), content_type="application/json")
        return await _relay(request, up, (b"event: ", b": "), b"data: [DONE]\n\n")


def responses_claude_body(req: dict[str, Any]) -> bytes:
    """``input`` as the messages (a string: one user message), ``max_output_tokens`` as ``max_tokens``."""
    given = req.get("input")
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else given
    return claude_body(req, messages, req.get("max_output_tokens"))


async def responses(request: web.Request) -> web.StreamResponse:
    req = orjson.loads(await request.read())
    body = responses_claude_body(req)
    session, url = request.app[SESSION], request.app[UPSTREAM_URL]
    async with session.post(url, data=body, headers=_UPSTREAM_HEADERS) as up:
        if req.get("stream") is not True:
            return web.Response(body=response(orjson.loads(await up.read())), content_type="application/json")
        return await _relay(request, up, (b"event: content_block_delta", b"event: response.output_text.delta"),
                            completed_event())


def completed_event() -> bytes:
    """The stream's last event: the response, without the text (this relay does not read the events)."""
    done = response({"id": "resp_passthrough", "content": []})
    return b"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":%s}\n\n" % done


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session, url = request.app[SESSION], request.app[UPSTREAM_URL]
    async with session.post(url, data=body, headers=_UPSTREAM_HEADERS) as up:
        if up.content_type != "text/event-stream":
            return web.Response(body=await up.read(), status=up.status, content_type="application/json")
        return await _relay(request, up)


async def _relay(request: web.Request, up: aiohttp.ClientResponse, rewrite: tuple[bytes, bytes] | None = None,
                 last: bytes = b"") -> web.StreamResponse:
    """The upstream's stream, chunk by chunk, each with ``rewrite``'s ``bytes.replace`` (if any); then ``last``."""
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    async for chunk in up.content.iter_any():
        await resp.write(chunk.replace(*rewrite) if rewrite else chunk)
    if last:
        await resp.write(last)
    await resp.write_eof()
    return resp


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def create_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[UPSTREAM_URL] = upstream.rstrip("/") + "/v1/messages"
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/responses", responses)
    app.router.add_get("/healthz", healthz)
    return app


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[SESSION].close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.passthrough", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL of the Claude upstream")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args(argv)
    die_with_parent()
    pin_self(args.cpu)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(create_app(args.upstream), host="127.0.0.1", port=args.port, access_log=None, print=None,
                handler_cancellation=True)


if __name__ == "__main__":
    main()
