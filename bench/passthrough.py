"""The reference: the least an aiohttp proxy can do on the same path, to compare the real one against.

``python -m bench.passthrough --port P --upstream URL`` serves:

- ``POST /v1/chat/completions``: parses the body (orjson), wraps its messages into a Claude body, sends
  it to ``URL/v1/messages`` with one shared ClientSession; a JSON answer is converted trivially into a
  chat.completion, a stream is relayed chunk by chunk with a trivial per-chunk transformation.
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


def claude_body(req: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "model": req.get("model"),
        "max_tokens": req.get("max_tokens") or 4096,
        "messages": req.get("messages"),
        "tools": req.get("tools"),
        "stream": req.get("stream") is True,
    })


def completion(message: dict[str, Any]) -> bytes:
    text = "".join(b.get("text", "") for b in message.get("content", []))
    return orjson.dumps({
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": message.get("usage"),
    })


async def chat_completions(request: web.Request) -> web.StreamResponse:
    req = orjson.loads(await request.read())
    body = claude_body(req)
    session, url = request.app[SESSION], request.app[UPSTREAM_URL]
    async with session.post(url, data=body, headers=_UPSTREAM_HEADERS) as up:
        if req.get("stream") is not True:
            return web.Response(body=completion(orjson.loads(await up.read())), content_type="application/json")
        return await _relay(request, up, transform=True)


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    session, url = request.app[SESSION], request.app[UPSTREAM_URL]
    async with session.post(url, data=body, headers=_UPSTREAM_HEADERS) as up:
        if up.content_type != "text/event-stream":
            return web.Response(body=await up.read(), status=up.status, content_type="application/json")
        return await _relay(request, up, transform=False)


async def _relay(request: web.Request, up: aiohttp.ClientResponse, *, transform: bool) -> web.StreamResponse:
    resp = web.StreamResponse(headers=_SSE_HEADERS)
    await resp.prepare(request)
    async for chunk in up.content.iter_any():
        await resp.write(chunk.replace(b"event: ", b": ") if transform else chunk)
    if transform:
        await resp.write(b"data: [DONE]\n\n")
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
