"""A fault-injection Claude upstream: a real aiohttp app on 127.0.0.1 that breaks on purpose.

Each request gets one fault, chosen (first match wins) by:
  1. the queue: ``faults.push("reset_mid", "ok")`` scripts the next requests in order;
  2. an ``x-fault`` request header (for tests that talk to the fault upstream directly);
  3. the request body's model name: ``"fault-<name>"`` (``fault-stall_mid``). The proxy sends the model
     upstream on every route, so one proxy serves every fault at once (the soak test relies on it);
  4. ``faults.default`` (``"ok"``).

What a fault does depends on whether the request asked for a stream (``"stream": true`` in its body):

| fault                | streamed request                                  | non-streamed request                      |
|----------------------|---------------------------------------------------|-------------------------------------------|
| ok                   | a complete SSE stream (``STREAM``)                | a message (``MESSAGE``)                   |
| paced                | ``STREAM``, one event per ``pace`` s (healthy)    | ``MESSAGE`` in two halves, ``pace`` apart |
| refused              | use ``refused_url``: a bound port nobody listens on (connection refused)     |
| reset_before_headers | the request is read, then the TCP connection is reset (RST), nothing sent    |
| stall_before_headers | the request is read, then nothing, until the caller goes away                |
| html_502             | 502 ``text/html`` (a load balancer's page)                                   |
| invalid_json         | 200 ``application/json`` whose body is not JSON                              |
| not_sse              | 200 ``text/event-stream`` whose bytes are not SSE (an HTML page, NUL, 0xFF)  |
| wrong_shape          | well-framed events, valid JSON, wrong field types | a JSON object that is no Claude message   |
| wrong_shape_mid      | ``HEAD`` events, the text block's stop, then a    | a message whose second block is that      |
|                      | tool_use block without id or name, the rest clean | tool_use block                            |
| error_first          | 200, then an ``error`` event (overloaded_error)   | 529 overloaded_error                      |
| reset_mid            | ``HEAD`` events, then a reset                     | half the body (Content-Length set), reset |
| stall_mid            | ``HEAD`` events, then silence                     | half the body, then silence               |
| no_message_stop      | every event but ``message_stop``, clean end       | half the body, clean close (FIN)          |
| drip                 | ``STREAM`` a byte at a time, ``drip_delay`` apart | ``MESSAGE`` the same way                  |
| trickle              | ``HEAD``, then a text delta that never ends: a    | a JSON head, then the same                |
|                      | byte per ``trickle_delay`` (no read timeout fires,|                                           |
|                      | no event ever completes)                          |                                           |
| huge                 | a valid stream of ``huge_bytes`` of text          | a valid message of that size              |
|                      | (1 MiB deltas)                                    |                                           |

``hold``: an ``asyncio.Event`` or None (the default); while it is unset, ``paced`` answers wait before their last
part, so that many of them are under way together however fast or slow the machine is.

Counters: ``requests`` (per fault), ``total``, ``active`` (handlers running now), ``peak``, ``completed`` and
``cancelled`` (handlers the caller abandoned: their task was cancelled or their write found the connection
gone; a fault's own reset does not count). ``await faults.wait_cancelled(n)`` waits for the count.

Use ``async with FaultUpstream() as faults:`` or the ``fault_upstream`` fixture.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

FAULTS = (
    "ok",
    "paced",
    "refused",
    "reset_before_headers",
    "stall_before_headers",
    "html_502",
    "invalid_json",
    "not_sse",
    "wrong_shape",
    "wrong_shape_mid",
    "error_first",
    "reset_mid",
    "stall_mid",
    "no_message_stop",
    "drip",
    "trickle",
    "huge",
)
MODEL_PREFIX = "fault-"

MESSAGE: dict[str, Any] = {
    "id": "msg_f",
    "type": "message",
    "role": "assistant",
    "model": "claude-f",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 2},
}


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


def text_delta(text: str) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


MESSAGE_START = {"type": "message_start",
                 "message": {**MESSAGE, "content": [], "stop_reason": None, "usage": {"input_tokens": 3,
                                                                                      "output_tokens": 1}}}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
BLOCK_STOP = {"type": "content_block_stop", "index": 0}
MESSAGE_DELTA = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                 "usage": {"output_tokens": 2}}
MESSAGE_STOP = {"type": "message_stop"}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

HEAD = sse(MESSAGE_START, TEXT_START, text_delta("Hel"))  # what a broken stream sends before it breaks
STREAM = HEAD + sse(text_delta("lo"), BLOCK_STOP, MESSAGE_DELTA, MESSAGE_STOP)
NO_STOP = HEAD + sse(text_delta("lo"), BLOCK_STOP, MESSAGE_DELTA)
MESSAGE_BYTES = orjson.dumps(MESSAGE)
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"
NOT_JSON = b'{"id": "msg_f", "type": "message", "content": [{"type": "text", "text": "Hel'
NOT_SSE = b"<!DOCTYPE html>\r\n<html><body>maintenance</body></html>\r\n\x00\xff\xfe\x80 garbage"
# Valid JSON, framed as Claude would frame it, with the wrong types where a converter reaches in.
WRONG_STREAM = sse(
    MESSAGE_START,
    TEXT_START,
    {"type": "content_block_delta", "index": 0, "delta": "Hel"},
    BLOCK_STOP,
    {"type": "message_delta", "delta": "end_turn", "usage": ["output_tokens", 2]},
    MESSAGE_STOP,
)
WRONG_MESSAGE = orjson.dumps({"id": "msg_f", "type": "message", "content": "Hello", "usage": "none"})
# Broken after content: a second block that lacks the fields a converter needs (a tool call's id and name).
NAMELESS_TOOL = {"type": "tool_use", "input": {}}
WRONG_MID_STREAM = HEAD + sse(
    BLOCK_STOP,
    {"type": "content_block_start", "index": 1, "content_block": NAMELESS_TOOL},
    {"type": "content_block_stop", "index": 1},
    {**MESSAGE_DELTA, "delta": {"stop_reason": "tool_use", "stop_sequence": None}},
    MESSAGE_STOP,
)
WRONG_MID_MESSAGE = orjson.dumps({**MESSAGE, "content": [{"type": "text", "text": "Hel"}, NAMELESS_TOOL],
                                  "stop_reason": "tool_use"})
TRICKLE_JSON_HEAD = b'{"id": "msg_f", "type": "message", "role": "assistant", "content": [{"type": "text", "text": "'
TRICKLE_SSE_HEAD = HEAD + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,' \
                          b'"delta":{"type":"text_delta","text":"'

_huge_cache: dict[tuple[int, bool], bytes] = {}


HUGE_DELTA = 1024 * 1024  # a huge stream's text comes in deltas of 1 MiB (one SSE event each)


def huge_text(size: int) -> str:
    return "x" * size


def huge_body(size: int, *, stream: bool) -> bytes:
    """A valid message (or stream) carrying ``size`` bytes of text; built once per size."""
    key = (size, stream)
    if key not in _huge_cache:
        text = huge_text(size)
        if stream:
            deltas = [text_delta(text[i : i + HUGE_DELTA]) for i in range(0, size, HUGE_DELTA)]
            _huge_cache[key] = sse(MESSAGE_START, TEXT_START, *deltas, BLOCK_STOP, MESSAGE_DELTA, MESSAGE_STOP)
        else:
            _huge_cache[key] = orjson.dumps({**MESSAGE, "content": [{"type": "text", "text": text}]})
    return _huge_cache[key]


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP RST (SO_LINGER 0), not an orderly FIN."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _fin(request: web.Request) -> None:
    transport = request.transport
    assert transport is not None
    transport.close()


class FaultUpstream:
    def __init__(
        self,
        *,
        drip_delay: float = 0.001,
        trickle_delay: float = 0.1,
        stall_seconds: float = 3600.0,
        huge_bytes: int = 20 * 1024 * 1024,
        mid_pause: float = 0.05,
        pace: float = 0.05,
        keep_alive: bool = True,
    ) -> None:
        self.drip_delay = drip_delay
        self.trickle_delay = trickle_delay
        self.stall_seconds = stall_seconds
        self.huge_bytes = huge_bytes
        self.mid_pause = mid_pause  # after the HEAD events, before a reset: lets them reach the client first
        self.pace = pace
        self.keep_alive = keep_alive  # False: every answer says Connection: close (no idle pooled connections)
        self.hold: asyncio.Event | None = None  # unset: paced answers wait before their last part
        self.queue: list[str] = []
        self.default = "ok"
        self.requests: Counter[str] = Counter()
        self.total = 0
        self.active = 0
        self.peak = 0  # most handlers running at once
        self.completed = 0
        self.cancelled = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self._refused_sock: socket.socket | None = None
        self._cancel_event = asyncio.Event()
        self.url = ""
        self.refused_url = ""

    # --- life cycle ---

    async def start(self) -> FaultUpstream:
        # handler_cancellation: a caller that goes away cancels the handler, so stalls end and are counted
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        # A backlog above the fault matrix's concurrency (all three routes' cases at once, each on a new
        # connection in the leak run): with aiohttp's 128 a SYN past it is dropped, retried 1 s later, and the
        # proxy's 0.5 s connect timeout fails a case that should succeed.
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        # Bound, never listening: connecting is refused, and no other process can take the port meanwhile.
        self._refused_sock = socket.socket()
        self._refused_sock.bind(("127.0.0.1", 0))
        self.refused_url = f"http://127.0.0.1:{self._refused_sock.getsockname()[1]}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._refused_sock is not None:
            self._refused_sock.close()
            self._refused_sock = None

    async def __aenter__(self) -> FaultUpstream:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- scripting and inspection ---

    def push(self, *faults: str) -> None:
        for fault in faults:
            if fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}")
        self.queue.extend(faults)

    @staticmethod
    def model(fault: str) -> str:
        """The model name that selects ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        return MODEL_PREFIX + fault

    async def wait_cancelled(self, n: int, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while self.cancelled < n:
                self._cancel_event.clear()
                await self._cancel_event.wait()

    async def wait_idle(self, timeout: float = 2.0) -> None:
        """Until no handler runs (the proxy dropped every stalled connection)."""
        async with asyncio.timeout(timeout):
            while self.active:
                await asyncio.sleep(0.01)

    # --- the handler ---

    def _choose(self, request: web.Request, raw: bytes) -> tuple[str, bool]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        body = body if isinstance(body, dict) else {}
        stream = body.get("stream") is True
        if self.queue:
            return self.queue.pop(0), stream
        header = request.headers.get("x-fault")
        if header in FAULTS:
            return header, stream
        model = body.get("model")
        if isinstance(model, str) and model.startswith(MODEL_PREFIX) and model[len(MODEL_PREFIX):] in FAULTS:
            return model[len(MODEL_PREFIX):], stream
        return self.default, stream

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        fault, stream = self._choose(request, raw)
        self.requests[fault] += 1
        self.total += 1
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            resp: web.StreamResponse = await getattr(self, "_" + fault)(request, stream)
            if not self.keep_alive:
                resp.force_close()  # an answer not yet prepared; the prepared ones did it themselves
        except (asyncio.CancelledError, ConnectionResetError):
            # The caller went away: the handler was cancelled, or a write found the connection gone.
            self.cancelled += 1
            self._cancel_event.set()
            raise
        finally:
            self.active -= 1
        self.completed += 1
        return resp

    async def _stalled(self) -> None:
        await asyncio.sleep(self.stall_seconds)

    async def _prepared(self, request: web.Request, content_type: str, **kw: Any) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type}, **kw)
        if not self.keep_alive:
            resp.force_close()  # before the headers go, so they say Connection: close
        await resp.prepare(request)
        return resp

    async def _ok(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            return web.Response(body=STREAM, content_type="text/event-stream")
        return web.Response(body=MESSAGE_BYTES, content_type="application/json")

    async def _paced(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            resp = await self._prepared(request, "text/event-stream")
            parts = [event + b"\n\n" for event in STREAM.split(b"\n\n")[:-1]]
        else:
            resp = await self._prepared(request, "application/json")
            parts = [MESSAGE_BYTES[: len(MESSAGE_BYTES) // 2], MESSAGE_BYTES[len(MESSAGE_BYTES) // 2 :]]
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(self.pace)
            if i == len(parts) - 1 and self.hold is not None:
                await self.hold.wait()
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def _refused(self, request: web.Request, stream: bool) -> web.StreamResponse:
        body = {"type": "error", "error": {"type": "api_error", "message": "refused: use refused_url"}}
        return web.json_response(body, status=500)

    async def _reset_before_headers(self, request: web.Request, stream: bool) -> web.StreamResponse:
        _reset(request)
        return web.Response()  # never written: the connection is gone (aiohttp drops it quietly)

    async def _stall_before_headers(self, request: web.Request, stream: bool) -> web.StreamResponse:
        await self._stalled()
        return web.Response()

    async def _html_502(self, request: web.Request, stream: bool) -> web.StreamResponse:
        return web.Response(status=502, body=HTML_502, content_type="text/html")

    async def _invalid_json(self, request: web.Request, stream: bool) -> web.StreamResponse:
        return web.Response(body=NOT_JSON, content_type="application/json")

    async def _not_sse(self, request: web.Request, stream: bool) -> web.StreamResponse:
        return web.Response(body=NOT_SSE, content_type="text/event-stream")

    async def _wrong_shape(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            return web.Response(body=WRONG_STREAM, content_type="text/event-stream")
        return web.Response(body=WRONG_MESSAGE, content_type="application/json")

    async def _wrong_shape_mid(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            return web.Response(body=WRONG_MID_STREAM, content_type="text/event-stream")
        return web.Response(body=WRONG_MID_MESSAGE, content_type="application/json")

    async def _error_first(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            return web.Response(body=sse(OVERLOADED), content_type="text/event-stream")
        return web.json_response(OVERLOADED, status=529)

    async def _half(self, request: web.Request, stream: bool) -> web.StreamResponse:
        """Headers and the first part of the answer; the caller decides how it ends."""
        if stream:
            resp = await self._prepared(request, "text/event-stream")
            await resp.write(HEAD)
        else:
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.content_length = len(MESSAGE_BYTES)
            if not self.keep_alive:
                resp.force_close()
            await resp.prepare(request)
            await resp.write(MESSAGE_BYTES[: len(MESSAGE_BYTES) // 2])
        await asyncio.sleep(self.mid_pause)
        return resp

    async def _reset_mid(self, request: web.Request, stream: bool) -> web.StreamResponse:
        resp = await self._half(request, stream)
        _reset(request)
        return resp

    async def _stall_mid(self, request: web.Request, stream: bool) -> web.StreamResponse:
        resp = await self._half(request, stream)
        await self._stalled()
        return resp

    async def _no_message_stop(self, request: web.Request, stream: bool) -> web.StreamResponse:
        if stream:
            return web.Response(body=NO_STOP, content_type="text/event-stream")
        resp = await self._half(request, stream)
        _fin(request)
        return resp

    async def _drip(self, request: web.Request, stream: bool) -> web.StreamResponse:
        body = STREAM if stream else MESSAGE_BYTES
        resp = await self._prepared(request, "text/event-stream" if stream else "application/json")
        for i in range(len(body)):
            await resp.write(body[i : i + 1])
            await asyncio.sleep(self.drip_delay)
        await resp.write_eof()
        return resp

    async def _trickle(self, request: web.Request, stream: bool) -> web.StreamResponse:
        resp = await self._prepared(request, "text/event-stream" if stream else "application/json")
        await resp.write(TRICKLE_SSE_HEAD if stream else TRICKLE_JSON_HEAD)
        while True:  # until the caller goes away
            await asyncio.sleep(self.trickle_delay)
            await resp.write(b"x")

    async def _huge(self, request: web.Request, stream: bool) -> web.StreamResponse:
        body = huge_body(self.huge_bytes, stream=stream)
        return web.Response(body=body, content_type="text/event-stream" if stream else "application/json")


@pytest.fixture(name="fault_upstream")
async def fault_upstream_fixture() -> AsyncIterator[FaultUpstream]:
    """Import ``fault_upstream_fixture`` into a test module to use the ``fault_upstream`` fixture."""
    async with FaultUpstream() as faults:
        yield faults
