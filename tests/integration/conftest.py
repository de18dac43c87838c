"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from translator.http1 import Origin


@pytest.fixture
async def origins() -> AsyncIterator[list[Origin]]:
    """Origins (upstream clients) to close after the test, checked to hold no connection then."""
    made: list[Origin] = []
    yield made
    for origin in made:
        await origin.close()
        assert not origin._open and not origin._idle
