"""The upstream reached through an HTTP proxy: ``CONNECT`` tunnels for https upstreams (TLS end to end
inside), absolute-form requests for http ones, an https:// proxy, Basic credentials, the proxy's refusals
and silences, its password never shown; and the proxy from the settings, end to end through the server.
(Which proxy the environment names is ``translator.config``'s: tests/unit/test_config.py.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.integration.conftest import MakeUpstream
from tests.raw_server import TLS, RawServer, ok, server_tls
from translator.errors import UpstreamTimeout, UpstreamUnavailable
from translator.upstream import Upstream

CA = {"ca_file": TLS / "ca.crt"}
REQUIRED_AUTH = "Basic " + base64.b64encode(b"ann:p@ss word").decode()


class FakeProxy:
    """An HTTP proxy on 127.0.0.1 (a ``RawServer`` handler): ``CONNECT host:port`` opens a tunnel (``200``),
    any other request goes to the host its absolute URL names, and the connection is piped both ways from
    then on. Keeps each head it was sent and every byte it relayed from the client; ``answer`` replaces the
    CONNECT answer (``b""``: never answer), ``auth`` is the Proxy-Authorization it requires (407 without);
    with ``tls`` it is an https:// proxy (for ``localhost``, signed by the test CA)."""

    def __init__(self, *, answer: bytes | None = None, auth: str | None = None, tls: bool = False) -> None:
        self.answer, self.auth, self.tls = answer, auth, tls
        self.heads: list[bytes] = []
        self.relayed = bytearray()
        self._server = RawServer(handler=self._handle, tls=server_tls() if tls else None)
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}" if self.tls else f"http://127.0.0.1:{self.port}"

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
        try:
            if method != b"CONNECT":
                upstream_writer.write(head)
                self.relayed += head
            elif self.answer == b"":
                await reader.read()  # silent: the client's connect timeout ends it
                return
            else:
                writer.write(self.answer if self.answer is not None else b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(self._pipe(reader, upstream_writer, record=True), self._pipe(upstream_reader, writer))
        finally:
            upstream_writer.close()

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


async def post(upstream: Upstream, body: bytes = b"secret prompt") -> tuple[int, bytes]:
    response = await upstream.open("POST", "/v1/messages", {"x-api-key": "sk-secret"}, body)
    with response:
        return response.status, await response.body()


@pytest.mark.parametrize("proxy_tls", [False, True], ids=["http proxy", "https proxy"])
async def test_https_upstream_through_a_connect_tunnel(make_upstream: MakeUpstream, proxy_tls: bool) -> None:
    async with RawServer(ok(b"one"), ok(b"two"), tls=server_tls()) as server, FakeProxy(tls=proxy_tls) as proxy:
        upstream = await make_upstream(server.url("https", "localhost"), proxy=proxy.url, **CA)
        assert [await post(upstream), await post(upstream)] == [(200, b"one"), (200, b"two")]
    # One tunnel, kept alive for both requests; the upstream got origin-form requests, TLS end to end: the
    # proxy never saw the key or the prompt.
    (head,) = proxy.heads
    assert head.startswith(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n" % (server.port, server.port))
    assert server.connections == 1
    assert server.requests[0].startswith(b"POST /base/v1/messages HTTP/1.1\r\n")
    assert proxy.relayed and b"sk-secret" not in proxy.relayed and b"secret prompt" not in proxy.relayed


async def test_proxy_credentials_go_as_basic_proxy_authorization(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"in"), tls=server_tls()) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:p%40ss%20word@127.0.0.1:{proxy.port}"  # (percent-encoded, as URLs hold them)
        upstream = await make_upstream(server.url("https", "localhost"), proxy=url, **CA)
        assert await post(upstream) == (200, b"in")
    assert b"\r\nProxy-Authorization: " + REQUIRED_AUTH.encode() + b"\r\n" in proxy.heads[0]


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_refusal_by_the_proxy_is_a_502_that_never_shows_its_password(
    make_upstream: MakeUpstream, scheme: str
) -> None:
    """A 407 is the proxy's, never the upstream's answer (for an http upstream too, where it comes as an
    answer to the request itself): a 502, naming no credentials."""
    async with RawServer(ok(b"never"), tls=server_tls() if scheme == "https" else None) as server, \
            FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:wrong-password@127.0.0.1:{proxy.port}"
        upstream = await make_upstream(server.url(scheme, "localhost"), proxy=url, **CA)
        with pytest.raises(UpstreamUnavailable) as caught:
            await post(upstream)
    assert str(caught.value) == {
        "https": "upstream unavailable: ClientHttpProxyError: 407, message='Proxy Authentication Required', "
                 f"url='http://127.0.0.1:{proxy.port}'",
        "http": "upstream unavailable: the proxy answered 407 (Proxy Authentication Required)",
    }[scheme]
    assert server.connections == 0


async def test_a_proxy_that_is_down_or_silent(make_upstream: MakeUpstream) -> None:
    async with FakeProxy() as gone:
        port = gone.port  # (closed again: nothing listens there)
    upstream = await make_upstream("https://localhost:1", proxy=f"http://ann:hunter2@127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailable, match=f"^upstream unavailable: ClientProxyConnectionError: Cannot connect "
                                                  f"to host 127.0.0.1:{port} "):
        await post(upstream)
    async with RawServer(ok(b"never"), tls=server_tls()) as server, FakeProxy(answer=b"") as silent:
        upstream = await make_upstream(server.url("https", "localhost"), proxy=silent.url, connect_timeout=0.3, **CA)
        with pytest.raises(UpstreamTimeout, match=r"^upstream timed out: Connection timeout to host "):
            await post(upstream)


async def test_a_connect_answer_that_is_not_a_2xx_is_a_502(make_upstream: MakeUpstream) -> None:
    answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(ok(b"never"), tls=server_tls()) as server, FakeProxy(answer=answer) as proxy:
        upstream = await make_upstream(server.url("https", "localhost"), proxy=f"http://a:secret@127.0.0.1:{proxy.port}",
                                       **CA)
        with pytest.raises(UpstreamUnavailable) as caught:
            await post(upstream)
    assert str(caught.value) == (
        f"upstream unavailable: ClientHttpProxyError: 502, message='Bad Gateway', url='http://127.0.0.1:{proxy.port}'"
    )


async def test_an_ipv6_proxy(make_upstream: MakeUpstream) -> None:
    from translator.cli import _described
    from translator.config import UpstreamSettings

    assert _described(UpstreamSettings(proxy="http://[::1]:3128")) == "https://api.anthropic.com via proxy [::1]:3128"
    assert _described(UpstreamSettings(proxy="https://[::1]")) == "https://api.anthropic.com via proxy [::1]:443"
    async with FakeProxy() as gone:
        port = gone.port
    upstream = await make_upstream("https://localhost:1", proxy=f"http://[::1]:{port}")
    with pytest.raises(UpstreamUnavailable, match=rf"ClientProxyConnectionError: Cannot connect to host ::1:{port} "):
        await post(upstream)


async def test_http_upstream_through_the_proxy_in_absolute_form(make_upstream: MakeUpstream) -> None:
    async with RawServer(ok(b"plain"), ok(b"again")) as server, FakeProxy(auth=REQUIRED_AUTH) as proxy:
        url = f"http://ann:p%40ss%20word@127.0.0.1:{proxy.port}"
        upstream = await make_upstream(server.url(), proxy=url)
        assert [await post(upstream), await post(upstream)] == [(200, b"plain"), (200, b"again")]
    for request in server.requests:  # one connection, kept: both through the proxy's one relay
        assert request.startswith(b"POST http://127.0.0.1:%d/base/v1/messages HTTP/1.1\r\n" % server.port)
        assert b"\r\nProxy-Authorization: " + REQUIRED_AUTH.encode() + b"\r\n" in request
    assert len(proxy.heads) == 1 and server.connections == 1


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
        direct = load_settings(env={"ANTHROPIC_BASE_URL": base_url}, proxies={"http": proxy.url})
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
