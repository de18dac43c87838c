"""``translator.gateway.upstream_health.SharedCooldowns`` against a real redis-server: what one process
publishes, another reads; a longer cool-down is kept; a success clears it for all; readings are reused between
refreshes; and without Redis the last reading stands."""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator

import pytest

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.gateway.redis_health import RedisHealth
from translator.gateway.upstream_health import SharedCooldowns, make_shared_cooldowns

NAMES = ["primary", "backup"]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pair(redis_url: str, clock: Clock) -> AsyncIterator[tuple[SharedCooldowns, SharedCooldowns]]:
    one = SharedCooldowns(redis_url, NAMES, clock=clock, refresh_seconds=1.0)
    two = SharedCooldowns(redis_url, NAMES, clock=clock, refresh_seconds=1.0)
    yield one, two
    await one.close()
    await two.close()


def tens(remaining: dict[str, float]) -> dict[str, int]:
    """Seconds left, in whole tens rounded up: Redis counts a key's expiry down in real time while the test runs
    (on a busy machine, by more than a second), so the cool-downs here are told apart by tens of seconds."""
    return {name: math.ceil(left / 10) * 10 for name, left in remaining.items()}


async def test_what_one_publishes_another_reads(pair: tuple[SharedCooldowns, SharedCooldowns]) -> None:
    one, two = pair
    assert await two.remaining() == {}
    await one.publish("primary", 300)
    await one.publish("primary", 5)  # shorter than the one already there: kept at 300
    await one.publish("backup", 0.25)
    await one.publish("backup", 100)  # longer: replaces it
    assert tens(await one.remaining()) == {"primary": 300, "backup": 100}


async def test_readings_are_reused_until_the_refresh(pair: tuple[SharedCooldowns, SharedCooldowns],
                                                     clock: Clock) -> None:
    one, two = pair
    assert await two.remaining() == {}  # read now: the next reading is due in a second
    await one.publish("primary", 300)
    assert await two.remaining() == {}
    clock.now += 1.0
    assert tens(await two.remaining()) == {"primary": 300}


async def test_a_success_clears_it_for_all(pair: tuple[SharedCooldowns, SharedCooldowns], clock: Clock) -> None:
    one, two = pair
    await one.publish("primary", 300)
    assert tens(await two.remaining()) == {"primary": 300}
    await two.clear("primary")
    assert await two.remaining() == {}  # at once for the one that saw the success
    clock.now += 1.0
    assert await one.remaining() == {}


async def test_without_redis_the_last_reading_stands(redis_url: str, clock: Clock) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors: list[str] = []
    health = RedisHealth(clock=clock, count_error=errors.append)
    down = SharedCooldowns(f"redis://127.0.0.1:{port}/0", NAMES, clock=clock, timeout=0.5, health=health)
    try:
        await down.publish("primary", 30)  # not shared, not raised: the router keeps its own view
        assert await down.remaining() == {}
        assert (health.up, errors) == (False, ["upstream_health", "upstream_health"])
    finally:
        await down.close()


async def test_only_with_a_redis_url() -> None:
    assert make_shared_cooldowns(RedisSettings(), NAMES) is None
    shared = make_shared_cooldowns(RedisSettings(url="redis://127.0.0.1:1/0"), NAMES)  # connects lazily
    assert isinstance(shared, SharedCooldowns)
    await shared.close()
