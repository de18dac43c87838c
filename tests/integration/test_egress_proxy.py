"""The upstream reached through an HTTP proxy: ``CONNECT`` tunnels for https origins (TLS end to end inside),
absolute-form requests for http ones, Basic credentials, the proxy's refusals and silences; and the proxy
chosen from the environment (``translator.config``), end to end through the server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.integration.test_http1 import RawServer, _client_tls, _server_tls, ok
from translator.http1 import ConnectFailed, Origin, UpstreamTimedOut

TIMEOUTS = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0}
REQUIRED_AUTH = "Basic " + base64.b64encode(b"ann:p@ss word").decode()


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 (a ``RawServer`` handler): ``CONNECT host:port`` opens a tunnel (``200``),
    any other request goes to the host its absolute URL names, and the connection is piped both ways from
    then on. Keeps each head it was sent and every byte it relayed from the client; ``answer`` replaces the
    CONNECT answer (``b""``: never answer), ``auth`` is the Proxy-Authorization it requires (407 without)."""

    def __init__(self, *, answer: bytes | None = None, auth: str | None = None) -> None:
        self.answer, self.auth = answer, auth
        self.heads: list[bytes] = []
        self.relayed = bytearray()
        self._server = RawServer(handler=self._handle)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeProxy:
        self.port = (await self._server.__aenter__()).port
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.__aexit__(*exc)

    async def _handle(self, _: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if line)
        if self.auth is not None and fields.get(b"Proxy-Authorization") != self.auth.encode():
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            return
        if method == b"CONNECT":
            host, port = target.decode().rsplit(":", 1)
        else:
            host, port = target.split(b"/")[2].decode().rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        if method != b"CONNECT":
            upstream_writer.write(head)
            self.relayed += head
        elif self.answer == b"":
            await reader.read()  # silent: the client's connect timeout ends it
            return
        else:
            writer.write(self.answer if self.answer is not None else b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, upstream_writer, record=True), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if record:
                    self.relayed += data
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()


async def post(origin: Origin, body: bytes = b"secret prompt") -> tuple[int, bytes]:
    response = await origin.request("POST", "/v1/messages", {"x-api-key": "sk-secret"}, body)
    data = await response.content.read_all()
    response.release()
    return response.status, data


async def test_https_origin_through_a_connect_tunnel(origins: list[Origin]) -> None:
    async with RawServer(ok(b"one"), ok(b"two"), tls=_server_tls()) as server, FakeProxy() as proxy:
        origin = Origin(f"https://localhost:{server.port}/base", **TIMEOUTS, ssl_context=_client_tls(),
                        proxy=proxy.url)
        origins.append(origin)
        assert [await post(origin), await post(origin)] == [(200, b"one"), (200, b"two")]
    # One tunnel, kept alive for both requests; the origin got origin-form requests, TLS end to end: the proxy
    # never saw the key or the prompt.
    assert proxy.heads == [b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (server.port, server.port)]
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /base/v1/messages HTTP/1.1\r\nHost: localhost:%d\r\n" % server.port)
    assert proxy.relayed and b"sk-secret" not in proxy.relayed and b"secret prompt" not in proxy.relayed


async def test_proxy_credentials_go_as_basic_proxy_authorization(origins: list[Origin]) -> None:
    async with RawServer(ok(b"in"), tls=_server_tls()) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:p%40ss%20word@127.0.0.1:{proxy.port}"  # (percent-encoded, as URLs hold them)
        origin = Origin(f"https://localhost:{server.port}", **TIMEOUTS, ssl_context=_client_tls(), proxy=url)
        origins.append(origin)
        assert await post(origin) == (200, b"in")
    assert b"Proxy-Authorization: " + REQUIRED_AUTH.encode() + b"\r\n" in proxy.heads[0]


async def test_a_refused_tunnel_names_the_proxy_and_its_answer_not_the_password(origins: list[Origin]) -> None:
    async with RawServer(ok(b"never"), tls=_server_tls()) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:wrong-password@127.0.0.1:{proxy.port}"
        origin = Origin(f"https://localhost:{server.port}", **TIMEOUTS, ssl_context=_client_tls(), proxy=url)
        origins.append(origin)
        with pytest.raises(ConnectFailed) as caught:
            await post(origin)
    message = str(caught.value)
    assert message == (
        f"cannot connect to localhost:{server.port} through the proxy 127.0.0.1:{proxy.port}: the proxy "
        f"127.0.0.1:{proxy.port} refused the tunnel to localhost:{server.port}: HTTP/1.1 407 Proxy Authentication "
        "Required"
    )
    assert "wrong-password" not in message
    assert server.connections == 0


async def test_a_proxy_that_is_down_or_silent(origins: list[Origin]) -> None:
    async with FakeProxy() as gone:
        port = gone.port  # (closed again: nothing listens there)
    origin = Origin("https://localhost:1", **TIMEOUTS, proxy=f"http://127.0.0.1:{port}")
    origins.append(origin)
    with pytest.raises(ConnectFailed, match=f"through the proxy 127.0.0.1:{port}: .*Connect call failed"):
        await post(origin)
    async with RawServer(ok(b"never"), tls=_server_tls()) as server, FakeProxy(answer=b"") as silent:
        origin = Origin(f"https://localhost:{server.port}", **{**TIMEOUTS, "connect_timeout": 0.3},
                        ssl_context=_client_tls(), proxy=silent.url)
        origins.append(origin)
        with pytest.raises(UpstreamTimedOut, match=f"through the proxy 127.0.0.1:{silent.port} within 0.3 s"):
            await post(origin)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n", "sent bytes after its answer to CONNECT"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "refused the tunnel to localhost:\\d+: SSH-2.0-OpenSSH_9.6"),
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", ": HTTP/1.1 502 Bad Gateway$"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", ": HTTP/1.1 2000 OK$"),  # (a status has three digits)
    ],
)
async def test_a_connect_answer_that_is_not_a_clean_2xx_is_refused(
    origins: list[Origin], answer: bytes, error: str
) -> None:
    async with RawServer(ok(b"never"), tls=_server_tls()) as server, FakeProxy(answer=answer) as proxy:
        origin = Origin(f"https://localhost:{server.port}", **TIMEOUTS, ssl_context=_client_tls(), proxy=proxy.url)
        origins.append(origin)
        with pytest.raises(ConnectFailed, match=error):
            await post(origin)


@pytest.mark.parametrize("answer", [b"HTTP/1.0 200\n\n", b"HTTP/1.1 200 OK\r\nVia: 1.1 squid\r\n\r\n"])
async def test_lenient_but_whole_connect_answers_are_taken(origins: list[Origin], answer: bytes) -> None:
    async with RawServer(ok(b"in"), tls=_server_tls()) as server, FakeProxy(answer=answer) as proxy:
        origin = Origin(f"https://localhost:{server.port}", **TIMEOUTS, ssl_context=_client_tls(), proxy=proxy.url)
        origins.append(origin)
        assert await post(origin) == (200, b"in")


async def test_credentials_are_sent_as_their_bytes_and_never_shown(origins: list[Origin]) -> None:
    async with RawServer(ok(b"in"), tls=_server_tls()) as server, FakeProxy() as proxy:
        url = f"http://ann:%ff%00x@127.0.0.1:{proxy.port}"  # (not UTF-8: the bytes as they are, as curl does)
        origin = Origin(f"https://localhost:{server.port}", **TIMEOUTS, ssl_context=_client_tls(), proxy=url)
        origins.append(origin)
        assert await post(origin) == (200, b"in")
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"ann:\xff\x00x") + b"\r\n" in proxy.heads[0]
    with pytest.raises(ValueError) as caught:  # an unencoded / in the password reads as a port
        Origin("https://api.anthropic.com", **TIMEOUTS, proxy="http://bob:hunt/er2@proxy.corp:3128")
    assert "hunt" not in str(caught.value)


async def test_an_ipv6_proxy(origins: list[Origin]) -> None:
    from translator.cli import _described
    from translator.config import UpstreamSettings

    assert _described(UpstreamSettings(proxy="http://[::1]:3128")) == "https://api.anthropic.com via proxy [::1]:3128"
    async with FakeProxy() as gone:
        port = gone.port
    origin = Origin("https://localhost:1", **TIMEOUTS, proxy=f"http://[::1]:{port}")
    origins.append(origin)
    with pytest.raises(ConnectFailed, match=rf"through the proxy \[::1\]:{port}: "):
        await post(origin)


async def test_a_407_for_an_http_origin_is_the_proxys_refusal(origins: list[Origin]) -> None:
    async with RawServer(ok(b"never")) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        origin = Origin(f"http://127.0.0.1:{server.port}", **TIMEOUTS, proxy=proxy.url)  # (no credentials)
        origins.append(origin)
        with pytest.raises(ConnectFailed, match=f"through the proxy 127.0.0.1:{proxy.port}: the proxy answered 407"):
            await post(origin)
    assert server.connections == 0


async def test_http_origin_through_the_proxy_in_absolute_form(origins: list[Origin]) -> None:
    async with RawServer(ok(b"plain"), ok(b"again")) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:p%40ss%20word@127.0.0.1:{proxy.port}"
        origin = Origin(f"http://127.0.0.1:{server.port}/base", **TIMEOUTS, proxy=url)
        origins.append(origin)
        assert [await post(origin), await post(origin)] == [(200, b"plain"), (200, b"again")]
    expected = (
        b"POST http://127.0.0.1:%d/base/v1/messages HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Authorization: %s\r\n"
        % (server.port, server.port, REQUIRED_AUTH.encode())
    )
    assert [r[: len(expected)] for r in server.requests] == [expected, expected]  # one connection, kept
    assert len(proxy.heads) == 1 and server.connections == 1


@pytest.mark.parametrize("url", ["https://127.0.0.1:3128", "socks5://127.0.0.1:1080", "http://", "http://proxy:port"])
def test_proxy_urls_that_are_not_http_proxies_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Origin("https://api.anthropic.com", **TIMEOUTS, proxy=url)


def test_a_nul_in_the_origins_host_never_reaches_a_connect_line() -> None:
    with pytest.raises(ValueError, match="NUL"):
        Origin("https://api\0.anthropic.com", **TIMEOUTS, proxy="http://proxy:3128")


# --- through the server, the proxy from its settings ---


async def test_the_server_reaches_its_upstream_through_the_configured_proxy(aiohttp_client: Any) -> None:
    from translator.config import Settings, load_settings
    from translator.server import create_app

    claude = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
              "stop_sequence": None, "content": [{"type": "text", "text": "via the proxy"}],
              "usage": {"input_tokens": 3, "output_tokens": 3}}
    seen: list[str] = []

    async def messages(request: web.Request) -> web.Response:
        seen.append(request.headers["Host"])
        return web.json_response(claude)

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    upstream = await aiohttp_client(app)
    async with FakeProxy() as proxy:
        base_url = str(upstream.make_url("")).rstrip("/")
        # A loopback upstream goes direct whatever the environment says; a proxy set in the settings is used.
        direct = load_settings(env={"ANTHROPIC_BASE_URL": base_url, "HTTP_PROXY": proxy.url})
        assert direct.upstream.proxy == ""
        config = {"upstream": {"base_url": base_url, "proxy": proxy.url}}
        settings = Settings.model_validate(config)
        client = await aiohttp_client(create_app(settings))
        resp = await client.post("/v1/chat/completions", data=orjson.dumps(
            {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}))
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["choices"][0]["message"]["content"] == "via the proxy"
    assert proxy.heads[0].startswith(b"POST %s/v1/messages HTTP/1.1\r\n" % base_url.encode())
    assert seen == [base_url.removeprefix("http://")]


def test_the_start_up_line_names_the_proxy_never_its_password() -> None:
    from translator.cli import _described
    from translator.config import UpstreamSettings

    proxied = UpstreamSettings(base_url="https://api.anthropic.com", proxy="http://bob:hunter2@proxy.corp:3128")
    assert _described(proxied) == "https://api.anthropic.com via proxy proxy.corp:3128"
    assert _described(UpstreamSettings(proxy="")) == "https://api.anthropic.com"
