"""The memory of prompt prefixes seen recently, for automatic prompt caching (``translator.convert.caching``).

A prefix seen once is not worth a cache write (it costs 1.25x plain input, and pays only if read again); a
prefix seen again likely will be seen once more, as a classification service's long system prompt is. So
each request's prefix keys (hashes, never the text) are checked and recorded here, each for as long as the
upstream keeps a cache entry (the cache TTL, refreshed on every sighting as a cache hit refreshes it).

In process memory, bounded; or in Redis with ``[redis] url``, so that every replica sees what the others
saw. Like stickiness, it is advice: while Redis is down a prefix counts as unseen (``redis_health`` logs the
outage once), which costs a cache write not made, never a wrong answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client


class PrefixMemory(Protocol):
    async def seen(self, keys: Sequence[str], ttl: float) -> list[bool]:
        """For each key, whether it was recorded within its ttl; each is recorded now for ``ttl`` seconds."""
        ...

    async def close(self) -> None: ...


class MemoryPrefixMemory:
    """A bounded TTL set in process memory, oldest sighting first: the front is what expires (or is evicted)
    first."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._expiry: OrderedDict[str, float] = OrderedDict()  # key -> expires at

    def __len__(self) -> int:
        return len(self._expiry)

    async def seen(self, keys: Sequence[str], ttl: float) -> list[bool]:
        now = self._clock()
        self._purge_expired(now)
        found = []
        for key in keys:
            found.append(self._expiry.pop(key, 0.0) > now)
            self._expiry[key] = now + ttl  # (re)recorded at the back: the latest sighting
        while len(self._expiry) > self._max_entries:
            self._expiry.popitem(last=False)
        return found

    async def close(self) -> None:
        self._expiry.clear()

    def _purge_expired(self, now: float) -> None:
        """Drop expired entries at the front, up to the first live one (one recorded with a shorter ttl may
        linger behind a live one until evicted: it only costs memory within ``max_entries``)."""
        while self._expiry:
            key, expires_at = next(iter(self._expiry.items()))
            if expires_at > now:
                return
            del self._expiry[key]


class RedisPrefixMemory:
    """Keys in Redis with native expiry, shared by every replica: one round trip a request (``SET ... GET``
    for each key, pipelined), answering whether the key was there and recording it at once. Its calls go
    through the process's ``RedisHealth`` (component ``prefix_memory``): while Redis is down, every prefix is
    unseen at once, without waiting on Redis."""

    def __init__(
        self, url: str, *, prefix: str = "translator:prefix:", timeout: float = 2.0, health: RedisHealth | None = None
    ) -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._health = health or RedisHealth()

    async def seen(self, keys: Sequence[str], ttl: float) -> list[bool]:
        if not keys:
            return []
        try:
            previous = await self._health.call("prefix_memory", lambda: self._set_all(keys, ttl))
        except RedisDown:
            return [False] * len(keys)
        return [value is not None for value in previous]

    async def _set_all(self, keys: Sequence[str], ttl: float) -> list[object]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(self._prefix + key, b"1", px=max(1, round(ttl * 1000)), get=True)
            return list(await pipe.execute())

    async def close(self) -> None:
        await self._redis.aclose()


def make_prefix_memory(
    settings: RedisSettings, max_entries: int = 100_000, health: RedisHealth | None = None
) -> PrefixMemory:
    """Redis when a URL is configured (shared by all replicas), else process memory of ``max_entries``."""
    if settings.url:
        return RedisPrefixMemory(settings.url, timeout=settings.timeout_seconds, health=health)
    return MemoryPrefixMemory(max_entries=max_entries)
