"""Conversation stickiness, the same tests against process memory and a real redis-server.

Memory time is an injected clock; Redis expires keys by its own clock, so its TTL tests use short real TTLs.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.gateway.sticky import MemoryStickyStore, RedisStickyStore, StickyStore, make_sticky_store


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    store: StickyStore
    elapse: Callable[[float], Awaitable[None]]  # let time pass: the fake clock, or a real sleep for Redis


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = Clock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        yield Backend(MemoryStickyStore(clock), advance)
    else:
        store = RedisStickyStore(request.getfixturevalue("redis_url"))
        yield Backend(store, asyncio.sleep)
        await store.close()


async def test_unknown_session_is_none(backend: Backend) -> None:
    assert await backend.store.get("never-seen") is None


async def test_set_then_get_and_overwrite(backend: Backend) -> None:
    store = backend.store
    await store.set("conv-1", "upstream-a", 60)
    await store.set("conv-2", "upstream-b", 60)
    assert await store.get("conv-1") == "upstream-a"
    assert await store.get("conv-2") == "upstream-b"
    await store.set("conv-1", "upstream-c", 60)
    assert await store.get("conv-1") == "upstream-c"
    assert await store.get("conv-2") == "upstream-b"


async def test_entries_expire_after_their_ttl(backend: Backend) -> None:
    store = backend.store
    await store.set("long", "upstream-a", 30)
    await store.set("short", "upstream-b", 0.05)
    await backend.elapse(0.15)
    assert await store.get("short") is None
    assert await store.get("long") == "upstream-a"


async def test_setting_again_renews_the_ttl(backend: Backend) -> None:
    store = backend.store
    await store.set("conv", "upstream-a", 0.05)
    await store.set("conv", "upstream-a", 30)
    await backend.elapse(0.15)
    assert await store.get("conv") == "upstream-a"


async def test_non_positive_ttl_forgets(backend: Backend) -> None:
    store = backend.store
    await store.set("conv", "upstream-a", 30)
    await store.set("conv", "upstream-b", 0)
    assert await store.get("conv") is None
    await store.set("conv", "upstream-b", -1)
    assert await store.get("conv") is None


async def test_odd_session_ids(backend: Backend) -> None:
    store = backend.store
    sessions = ["", "ünïcødé 🙂", "x" * 10_000, "translator:sticky:" + "0" * 64, "a\nb\x00c"]
    for i, session in enumerate(sessions):
        await store.set(session, f"upstream-{i}", 30)
    for i, session in enumerate(sessions):
        assert await store.get(session) == f"upstream-{i}"


# ---- memory specifics -------------------------------------------------------------------------------------------


async def test_memory_ttl_edge_with_the_clock() -> None:
    clock = Clock()
    store = MemoryStickyStore(clock)
    await store.set("conv", "a", 10)
    clock.now += 9.999
    assert await store.get("conv") == "a"
    clock.now += 0.001
    assert await store.get("conv") is None
    assert len(store) == 0  # an expired entry read is dropped


async def test_memory_is_bounded_and_evicts_the_oldest() -> None:
    store = MemoryStickyStore(Clock(), max_entries=3)
    for name in ["a", "b", "c"]:
        await store.set(name, "up-" + name, 60)
    await store.set("a", "up-a2", 60)  # re-set: "a" is now the newest
    await store.set("d", "up-d", 60)  # full: "b", the oldest, goes
    assert len(store) == 3
    assert [await store.get(n) for n in ["a", "b", "c", "d"]] == ["up-a2", None, "up-c", "up-d"]


async def test_memory_purges_expired_entries_before_evicting_live_ones() -> None:
    clock = Clock()
    store = MemoryStickyStore(clock, max_entries=3)
    await store.set("old-1", "x", 1)
    await store.set("old-2", "x", 1)
    await store.set("live", "y", 60)
    clock.now += 2
    await store.set("new", "z", 60)
    assert len(store) == 2
    assert await store.get("live") == "y"
    assert await store.get("new") == "z"


async def test_memory_rejects_a_zero_bound_and_close_clears() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStickyStore(max_entries=0)
    store = MemoryStickyStore()
    await store.set("conv", "a", 60)
    await store.close()
    assert await store.get("conv") is None


# ---- Redis specifics --------------------------------------------------------------------------------------------


async def test_redis_keys_are_hashed_and_carry_the_ttl(redis_url: str) -> None:
    store = RedisStickyStore(redis_url)
    client = aioredis.from_url(redis_url)
    try:
        await store.set("conversation 42", "upstream-a", 90)
        name = "translator:sticky:" + hashlib.sha256(b"conversation 42").hexdigest()
        assert await client.keys("*") == [name.encode()]
        assert 80_000 < await client.pttl(name) <= 90_000  # (10 s of slack for a paused test process)
        assert await client.get(name) == b"upstream-a"
    finally:
        await store.close()
        await client.aclose()


async def test_redis_is_shared_between_stores(redis_url: str) -> None:
    one, two = RedisStickyStore(redis_url), RedisStickyStore(redis_url)
    try:
        await one.set("conv", "upstream-a", 30)
        assert await two.get("conv") == "upstream-a"
    finally:
        await one.close()
        await two.close()


async def test_redis_down_means_no_stickiness_not_an_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RedisStickyStore(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    try:
        await store.set("conv", "upstream-a", 30)
        assert await store.get("conv") is None
    finally:
        await store.close()


async def test_make_sticky_store_picks_the_backend() -> None:
    memory = make_sticky_store(RedisSettings())
    redis_backed = make_sticky_store(RedisSettings(url="redis://127.0.0.1:1/0"))  # connects lazily
    assert isinstance(memory, MemoryStickyStore)
    assert isinstance(redis_backed, RedisStickyStore)
    await memory.close()
    await redis_backed.close()
