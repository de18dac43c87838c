"""The memory of recent prompt prefixes, the same tests against process memory and a real redis-server.

Memory time is an injected clock; Redis expires keys by its own clock, so its TTL tests use short real TTLs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.gateway.prefix_memory import (
    MemoryPrefixMemory,
    PrefixMemory,
    RedisPrefixMemory,
    make_prefix_memory,
)
from translator.gateway.redis_health import RedisHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    memory: PrefixMemory
    elapse: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = Clock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Backend(MemoryPrefixMemory(clock), advance)
    else:
        memory = RedisPrefixMemory(request.getfixturevalue("redis_url"))
        yield Backend(memory, asyncio.sleep)
        await memory.close()


async def test_first_sighting_is_unseen_the_second_seen(backend: Backend) -> None:
    memory = backend.memory
    assert await memory.seen(["a", "b"], 60) == [False, False]
    assert await memory.seen(["b", "c"], 60) == [True, False]
    assert await memory.seen(["a", "b", "c"], 60) == [True, True, True]
    assert await memory.seen([], 60) == []


async def test_a_sighting_expires_with_its_ttl(backend: Backend) -> None:
    memory = backend.memory
    await memory.seen(["short"], 0.05)
    await memory.seen(["long"], 30)
    await backend.elapse(0.15)
    assert await memory.seen(["short", "long"], 30) == [False, True]


async def test_each_sighting_renews_the_ttl(backend: Backend) -> None:
    """As a cache hit refreshes the upstream's entry.

    The second sighting comes at once, well within the first's ttl, and records the key for longer; the third
    comes past the first sighting's ttl, so only the renewal can have kept the key. (No step needs to come
    before a deadline shorter than 2 s: a test process paused for a second on a loaded machine still passes.)
    """
    memory = backend.memory
    await memory.seen(["k"], 2.0)
    assert await memory.seen(["k"], 30) == [True]
    await backend.elapse(2.1)  # past the first sighting's ttl, well within the second's
    assert await memory.seen(["k"], 30) == [True]


async def test_memory_is_bounded_oldest_sighting_first() -> None:
    memory = MemoryPrefixMemory(Clock(), max_entries=2)
    await memory.seen(["a"], 60)
    await memory.seen(["b"], 60)
    await memory.seen(["a"], 60)  # a seen again: b is now the oldest sighting
    await memory.seen(["c"], 60)
    assert len(memory) == 2
    assert await memory.seen(["b"], 60) == [False]
    assert await memory.seen(["c"], 60) == [True]


async def test_memory_purges_expired_entries() -> None:
    clock = Clock()
    memory = MemoryPrefixMemory(clock)
    await memory.seen(["a", "b"], 1)
    clock.now += 2
    await memory.seen(["c"], 1)
    assert len(memory) == 1


def test_memory_needs_room() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryPrefixMemory(max_entries=0)


async def test_redis_down_means_unseen_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors: list[str] = []
    health = RedisHealth(count_error=errors.append)
    memory = RedisPrefixMemory(f"redis://127.0.0.1:{port}/0", timeout=0.5, health=health)
    try:
        assert await memory.seen(["a"], 30) == [False]
        assert await memory.seen(["a"], 30) == [False]  # (skipped: Redis is known down, no retry due)
    finally:
        await memory.close()
    assert health.up is False
    assert errors == ["prefix_memory", "prefix_memory"]


async def test_replicas_share_what_they_saw(redis_url: str) -> None:
    one, two = RedisPrefixMemory(redis_url), RedisPrefixMemory(redis_url)
    try:
        assert await one.seen(["shared"], 30) == [False]
        assert await two.seen(["shared"], 30) == [True]
    finally:
        await one.close()
        await two.close()


async def test_make_prefix_memory_picks_the_backend() -> None:
    memory = make_prefix_memory(RedisSettings())
    redis_backed = make_prefix_memory(RedisSettings(url="redis://127.0.0.1:1/0"))  # connects lazily
    assert isinstance(memory, MemoryPrefixMemory)
    assert isinstance(redis_backed, RedisPrefixMemory)
    await memory.close()
    await redis_backed.close()
