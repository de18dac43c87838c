"""A fast fake Claude upstream: plain aiohttp on uvloop, every answer pre-encoded.

``python -m bench.upstream --port P`` serves:

- ``POST /v1/messages``: the body is read and parsed once (orjson). Without ``"stream": true`` the answer
  is one fixed Claude message (JSON). With it, a Claude SSE stream of N ``text_delta`` events, where
  N = the body's ``max_tokens`` (clamped to 1..100000): the proxy forwards ``max_tokens`` unchanged on
  its chat and Claude routes (and sends a Responses request's ``max_output_tokens`` as ``max_tokens``), so
  the client chooses N without any extra header. Each event goes out in its own
  write (``--events-per-write`` groups them), with no pause between them: one chunk of the chunked
  encoding, framed in advance and written straight to the transport (aiohttp's own write path cost this
  process 4x the CPU at concurrency 64, where it shares a CPU with the load generator and became the
  bottleneck of every target; the bytes on the wire are the same).
- the same, but model ``bench-slow`` (streamed): a held stream. It sends ``message_start``, then a
  ``ping`` every ``--ping-interval`` seconds until ``POST /bench/release`` (or ``--max-hold`` seconds),
  then one delta and the end of the message.
- model ``bench-paced`` (streamed): a paced stream, N deltas (N = ``max_tokens``) one every ``--pace``
  seconds (default 0.05: 20 tokens a second), spread over that interval across streams (``bench/pacer.py``).
- ``GET /bench/held``: how many held streams are open; ``GET /healthz``: ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import orjson
import uvloop
from aiohttp import HttpVersion11, web

from bench.fleet import die_with_parent, pin_self
from bench.pacer import Pacer

SLOW_MODEL = "bench-slow"
PACED_MODEL = "bench-paced"
MAX_DELTAS = 100_000

MESSAGE = orjson.dumps({
    "id": "msg_bench0000000000000000",
    "type": "message",
    "role": "assistant",
    "model": "claude-bench",
    "content": [{"type": "text", "text": "Hello! This is a fixed answer from the benchmark's fake upstream."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 16},
})


def event(payload: dict[str, object]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (str(payload["type"]).encode(), orjson.dumps(payload))


HEAD = event({
    "type": "message_start",
    "message": {"id": "msg_bench0000000000000000", "type": "message", "role": "assistant",
                "model": "claude-bench", "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 1}},
}) + event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}) + event(
    {"type": "ping"}
)
DELTA = event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "token "}})
PING = event({"type": "ping"})
BLOCK_STOP = event({"type": "content_block_stop", "index": 0})
MESSAGE_STOP = event({"type": "message_stop"})


def tail(deltas: int) -> bytes:
    return BLOCK_STOP + event({
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": deltas},
    }) + MESSAGE_STOP


class FakeUpstream:
    def __init__(self, events_per_write: int, ping_interval: float, max_hold: float, pace: float = 0.05) -> None:
        self.group = max(1, events_per_write)
        self.pacer = Pacer(framed(DELTA), pace)
        self.ping_interval = ping_interval
        self.max_hold = max_hold
        self.release = asyncio.Event()
        self.held = 0
        self._tails: dict[int, bytes] = {}
        self._deltas: dict[int, bytes] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=128 * 1024 * 1024)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/bench/release", self.do_release)
        app.router.add_get("/bench/held", self.get_held)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type="application/json")

    async def get_held(self, request: web.Request) -> web.Response:
        stats = {"held": self.held, "paced": self.pacer.open, "late_ticks": self.pacer.late_ticks}
        return web.Response(body=orjson.dumps(stats), content_type="application/json")

    async def do_release(self, request: web.Request) -> web.Response:
        released = self.held
        self.release.set()
        self.release = asyncio.Event()
        return web.Response(body=orjson.dumps({"released": released}), content_type="application/json")

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        if body.get("stream") is not True:
            return web.Response(body=MESSAGE, content_type="application/json", headers={"request-id": "req_bench"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "request-id": "req_bench"})
        await resp.prepare(request)
        if body.get("model") == SLOW_MODEL:
            await resp.write(HEAD)
            await self._hold(resp)
            await resp.write(DELTA)
            await resp.write(tail(1))
        elif body.get("model") == PACED_MODEL and request.transport is not None and request.version >= HttpVersion11:
            await self._paced(request.transport, _clamp(body.get("max_tokens")))
        else:
            deltas = _clamp(body.get("max_tokens"))
            await self._stream_out(resp, request, deltas)
        await resp.write_eof()
        return resp

    async def _stream_out(self, resp: web.StreamResponse, request: web.Request, deltas: int) -> None:
        transport = request.transport
        writer = resp._payload_writer  # (aiohttp's own flow control: StreamResponse.drain is deprecated)
        if transport is None or writer is None:
            return  # the client has gone
        if request.version < HttpVersion11:  # not chunked: aiohttp's own writes
            for piece in [HEAD, *[DELTA] * deltas, tail(deltas)]:
                await resp.write(piece)
            return
        full, rest = divmod(deltas, self.group)
        pieces = [FRAMED_HEAD, *[self._piece(self.group)] * full, *([self._piece(rest)] if rest else [])]
        for piece in [*pieces, self._tail(deltas)]:
            transport.write(piece)
            if transport.get_write_buffer_size() > HIGH_WATER:
                await writer.drain()

    async def _paced(self, transport: asyncio.Transport, deltas: int) -> None:
        transport.write(FRAMED_HEAD)
        await self.pacer.stream(transport.write, transport.is_closing, deltas)
        if not transport.is_closing():
            transport.write(self._tail(deltas))

    async def _hold(self, resp: web.StreamResponse) -> None:
        self.held += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.max_hold
            release = self.release
            while not release.is_set() and loop.time() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(release.wait(), self.ping_interval)
                if not release.is_set():
                    await resp.write(PING)
        finally:
            self.held -= 1

    def _piece(self, count: int) -> bytes:
        """``count`` deltas as one chunk of the chunked encoding."""
        piece = self._deltas.get(count)
        if piece is None:
            piece = self._deltas[count] = framed(DELTA * count)
        return piece

    def _tail(self, deltas: int) -> bytes:
        """The stream's last events as one chunk."""
        data = self._tails.get(deltas)
        if data is None:
            data = self._tails[deltas] = framed(tail(deltas))
        return data


def framed(data: bytes) -> bytes:
    """``data`` as one chunk of the chunked transfer encoding, as aiohttp frames each write."""
    return b"%x\r\n%s\r\n" % (len(data), data)


FRAMED_HEAD = framed(HEAD)
HIGH_WATER = 64 * 1024  # written but not yet sent: past this, wait until the reader has caught up


def _clamp(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        return 1
    return min(max(value, 1), MAX_DELTAS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    parser.add_argument("--events-per-write", type=int, default=1)
    parser.add_argument("--ping-interval", type=float, default=1.0)
    parser.add_argument("--max-hold", type=float, default=60.0)
    parser.add_argument("--pace", type=float, default=0.05, help="seconds between the events of a paced stream")
    args = parser.parse_args(argv)
    die_with_parent()
    pin_self(args.cpu)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    fake = FakeUpstream(args.events_per_write, args.ping_interval, args.max_hold, args.pace)
    web.run_app(fake.app(), host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=4096)


if __name__ == "__main__":
    main()
