from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests.fakes import SECRETS_SEEN, FakeUpstream
from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import Settings
from translator.log import configure_logging
from translator.server import ProxyRunner, create_app, runner_kwargs

FIXTURES = Path(__file__).parent / "fixtures"

# Everything the server logs during the suite, written as in production: the same configuration, every level.
LOG_SINK = io.BytesIO()
CLIENT_KEYS: set[str] = set()  # keys tests present to the proxy; add to it when you mint one


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("debug", stream=LOG_SINK)  # before anything logs: a logger keeps the stream it first had


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No key, upstream or client, may ever appear in what the server logged."""
    logged = LOG_SINK.getvalue().decode()
    leaked = sorted(k for k in SECRETS_SEEN | CLIENT_KEYS if len(k) >= 4 and k in logged)
    if leaked:
        print(f"\nSECRETS FOUND IN THE SERVER LOG: {leaked}")
        session.exitstatus = 1


@pytest.fixture
def server_log() -> Callable[[], str]:
    start = LOG_SINK.tell()
    return lambda: LOG_SINK.getvalue()[start:].decode()


@pytest.fixture
async def fake_upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Any:
    fake = FakeUpstream()
    fake.server = await aiohttp_server(fake.app)
    return fake


@pytest.fixture
def make_proxy(
    aiohttp_client: Callable[..., Awaitable[TestClient]], fake_upstream: FakeUpstream
) -> Callable[..., Awaitable[TestClient]]:
    """A real proxy app in front of the fake upstream; keyword arguments are settings sections."""

    async def make(**sections: Any) -> TestClient:
        upstream = {"base_url": str(fake_upstream.server.make_url("")).rstrip("/"), **sections.pop("upstream", {})}
        settings = Settings.model_validate({"upstream": upstream, **sections})
        return await aiohttp_client(ProxyServer(create_app(settings), runner_kwargs(settings)))

    return make


class ProxyServer(TestServer):
    """A TestServer whose runner gets the same settings as production (cli.serve)."""

    def __init__(self, app: web.Application, runner_kwargs: dict[str, Any]) -> None:
        super().__init__(app)
        self._runner_kwargs = runner_kwargs

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return ProxyRunner(self.app, **{**kwargs, **self._runner_kwargs})


@pytest.fixture
async def proxy(make_proxy: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await make_proxy()
