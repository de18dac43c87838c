"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from translator.config import UpstreamSettings
from translator.upstream import Upstream

MakeUpstream = Callable[..., Coroutine[Any, Any, Upstream]]


@pytest.fixture
async def make_upstream() -> AsyncIterator[MakeUpstream]:
    """``await make_upstream(base_url, proxy=None, **settings)``: a started ``Upstream`` (short timeouts
    unless given), closed after the test and checked closed then (no "Unclosed client session")."""
    made: list[Upstream] = []

    async def make(base_url: str, *, proxy: str | None = None, **settings: Any) -> Upstream:
        timeouts = {"connect_timeout": 2.0, "read_timeout": 2.0, "total_timeout": 5.0}
        upstream = Upstream(UpstreamSettings(**{**timeouts, **settings}), base_url, proxy=proxy)
        made.append(upstream)
        await upstream.start()
        return upstream

    yield make
    for upstream in made:
        await upstream.close()
        assert upstream._session is not None and upstream._session.closed
