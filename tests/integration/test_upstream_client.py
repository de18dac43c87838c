"""``translator.upstream.Upstream`` against raw TCP (and TLS) servers that write exact bytes: the request as
sent, connections kept and dropped, the idle-closed connection sent again, broken and compressed answers,
timeouts, Happy Eyeballs, TLS with a CA of our own and a client certificate. HTTP framing and parsing are
aiohttp's, and tested there."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.integration.conftest import MakeUpstream
from tests.raw_server import TLS, Handler, RawServer, ok, server_tls
from translator import upstream as upstream_module
from translator.config import Settings, UpstreamSettings
from translator.errors import UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable
from translator.server import create_app
from translator.sse import SSEEvent
from translator.upstream import Upstream, tls_context


async def get(upstream: Upstream, path: str = "/x", body: bytes | None = None) -> bytes:
    response = await upstream.open("POST" if body is not None else "GET", path, {}, body)
    with response:
        return await response.body()


def chunked(*chunks: bytes, headers: bytes = b"") -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    fields = headers + b"\r\n" if headers else b""
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%s\r\n%s0\r\n\r\n" % (fields, framed)


def fields(request: bytes) -> dict[str, str]:
    """A request's header fields, names lower case."""
    lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {name.lower(): value for name, _, value in (line.partition(": ") for line in lines)}


# --- the request as sent ---


async def test_the_request_as_sent(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"hi"), ok(b"hi")) as server:
        upstream = await make_upstream(server.url(path="/base/"))
        response = await upstream.open("POST", "/v1/messages?beta=true", {"x-api-key": "k", "anthropic-version": "v"},
                                       b'{"m":1}')
        with response:
            assert await response.body() == b"hi"
        assert await get(upstream, "/v1/models/a%2Fb") == b"hi"
    post, listed = server.requests
    assert post.startswith(b"POST /base/v1/messages?beta=true HTTP/1.1\r\n") and post.endswith(b'\r\n\r\n{"m":1}')
    assert fields(post) == {
        "host": f"127.0.0.1:{server.port}", "x-api-key": "k", "anthropic-version": "v",
        "content-type": "application/json", "content-length": "7", "accept": "*/*",
        "accept-encoding": "identity", "user-agent": "translator",
    }
    assert listed.startswith(b"GET /base/v1/models/a%2Fb HTTP/1.1\r\n")  # (as the caller quoted it)
    assert "content-type" not in fields(listed) and "cookie" not in fields(listed)


async def test_no_cookie_is_kept(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"one", b"Set-Cookie: session=abc; Path=/"), ok(b"two")) as server:
        upstream = await make_upstream(server.url())
        assert [await get(upstream), await get(upstream)] == [b"one", b"two"]
    assert "cookie" not in fields(server.requests[1])


async def test_a_redirect_is_not_followed(make_upstream: MakeUpstream) -> None:
    """It would resend the key and the prompt elsewhere: a 3xx is an answer (not a 2xx: an error)."""
    async with RawServer(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:1/x\r\n"
                         b"Content-Length: 0\r\n\r\n") as server:
        upstream = await make_upstream(server.url())
        response = await upstream.open("POST", "/v1/messages", {"x-api-key": "sk-secret"}, b"{}")
        with response:
            assert response.status == 307
    assert len(server.requests) == 1


@pytest.mark.parametrize("headers", [{"x-a": "1\r\nx-b: 2"}, {"x-a": "1\nx"}, {"x-a\r": "1"}])
async def test_a_header_that_would_break_the_request_is_never_sent(
    make_upstream: MakeUpstream, headers: dict[str, str]
) -> None:
    async with RawServer(ok(b"never")) as server:
        upstream = await make_upstream(server.url())
        with pytest.raises(ValueError, match="Forbidden control character detected in headers"):
            await upstream.open("GET", "/", headers)
    assert server.requests == []


# --- connections kept and dropped ---


async def test_a_connection_is_kept_and_reused(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"one"), chunked(b"two"), ok(b"three")) as server:
        upstream = await make_upstream(server.url())
        assert [await get(upstream) for _ in range(3)] == [b"one", b"two", b"three"]
    assert server.connections == 1


async def test_an_answer_not_read_to_its_end_has_its_connection_closed(make_upstream: MakeUpstream) -> None:
    async with RawServer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n") as server:
        upstream = await make_upstream(server.url())
        response = await upstream.open("GET", "/", {})
        with response:
            assert await response.next_events() == [SSEEvent(None, b"a")]  # and its end has not come
        await closed_by_the_client(server)


async def test_an_idle_connection_is_closed_after_keepalive(
    make_upstream: MakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "KEEPALIVE", 0.1)
    async with RawServer(ok(b"hi")) as server:
        upstream = await make_upstream(server.url())
        assert await get(upstream) == b"hi"
        await closed_by_the_client(server)


async def closed_by_the_client(server: RawServer) -> None:
    """Until each of the server's connections has been closed by the client (its handler, which waits for
    that, has ended)."""
    async with asyncio.timeout(2):
        while server._handlers:
            await asyncio.sleep(0.01)


async def test_an_idle_connection_the_server_closed_is_not_used(make_upstream: MakeUpstream) -> None:
    async def close(writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with RawServer(ok(b"hi"), then=close) as server:
        upstream = await make_upstream(server.url())
        assert await get(upstream) == b"hi"
        await asyncio.sleep(0.05)  # the FIN arrives
        assert await get(upstream) == b"hi"
    assert server.connections == 2


# --- a kept connection that the upstream closed while it sat idle ---

IDLE = 0.2  # the upstream's idle timeout, well under ours (KEEPALIVE): a load balancer's, say


def forgets_idle_connections(how: str, answer: bytes) -> Handler:
    """A load balancer that drops a connection once it has sat idle ``IDLE`` s after an answer, without our
    seeing it close (no FIN reaches us): the next request on it meets a reset, or the close, before any
    answer. A new connection's first request is always answered (however late a loaded machine sends it)."""
    async def handle(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        last: float | None = None  # when this connection last answered
        while True:
            await server.read_request(reader)
            if last is not None and loop.time() - last > IDLE:
                writer.transport.abort() if how == "reset" else writer.close()
                return
            writer.write(answer)
            await writer.drain()
            last = loop.time()

    return handle


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_a_request_on_a_connection_closed_while_idle_is_sent_again_at_once(
    make_upstream: MakeUpstream, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """It is sent again on a new connection, at once (no back-off), and succeeds."""
    loop = asyncio.get_running_loop()
    real_sleep = asyncio.sleep
    slept: list[float] = []

    async def sleep(delay: float, result: Any = None) -> Any:
        slept.append(delay)
        return await real_sleep(delay, result)

    async with RawServer(handler=forgets_idle_connections(how, ok(b"hi"))) as server:
        upstream = await make_upstream(server.url())
        assert await get(upstream, body=b"{}") == b"hi"
        await asyncio.sleep(IDLE + 0.1)
        started = loop.time()
        with monkeypatch.context() as patch:
            patch.setattr(asyncio, "sleep", sleep)
            assert await get(upstream, body=b"{}") == b"hi"
        # at once: nothing waited on a timer (a back-off of any length would), and no long wait of any other
        # kind (the bound leaves room for a loaded machine's pauses)
        assert [delay for delay in slept if delay > 0] == []
        assert loop.time() - started < 3.0
    assert server.connections == 2 and len(server.requests) == 3  # the one the first connection dropped, again


async def test_through_the_server_the_request_sent_again_is_no_failed_attempt(aiohttp_client: Any) -> None:
    """The router never sees it: with one attempt allowed the request still succeeds, and the upstream's
    attempts are all "ok" (none counts against its health)."""
    message = orjson.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": [],
                            "stop_reason": "end_turn", "stop_sequence": None,
                            "usage": {"input_tokens": 1, "output_tokens": 1}})
    async with RawServer(handler=forgets_idle_connections("reset", ok(message, b"Content-Type: application/json"))
                         ) as server:
        settings = Settings.model_validate({"upstream": {"base_url": server.url(path="")},
                                            "routing": {"max_attempts": 1, "failures_before_cooldown": 1}})
        client = await aiohttp_client(create_app(settings))
        for pause in (IDLE + 0.1, 0):
            resp = await client.post("/v1/messages", json={"model": "m", "max_tokens": 1, "messages": []})
            assert resp.status == 200 and await resp.read() == message
            await asyncio.sleep(pause)
        metrics = await (await client.get("/metrics")).text()
    attempts = [line for line in metrics.splitlines() if line.startswith("translator_upstream_attempts_total{")]
    assert attempts == ['translator_upstream_attempts_total{outcome="ok",upstream="default"} 2.0']
    assert server.connections == 2


async def test_a_new_connection_that_fails_before_its_answer_is_not_sent_again(make_upstream: MakeUpstream) -> None:
    """That is the upstream's failure, for the router to count and decide on."""
    async def reset(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.transport.abort()

    async with RawServer(handler=reset) as server:
        upstream = await make_upstream(server.url())
        with pytest.raises(UpstreamUnavailable, match=r"^upstream unavailable: "):
            await upstream.open("POST", "/", {}, b"{}")
    assert server.connections == 1


# --- answers that cannot be read ---


@pytest.mark.parametrize(("wire", "message"), [
    (b"NOT HTTP\r\n\r\n", '^upstream unavailable: ClientResponseError: 400, message="Bad status line'),
    (b"", "^upstream unavailable: ServerDisconnectedError: Server disconnected$"),
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\nhi",
     r"^upstream answered compressed \(gzip\), though only identity was accepted$"),
    (b"HTTP/1.1 529 x\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nhi", r"compressed \(br\)"),
])
async def test_an_answer_that_cannot_be_read_is_a_502(make_upstream: MakeUpstream, wire: bytes, message: str) -> None:
    async def write_and_close(writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with RawServer(wire, then=write_and_close) as server:
        upstream = await make_upstream(server.url())
        with pytest.raises(UpstreamUnavailable, match=message) as caught:
            await upstream.open("GET", "/", {})
    assert caught.value.status == 502


@pytest.mark.parametrize(("wire", "error"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nzz\r\n", "ClientResponseError: 400"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "ClientPayloadError: "),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", "ClientPayloadError: "),
])
async def test_a_body_cut_short_or_broken_is_a_502(make_upstream: MakeUpstream, wire: bytes, error: str) -> None:
    async def write_and_close(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.05)
        writer.close()

    async with RawServer(wire, then=write_and_close) as server:
        upstream = await make_upstream(server.url())
        with pytest.raises(UpstreamUnavailable, match=f"^upstream unavailable: {error}"):
            response = await upstream.open("GET", "/", {})  # (a bad chunk in the head's packet fails here)
            with response:
                await response.body()


async def test_an_error_answer_is_read_within_bounds(make_upstream: MakeUpstream) -> None:
    """An error page is read to at most about MAX_ERROR_BODY: the rest is never read, and the connection
    is closed rather than drained."""
    page = b"<html>" + b"x" * (4 * 1024 * 1024)
    wire = b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page)
    async with RawServer(wire) as server:
        upstream = await make_upstream(server.url())
        with pytest.raises(UpstreamStatusError) as caught:
            await upstream.open("POST", "/v1/messages", {}, b"{}")
        await closed_by_the_client(server)
    assert caught.value.status == 502
    assert str(caught.value) == "upstream answered HTTP 502 (text/html): <html>" + "x" * 194


# --- connecting ---


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
    make_upstream: MakeUpstream, monkeypatch: pytest.MonkeyPatch, blackhole: tuple[str, int]
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
        upstream = await make_upstream(server.url(host="upstream.test"), connect_timeout=10.0)
        started = loop.time()
        assert await get(upstream) == b"hi"
        assert 0.2 < loop.time() - started < 5.0  # the first address was tried, then passed over (not waited out)
    assert fields(server.requests[0])["host"] == f"upstream.test:{server.port}"


@pytest.mark.parametrize(("connect", "total", "message"), [  # the total timeout counts connecting
    (0.3, 30.0, r"^upstream timed out: Connection timeout to host http://127\.0\.0\.1:\d+/$"),
    (30.0, 0.3, r"^upstream timed out$"),
], ids=["connect", "total"])
async def test_connecting_is_bounded_by_both_timeouts(
    make_upstream: MakeUpstream, blackhole: tuple[str, int], connect: float, total: float, message: str
) -> None:
    """The message tells which timeout fired; the other is far off."""
    upstream = await make_upstream(f"http://127.0.0.1:{blackhole[1]}", connect_timeout=connect, total_timeout=total)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout, match=message) as caught:
        await upstream.open("GET", "/", {})
    assert loop.time() - started < 0.3 + 3 and caught.value.status == 504


async def test_a_refused_connection(make_upstream: MakeUpstream) -> None:
    async with RawServer() as server:
        port = server.port
    upstream = await make_upstream(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable,
                       match=f"^upstream unavailable: ClientConnectorError: Cannot connect to host 127.0.0.1:{port} "):
        await upstream.open("GET", "/", {})


# --- timeouts ---


async def test_read_timeout_waiting_for_the_head(make_upstream: MakeUpstream) -> None:
    async with RawServer() as server:
        upstream = await make_upstream(server.url(), read_timeout=0.1)
        with pytest.raises(UpstreamTimeout, match=r"^upstream timed out: Timeout on reading data from socket$"):
            await upstream.open("GET", "/", {})


async def test_read_timeout_between_two_reads(make_upstream: MakeUpstream) -> None:
    async def pause(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\n")
        for _ in range(5):  # reads 0.3 s apart, each within the read timeout, though 1.5 s in all is past it
            await asyncio.sleep(0.3)
            writer.write(b"9\r\ndata: c\n\n\r\n")
        await asyncio.sleep(30)  # then silence, past the read timeout

    async with RawServer(handler=pause) as server:
        upstream = await make_upstream(server.url(), read_timeout=1.2, total_timeout=30.0)
        response = await upstream.open("GET", "/", {})
        got: list[SSEEvent] = []
        read_timeout = r"^upstream timed out: Timeout on reading data from socket$"
        with response, pytest.raises(UpstreamTimeout, match=read_timeout):
            while (events := await response.next_events()) is not None:
                got += events
        assert [e.data for e in got] == [b"a", b"c", b"c", b"c", b"c", b"c"]


async def test_total_timeout_over_a_trickle(make_upstream: MakeUpstream) -> None:
    async def trickle(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            writer.write(b"1\r\nc\r\n")
            await asyncio.sleep(0.02)

    async with RawServer(handler=trickle) as server:  # a byte every 0.02 s: the read timeout never fires
        upstream = await make_upstream(server.url(), read_timeout=1.2, total_timeout=2.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await upstream.open("GET", "/", {})
        with response, pytest.raises(UpstreamTimeout, match=r"^upstream timed out$"):  # (the total's message)
            await response.body()
        assert loop.time() - started < 2.0 + 3


async def test_a_reader_that_takes_its_time_is_not_timed_out(make_upstream: MakeUpstream) -> None:
    """Past a few hundred KB unread the socket is paused, and the read timeout does not run meanwhile: a
    slow client of ours never makes its upstream time out."""
    body = b"".join(b"data: %d %s\n\n" % (i, b"x" * 240) for i in range(4096))  # 1 MiB of events
    async with RawServer(ok(body)) as server:
        upstream = await make_upstream(server.url(), read_timeout=0.5)  # (the head's wait too: not too short)
        response = await upstream.open("GET", "/", {})
        await asyncio.sleep(1.5)  # not reading
        got: list[SSEEvent] = []
        with response:
            while (events := await response.next_events()) is not None:
                got += events
        assert b"".join(e.raw for e in got) == body


# --- TLS ---


async def test_https_with_a_ca_of_its_own(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"secure"), ok(b"again"), tls=server_tls()) as server:
        upstream = await make_upstream(server.url("https", "localhost"), ca_file=TLS / "ca.crt")
        assert [await get(upstream), await get(upstream)] == [b"secure", b"again"]
    assert server.connections == 1


@pytest.mark.parametrize("case", ["unknown issuer", "wrong host"])
async def test_https_refuses_a_certificate_that_does_not_check(make_upstream: MakeUpstream, case: str) -> None:
    async with RawServer(ok(b"secure"), tls=server_tls()) as server:
        if case == "unknown issuer":  # the system's trust store has never heard of the test CA
            upstream = await make_upstream(server.url("https", "localhost"))
        else:  # the certificate names localhost, not 127.0.0.1
            upstream = await make_upstream(server.url("https", "127.0.0.1"), ca_file=TLS / "ca.crt")
        with pytest.raises(UpstreamUnavailable, match=r"ClientConnectorCertificateError: .*CERTIFICATE_VERIFY_FAILED"):
            await upstream.open("GET", "/", {})
    assert server.requests == []


@pytest.mark.parametrize("cert", [{"client_cert": TLS / "client.crt", "client_key": TLS / "client.key"},
                                  {"client_cert": TLS / "client.pem"}])  # (the key in the certificate's file)
async def test_mtls_a_client_certificate_is_presented(make_upstream: MakeUpstream, cert: dict[str, object]) -> None:
    async with RawServer(ok(b"mutual"), tls=server_tls(client_ca=True)) as server:
        upstream = await make_upstream(server.url("https", "localhost"), ca_file=TLS / "ca.crt", **cert)
        assert await get(upstream) == b"mutual"


async def test_mtls_without_a_client_certificate_is_refused(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"mutual"), tls=server_tls(client_ca=True)) as server:
        upstream = await make_upstream(server.url("https", "localhost"), ca_file=TLS / "ca.crt")
        with pytest.raises(UpstreamUnavailable):
            await upstream.open("GET", "/", {})
    assert server.requests == []


def test_the_tls_context_trusts_the_system_and_the_ca_file() -> None:
    system = tls_context(UpstreamSettings()).cert_store_stats()["x509_ca"]
    both = tls_context(UpstreamSettings(ca_file=TLS / "ca.crt")).cert_store_stats()["x509_ca"]
    assert both == system + 1


# --- the session's life ---


async def test_close_closes_the_session_and_its_connections(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"hi")) as server:
        upstream = await make_upstream(server.url())
        assert await get(upstream) == b"hi"
        await upstream.close()
        await closed_by_the_client(server)
