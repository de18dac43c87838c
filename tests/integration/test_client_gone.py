"""A client that goes away is normal: its request gets its one JSON log line (``cancelled``) and nothing else,
however the handler learned of it (a write that finds the connection closing raises
``ClientConnectionResetError`` before a stream's head went out)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.client_exceptions import ClientConnectionResetError
from aiohttp.test_utils import TestClient

from tests.conftest import ProxyServer
from translator.config import Settings
from translator.server import create_app, runner_kwargs


async def _gone(request: web.Request) -> web.StreamResponse:
    raise ClientConnectionResetError("Cannot write to closing transport")


async def test_a_write_to_a_closing_transport_is_logged_once_without_a_traceback(
    aiohttp_client: Callable[..., Awaitable[TestClient]], server_log: Callable[[], str]
) -> None:
    settings = Settings.model_validate({"upstream": {"base_url": "http://127.0.0.1:9"}})
    app = create_app(settings)
    app.router.add_post("/v1/gone", _gone)  # what prepare_stream meets when the client left first
    client = await aiohttp_client(ProxyServer(app, runner_kwargs(settings)))
    resp = await client.post("/v1/gone", json={})
    assert resp.status == 500  # (the client is still there in this test: it reads what a gone one would not)
    assert await resp.json() == {"error": {"message": "internal error in the proxy", "type": "server_error",
                                           "param": None, "code": None}}
    lines = [orjson.loads(line) for line in server_log().splitlines()]
    [line] = [line for line in lines if line["event"] == "request"]
    assert (line["path"], line["status"], line["cancelled"]) == ("/v1/gone", 499, True)
    assert [line for line in lines if line["level"] != "info" or "exception" in line] == []
