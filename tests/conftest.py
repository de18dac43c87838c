from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.fakes import FakeUpstream
from translator.config import Settings
from translator.server import create_app

FIXTURES = Path(__file__).parent / "fixtures"


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

    async def make(**sections: dict[str, Any]) -> TestClient:
        upstream = {"base_url": str(fake_upstream.server.make_url("")).rstrip("/"), **sections.pop("upstream", {})}
        settings = Settings.model_validate({"upstream": upstream, **sections})
        return await aiohttp_client(create_app(settings), server_kwargs={"handler_cancellation": True})

    return make


@pytest.fixture
async def proxy(make_proxy: Callable[..., Awaitable[TestClient]]) -> TestClient:
    return await make_proxy()
