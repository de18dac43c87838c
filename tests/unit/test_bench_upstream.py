"""The benchmark's fake upstream writes its pre-framed events straight to the transport: the bytes on the
wire must be what aiohttp's own ``StreamResponse.write`` sends, one chunk of the chunked encoding per write
(per event, or per ``--events-per-write`` group), and a plain body to an HTTP/1.0 client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer

from bench.upstream import DELTA, HEAD, FakeUpstream, tail
from translator.sse import SSEDecoder


async def _raw(server: TestServer, version: str, deltas: int) -> bytes:
    body = orjson.dumps({"model": "m", "max_tokens": deltas, "stream": True, "messages": []})
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST /v1/messages HTTP/%s\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (version.encode(), len(body), body))
    async with asyncio.timeout(5):
        raw = await reader.read()  # to the end: the server closes
    writer.close()
    return raw


def _chunks(body: bytes) -> list[bytes]:
    """A chunked body's chunks, in order (the last, empty one ends it)."""
    out = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n"
            return out
        out.append(body[:size])
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


@pytest.mark.parametrize(("group", "deltas", "writes"), [(1, 3, [1, 1, 1]), (2, 5, [2, 2, 1])])
async def test_each_write_is_one_chunk_of_whole_events(
    aiohttp_server: Callable[..., Awaitable[TestServer]], group: int, deltas: int, writes: list[int]
) -> None:
    server = await aiohttp_server(FakeUpstream(group, 1.0, 60.0).app())
    head, _, body = (await _raw(server, "1.1", deltas)).partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head and b"text/event-stream" in head
    assert _chunks(body) == [HEAD, *[DELTA * n for n in writes], tail(deltas)]
    events: list[Any] = SSEDecoder().feed(b"".join(_chunks(body)))
    assert [e.event for e in events] == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
        "content_block_stop", "message_delta", "message_stop"]
    assert orjson.loads(events[-2].data)["usage"] == {"output_tokens": deltas}


async def test_an_http_1_0_client_gets_the_same_events_unchunked(
    aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    server = await aiohttp_server(FakeUpstream(1, 1.0, 60.0).app())
    head, _, body = (await _raw(server, "1.0", 3)).partition(b"\r\n\r\n")
    assert b"chunked" not in head
    assert body == HEAD + DELTA * 3 + tail(3)
