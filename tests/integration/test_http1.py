"""translator.http1 against raw TCP (and TLS) servers that write exact bytes: framing, keep-alive, errors,
timeouts, backpressure, content encodings, what goes on the wire, and that nothing is left open."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from translator import http1, upstream
from translator.http1 import BadResponse, ConnectFailed, Origin, ServerDisconnected, UpstreamTimedOut

TLS = Path(__file__).parent.parent / "fixtures" / "tls"
Then = Callable[[asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1. Each connection answers its requests with ``responses`` in turn (each
    written whole), then runs ``then`` (by default, waits for the client to close); or ``handler`` runs
    instead. Counts connections and keeps each request as received."""

    def __init__(
        self,
        *responses: bytes,
        then: Then | None = None,
        handler: Callable[[RawServer, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.responses, self.then, self.handler, self.tls = responses, then, handler, tls
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self.server.wait_closed()

    def origin(self, scheme: str = "http", host: str = "127.0.0.1", **kw: float | ssl.SSLContext) -> Origin:
        timeouts = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0}
        return Origin(f"{scheme}://{host}:{self.port}/base", **{**timeouts, **kw})  # type: ignore[arg-type]

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if self.handler is not None:
                await self.handler(self, reader, writer)
                return
            for response in self.responses:
                await self.read_request(reader)
                writer.write(response)
                await writer.drain()
            await (self.then(writer) if self.then is not None else reader.read())
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # (cancelled: the test is over)
        finally:
            writer.close()
            self._handlers.discard(task)


def ok(body: bytes, *headers: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(h + b"\r\n" for h in headers),
                                                                  body)


def chunked(*chunks: bytes, headers: bytes = b"") -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    fields = headers + b"\r\n" if headers else b""
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n%s0\r\n\r\n" % (fields, framed)


async def get(origin: Origin, path: str = "/x", body: bytes | None = None) -> tuple[http1.Response, bytes]:
    resp = await origin.request("POST" if body is not None else "GET", path, {}, body)
    data = await resp.content.read_all()
    resp.release()
    return resp, data


# --- framing ---


async def test_content_length_body_and_its_head(origins: list[Origin]) -> None:
    async with RawServer(ok(b'{"a":1}', b"Content-Type: application/json; charset=utf-8",
                                      b"request-id: r1", b"X-Twice: 1", b"x-twice: 2")) as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
    assert (resp.status, data, resp.content_type) == (200, b'{"a":1}', "application/json")
    assert resp.headers["Request-Id"] == "r1" and resp.headers.getall("x-twice") == ["1", "2"]


async def test_chunked_body_split_at_every_byte(origins: list[Origin]) -> None:
    wire = chunked(b"event: a\ndata: 1\n\n", b"event: b\ndata: 2\n\n", headers=b"Content-Type: text/event-stream")

    async def trickle(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        for i in range(len(wire)):
            writer.write(wire[i:i + 1])
            await writer.drain()
            await asyncio.sleep(0)
        await reader.read()

    async with RawServer(handler=trickle) as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
    assert (data, resp.content_type) == (b"event: a\ndata: 1\n\nevent: b\ndata: 2\n\n", "text/event-stream")
    assert len(origin._idle) == 1  # read to its end: kept


async def test_a_read_takes_everything_that_has_come(origins: list[Origin]) -> None:
    gate = asyncio.Event()

    async def two_parts(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n")
        await gate.wait()
        writer.write(b"1\r\nf\r\n0\r\n\r\n")
        await reader.read()

    async with RawServer(handler=two_parts) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        await asyncio.sleep(0.05)
        assert await resp.content.read() == b"abcde"  # two chunks, one read
        gate.set()
        assert await resp.content.read() == b"f"
        assert await resp.content.read() == b"" and resp.content.is_eof()
        resp.release()


async def test_body_ended_by_the_connection_close(origins: list[Origin]) -> None:
    async def close_delimited(writer: asyncio.StreamWriter) -> None:
        writer.write(b"tail")
        writer.close()

    async with RawServer(b"HTTP/1.1 200 OK\r\n\r\nhead-", then=close_delimited) as server:
        origins.append(origin := server.origin())
        _, data = await get(origin)
    assert data == b"head-tail" and not origin._idle


async def test_an_interim_1xx_answer_is_skipped(origins: list[Origin]) -> None:
    async with RawServer(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"real")) as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
    assert (resp.status, data) == (200, b"real")


async def test_an_empty_204(origins: list[Origin]) -> None:
    async with RawServer(b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"next")) as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
        assert (resp.status, data) == (204, b"")
        assert (await get(origin))[1] == b"next"
    assert server.connections == 1


# --- keep-alive ---


async def test_a_connection_is_kept_and_reused(origins: list[Origin]) -> None:
    async with RawServer(ok(b"one"), chunked(b"two"), ok(b"three")) as server:
        origins.append(origin := server.origin())
        assert [(await get(origin))[1] for _ in range(3)] == [b"one", b"two", b"three"]
    assert server.connections == 1


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
])
async def test_no_keep_alive_when_the_server_says_so(origins: list[Origin], response: bytes) -> None:
    async with RawServer(response) as server:
        origins.append(origin := server.origin())
        assert (await get(origin))[1] == b"hi"
        assert (await get(origin))[1] == b"hi"
    assert server.connections == 2


async def test_a_body_not_read_to_its_end_closes_the_connection(origins: list[Origin]) -> None:
    async with RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf") as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        assert await resp.content.read() == b"half"
        resp.release()
        assert not origin._idle and not origin._open


async def test_bytes_after_the_answer_make_the_connection_unusable(origins: list[Origin]) -> None:
    async with RawServer(ok(b"hi") + b"HTTP/1.1 200 OK\r\n\r\nextra", ok(b"next")) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        assert await resp.content.read_all() == b"hi"  # the answer itself is whole
        resp.release()
        assert not origin._idle
        assert (await get(origin))[1] == b"hi"  # a new connection (its handler starts again)
    assert server.connections == 2


async def test_bytes_on_an_idle_connection_close_it(origins: list[Origin]) -> None:
    async def unsolicited(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
        await asyncio.sleep(1)

    async with RawServer(ok(b"hi"), then=unsolicited) as server:
        origins.append(origin := server.origin())
        assert (await get(origin))[1] == b"hi"
        await asyncio.sleep(0.2)
        assert origin._idle[0].lost and not origin._open
        assert (await get(origin))[1] == b"hi"  # not "stale": a new connection
    assert server.connections == 2


async def test_an_idle_connection_the_server_closed_is_not_used(origins: list[Origin]) -> None:
    async def close(writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with RawServer(ok(b"hi"), then=close) as server:
        origins.append(origin := server.origin())
        assert (await get(origin))[1] == b"hi"
        await asyncio.sleep(0.05)  # the FIN arrives
        assert (await get(origin))[1] == b"hi"
    assert server.connections == 2


async def test_idle_connections_are_closed_after_keepalive(origins: list[Origin]) -> None:
    async with RawServer(ok(b"a")) as server:
        origins.append(origin := server.origin(keepalive=0.1))
        assert [data for _, data in await asyncio.gather(get(origin), get(origin))] == [b"a", b"a"]
        assert len(origin._idle) == 2 and len(origin._open) == 2
        await asyncio.sleep(0.3)
        assert not origin._idle and not origin._open


# --- broken answers ---


@pytest.mark.parametrize(("wire", "error"), [
    (b"NOT HTTP\r\n\r\n", BadResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi", BadResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nhi", BadResponse),
    (b"", ServerDisconnected),
])
async def test_a_broken_head_fails_the_request(origins: list[Origin], wire: bytes, error: type[Exception]) -> None:
    async def write_and_close(writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with RawServer(wire, then=write_and_close) as server:
        origins.append(origin := server.origin())
        with pytest.raises(error):
            await origin.request("GET", "/", {})
        assert not origin._open


@pytest.mark.parametrize(("wire", "error"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n", BadResponse),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", ServerDisconnected),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", ServerDisconnected),
])
async def test_a_broken_body_fails_its_read(origins: list[Origin], wire: bytes, error: type[Exception]) -> None:
    async def write_and_close(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.close()

    async with RawServer(wire, then=write_and_close) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        with pytest.raises(error):
            await resp.content.read_all()
        resp.release()
        assert not origin._open and not origin._idle


async def test_a_reset_before_the_head_is_a_disconnect(origins: list[Origin]) -> None:
    async def reset(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.transport.abort()

    async with RawServer(handler=reset) as server:
        origins.append(origin := server.origin())
        with pytest.raises(ServerDisconnected):
            await origin.request("POST", "/", {}, b"{}")


@pytest.fixture
async def blackhole() -> AsyncIterator[tuple[str, int]]:
    """An address that neither connects nor refuses: a listener whose accept queue is full (its SYNs are
    dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = []
    for _ in range(3):  # fill its queue
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        queued.append(filler)
    await asyncio.sleep(0.1)
    yield listener.getsockname()
    for sock in [listener, *queued]:
        sock.close()


async def test_an_address_that_does_not_answer_is_passed_over(
    origins: list[Origin], monkeypatch: pytest.MonkeyPatch, blackhole: tuple[str, int]
) -> None:
    """Happy Eyeballs: the host's first address does not answer; the second is tried 0.25 s later, well
    within the connect timeout."""
    loop = asyncio.get_running_loop()
    async with RawServer(ok(b"hi")) as server:
        async def addresses(host: str, port: int, **kw: object) -> list[tuple[object, ...]]:
            assert (host, port) == ("upstream.test", server.port)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", blackhole),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        monkeypatch.setattr(loop, "getaddrinfo", addresses)
        origins.append(origin := server.origin(host="upstream.test", connect_timeout=3.0))
        started = loop.time()
        resp, data = await get(origin)
        assert (resp.status, data) == (200, b"hi")
        assert 0.2 < loop.time() - started < 1.5  # the first address was tried, then passed over
        assert server.requests[0].startswith(b"GET /base/x HTTP/1.1\r\nHost: upstream.test:%d\r\n" % server.port)


@pytest.mark.parametrize(("connect", "total", "message"), [
    (0.3, 5.0, r"no connection to 127\.0\.0\.1:\d+ within 0\.3 s"),
    (5.0, 0.3, r"no connection to 127\.0\.0\.1:\d+ within"),  # the total timeout counts connecting
])
async def test_connecting_is_bounded_by_both_timeouts(
    origins: list[Origin], blackhole: tuple[str, int], connect: float, total: float, message: str
) -> None:
    origin = Origin(f"http://127.0.0.1:{blackhole[1]}", connect_timeout=connect, read_timeout=5, total_timeout=total)
    origins.append(origin)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimedOut, match=message):
        await origin.request("GET", "/", {})
    assert loop.time() - started < 1.0
    assert not origin._open


async def test_an_error_answer_is_read_within_bounds(origins: list[Origin]) -> None:
    """upstream.status_error reads at most about MAX_ERROR_BODY of an error page: the rest is never read,
    and the connection is closed rather than drained."""
    page = b"<html>" + b"x" * (4 * 1024 * 1024)
    wire = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
    async with RawServer(wire) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("POST", "/v1/messages", {}, b"{}")
        err = await upstream.status_error(resp)
        resp.release()
        assert not origin._idle and not origin._open
    assert err.status == 502
    assert str(err) == "upstream answered HTTP 502 (text/html): <html>" + "x" * 194


async def test_a_refused_connection(origins: list[Origin]) -> None:
    async with RawServer() as server:
        port = server.port
    origins.append(origin := Origin(f"http://127.0.0.1:{port}", connect_timeout=1, read_timeout=1, total_timeout=1))
    with pytest.raises(ConnectFailed, match=f"cannot connect to 127.0.0.1:{port}"):
        await origin.request("GET", "/", {})


# --- timeouts ---


async def test_read_timeout_waiting_for_the_head(origins: list[Origin]) -> None:
    async with RawServer() as server:
        origins.append(origin := server.origin(read_timeout=0.1))
        with pytest.raises(UpstreamTimedOut, match=r"nothing read for 0\.1 s"):
            await origin.request("GET", "/", {})
        assert not origin._open


async def test_read_timeout_between_two_reads(origins: list[Origin]) -> None:
    async def pause(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n")
        for _ in range(3):  # reads 0.05 s apart: within the read timeout
            await asyncio.sleep(0.05)
            writer.write(b"1\r\nc\r\n")
        await asyncio.sleep(1)

    async with RawServer(handler=pause) as server:
        origins.append(origin := server.origin(read_timeout=0.15))
        resp = await origin.request("GET", "/", {})
        got = b""
        with pytest.raises(UpstreamTimedOut):
            while data := await resp.content.read():
                got += data
        assert got == b"abccc"
        resp.release()


async def test_total_timeout_over_a_trickle(origins: list[Origin]) -> None:
    async def trickle(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nc\r\n")
            await asyncio.sleep(0.02)

    async with RawServer(handler=trickle) as server:
        origins.append(origin := server.origin(read_timeout=0.1, total_timeout=0.3))
        resp = await origin.request("GET", "/", {})
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(UpstreamTimedOut, match=r"no complete answer within 0\.3 s"):
            await resp.content.read_all()
        assert loop.time() - started < 0.5
        resp.release()


async def test_the_read_timeout_does_not_run_while_we_hold_the_socket_paused(
    origins: list[Origin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 1024)
    body = bytes(range(256)) * 4096  # 1 MiB

    async with RawServer(ok(body)) as server:
        origins.append(origin := server.origin(read_timeout=0.1))
        resp = await origin.request("GET", "/", {})
        await asyncio.sleep(0.3)  # not reading: the socket is paused, and no timeout comes of it
        conn = next(iter(origin._open))
        assert conn.paused
        got = bytearray()
        while data := await resp.content.read():
            got += data
            assert len(data) <= 1024 + 256 * 1024  # at most the high-water mark and one socket read (256 KiB)
            await asyncio.sleep(0.001)
        assert got == body
        resp.release()
        assert origin._idle == [conn] and not conn.paused


# --- what is refused ---


@pytest.mark.parametrize(("head", "message"), [
    (b"Content-Encoding: gzip\r\nContent-Length: 2", r"compressed \(gzip\), though only identity was accepted"),
    (b"Content-Encoding: br\r\nContent-Length: 2", r"compressed \(br\)"),
    (b"Transfer-Encoding: gzip, chunked", "unsupported Transfer-Encoding: gzip, chunked"),
    (b"X-Big: " + b"x" * (70 * 1024), "response head larger than 65536 bytes"),
    (b"\r\n".join(b"X-%d: 1" % i for i in range(300)), "more than 256 header fields"),
])
async def test_answers_we_cannot_take_are_refused(origins: list[Origin], head: bytes, message: str) -> None:
    async with RawServer(b"HTTP/1.1 200 OK\r\n" + head + b"\r\n\r\nhi") as server:
        origins.append(origin := server.origin())
        with pytest.raises(BadResponse, match=message):
            await origin.request("GET", "/", {})
        assert not origin._open


async def test_a_head_that_never_ends_is_refused_at_its_limit(origins: list[Origin]) -> None:
    async with RawServer(b"HTTP/1.1 200 OK\r\nX-Big: " + b"x" * (100 * 1024)) as server:
        origins.append(origin := server.origin())
        with pytest.raises(BadResponse, match="response head larger than 65536 bytes"):
            await origin.request("GET", "/", {})


async def test_trailers_are_skipped_and_bounded(origins: list[Origin]) -> None:
    small = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    flood = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: " + b"a" * (200 * 1024)

    async def slowly(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        for i in range(0, len(flood), 8192):  # in pieces: the body's bytes come first, in a read of their own
            writer.write(flood[i:i + 8192])
            await writer.drain()
            await asyncio.sleep(0.001)
        await reader.read()

    async with RawServer(small, small) as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
        assert data == b"abc" and "X-T" not in resp.headers and len(origin._idle) == 1
        assert (await get(origin))[1] == b"abc"
    assert server.connections == 1
    async with RawServer(handler=slowly) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        with pytest.raises(BadResponse, match="more than 65536 bytes of chunk framing or trailers"):
            await resp.content.read_all()
        resp.release()


async def test_a_switch_of_protocols_is_refused(origins: list[Origin]) -> None:
    wire = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    async with RawServer(wire) as server:
        origins.append(origin := server.origin())
        with pytest.raises(BadResponse, match="switched protocols"):
            await origin.request("GET", "/", {})


async def test_the_start_of_another_answer_after_one_is_never_read_as_the_next(origins: list[Origin]) -> None:
    # The leftover is a head's start; were the connection kept, the next answer (a 529) would be read as
    # a 200 whose header holds the 529's status line.
    leftover = ok(b"hello") + b"HTTP/1.1 200 OK\r\nX-A: "
    async with RawServer(leftover, b"HTTP/1.1 529 Overloaded\r\nContent-Length: 5\r\n\r\nbusy!") as server:
        origins.append(origin := server.origin())
        resp, data = await get(origin)
        assert (resp.status, data) == (200, b"hello")
        assert not origin._idle
        assert (await get(origin))[1] == b"hello"  # a new connection, from its start
    assert server.connections == 2


# --- the request on the wire ---


async def test_the_request_bytes(origins: list[Origin]) -> None:
    async with RawServer(ok(b"hi"), ok(b"hi")) as server:
        origins.append(origin := server.origin())
        resp = await origin.request("POST", "/v1/messages?beta=true", {"x-api-key": "k", "anthropic-version": "v"},
                                    b'{"m":1}')
        await resp.content.read_all()
        resp.release()
        await get(origin, "/v1/models")
    port = server.port
    assert server.requests == [
        b"POST /base/v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\n"
        b"Accept-Encoding: identity\r\nUser-Agent: translator\r\nx-api-key: k\r\nanthropic-version: v\r\n"
        b'Content-Length: 7\r\n\r\n{"m":1}' % port,
        b"GET /base/v1/models HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: */*\r\n"
        b"Accept-Encoding: identity\r\nUser-Agent: translator\r\n\r\n" % port,
    ]


@pytest.mark.parametrize("headers", [
    {"x-a": "1\r\nx-b: 2"}, {"x-a": "1\nx"}, {"x-a\r": "1"}, {"x-a": "1\0"}, {"x-a": "\ud800"},
])
async def test_a_header_that_would_break_the_request_is_refused(
    origins: list[Origin], headers: dict[str, str]
) -> None:
    async with RawServer() as server:
        origins.append(origin := server.origin())
        with pytest.raises(ValueError):
            await origin.request("GET", "/", headers)
    assert server.connections == 0


def test_the_host_line() -> None:
    kw = {"connect_timeout": 1.0, "read_timeout": 1.0, "total_timeout": 1.0}
    assert Origin("https://api.anthropic.com", **kw)._host_line == "Host: api.anthropic.com\r\n"
    assert Origin("http://h:80/x/", **kw)._host_line == "Host: h\r\n"
    assert Origin("http://[::1]:8080", **kw)._host_line == "Host: [::1]:8080\r\n"
    assert Origin("http://h:8080/x/", **kw).base_path == "/x"
    with pytest.raises(ValueError, match="not an http"):
        Origin("ftp://h", **kw)


# --- cancellation ---


async def test_a_request_cancelled_before_its_head_closes_its_connection(origins: list[Origin]) -> None:
    async with RawServer() as server:
        origins.append(origin := server.origin())
        task = asyncio.ensure_future(origin.request("POST", "/", {}, b"{}"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not origin._open and not origin._idle


async def test_a_read_cancelled_mid_body_then_closed(origins: list[Origin]) -> None:
    async with RawServer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n") as server:
        origins.append(origin := server.origin())
        resp = await origin.request("GET", "/", {})
        assert await resp.content.read() == b"ab"
        task = asyncio.ensure_future(resp.content.read())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        resp.close()
        assert not origin._open and not origin._idle
        with pytest.raises(ServerDisconnected):
            await resp.content.read()


async def test_closing_an_answer_already_released_leaves_the_connection_to_the_next(
    origins: list[Origin],
) -> None:
    async with RawServer(ok(b"one"), ok(b"two")) as server:
        origins.append(origin := server.origin())
        first, _ = await get(origin)
        second = await origin.request("GET", "/", {})
        first.close()  # late: a no-op
        assert await second.content.read_all() == b"two"
        second.release()
        assert len(origin._idle) == 1


async def test_a_closed_origin_refuses_requests_and_closes_what_it_had(origins: list[Origin]) -> None:
    async with RawServer(ok(b"a")) as server:
        origin = server.origin()
        await get(origin)
        conn = origin._idle[0]
        await origin.close()
        assert conn.reusable is False and not origin._open
        with pytest.raises(http1.HttpClientError, match="closed"):
            await origin.request("GET", "/", {})


# --- TLS ---


def _server_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS / "localhost.crt", TLS / "localhost.key")
    return ctx


def _client_tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(TLS / "localhost.crt"))


async def test_https_with_the_certificate_checked(origins: list[Origin]) -> None:
    async with RawServer(ok(b"secure"), ok(b"again"), tls=_server_tls()) as server:
        origins.append(origin := server.origin("https", "localhost", ssl_context=_client_tls()))
        assert [(await get(origin))[1] for _ in range(2)] == [b"secure", b"again"]
        assert server.requests[0].startswith(b"GET /base/x HTTP/1.1\r\nHost: localhost:%d\r\n" % server.port)
    assert server.connections == 1


@pytest.mark.parametrize("case", ["wrong host", "unknown issuer"])
async def test_https_refuses_a_certificate_that_does_not_check(origins: list[Origin], case: str) -> None:
    async with RawServer(ok(b"secure"), tls=_server_tls()) as server:
        if case == "wrong host":  # the certificate names localhost, not 127.0.0.1
            origin = server.origin("https", "127.0.0.1", ssl_context=_client_tls())
        else:  # the system's trust store has never heard of it
            origin = server.origin("https", "localhost")
        origins.append(origin)
        with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await origin.request("GET", "/", {})
