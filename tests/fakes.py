"""A fake Claude upstream for integration tests: a real aiohttp app on 127.0.0.1 that records every
request and answers with scripted replies in the exact wire format (JSON bodies, SSE bytes split into
chunks as given)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

SECRETS_SEEN: set[str] = set()  # every credential an upstream received; the suite checks none was logged


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    peer: tuple[str, int] | None = None  # the connection it came on (the proxy's end of it)

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] | None = None  # streamed bodies: written one by one
    delay: float = 0.0  # between chunks
    end: asyncio.Event | None = None  # a stream's body ends (its last chunk frame) only once this is set
    release: asyncio.Event | None = None  # a stream's last chunk is written only once this is set (holds it open)


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.default: Reply | None = None
        self.cancelled = 0
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    # scripting
    def json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.replies.append(Reply(status, orjson.dumps(payload), headers=headers or {}))

    def sse(
        self,
        data: bytes,
        *,
        chunk_size: int | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        end: asyncio.Event | None = None,
        release: asyncio.Event | None = None,
    ) -> None:
        chunks = [data] if chunk_size is None else [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
        self.replies.append(
            Reply(200, b"", "text/event-stream", headers=headers or {}, chunks=chunks, delay=delay, end=end,
                  release=release)
        )

    def events(self, events: Iterable[dict[str, Any]], **kw: Any) -> None:
        self.sse(b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events), **kw)

    def raw(
        self, status: int, body: bytes, content_type: str = "text/html", headers: dict[str, str] | None = None
    ) -> None:
        self.replies.append(Reply(status, body, content_type, headers=headers or {}))

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        for name in ("x-api-key", "Authorization"):
            if request.headers.get(name):
                SECRETS_SEEN.add(request.headers[name].removeprefix("Bearer "))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            Recorded(request.method, request.path, request.query_string, dict(request.headers), raw, peer)
        )
        reply = self.replies.pop(0) if self.replies else self.default
        if reply is None:
            return web.json_response(
                {"type": "error", "error": {"type": "api_error", "message": "no reply scripted"}}, status=500
            )
        if reply.chunks is None:
            return web.Response(
                status=reply.status, body=reply.body, content_type=reply.content_type, headers=reply.headers
            )
        resp = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type, **reply.headers})
        await resp.prepare(request)
        try:
            for i, chunk in enumerate(reply.chunks):
                if i and reply.delay:
                    await asyncio.sleep(reply.delay)  # between chunks, not after the last
                if i == len(reply.chunks) - 1 and reply.release is not None:
                    await reply.release.wait()
                await resp.write(chunk)
            if reply.end is not None:
                await reply.end.wait()
        except (asyncio.CancelledError, ConnectionResetError):
            self.cancelled += 1
            raise
        await resp.write_eof()
        return resp
