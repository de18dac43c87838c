"""Conversation stickiness: remember which upstream served a conversation so its next turn goes there too.

Claude's prompt cache lives with an upstream (account, region), so sending a conversation's later turns to the
same upstream keeps its cache warm. The mapping is advisory: losing it costs a cache miss, never a wrong answer.
That is why ``RedisStickyStore`` degrades to "no stickiness" (``get`` returns None, ``set`` does nothing) while
Redis is down, whatever ``redis.on_error`` says; the outage is logged once and counted (``redis_health``).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client


class StickyStore(Protocol):
    async def get(self, session: str) -> str | None:
        """The upstream this session last went to, if remembered and not expired."""
        ...

    async def set(self, session: str, upstream: str, ttl: float) -> None:
        """Remember ``upstream`` for ``session`` for ``ttl`` seconds (a ttl <= 0 forgets it)."""
        ...

    async def close(self) -> None: ...


class MemoryStickyStore:
    """A bounded TTL map in process memory.

    Entries are kept in the order they were last set. With equal TTLs that is also the order they expire in, so
    evicting the front when full drops the entry closest to expiring anyway, and purging expired entries from the
    front is cheap. ``get`` does not refresh an entry: its lifetime is the TTL its last ``set`` gave it.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._clock = clock
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()  # session -> (upstream, expires at)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, session: str) -> str | None:
        entry = self._entries.get(session)
        if entry is None:
            return None
        upstream, expires_at = entry
        if expires_at <= self._clock():
            del self._entries[session]
            return None
        return upstream

    async def set(self, session: str, upstream: str, ttl: float) -> None:
        self._entries.pop(session, None)
        if ttl <= 0:
            return
        now = self._clock()
        self._purge_expired(now)
        self._entries[session] = (upstream, now + ttl)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def close(self) -> None:
        self._entries.clear()

    def _purge_expired(self, now: float) -> None:
        """Drop expired entries at the front; stops at the first live one (entries behind it may still linger
        until read or evicted, which only costs memory within ``max_entries``)."""
        while self._entries:
            _, (_, expires_at) = next(iter(self._entries.items()))
            if expires_at > now:
                return
            self._entries.popitem(last=False)


class RedisStickyStore:
    """Sessions in Redis with native expiry, shared by every worker. Session ids are hashed into the key name,
    so arbitrary client-chosen strings cannot make huge keys or collide with other prefixes."""

    def __init__(
        self, url: str, *, prefix: str = "translator:sticky:", timeout: float = 2.0, health: RedisHealth | None = None
    ) -> None:
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._health = health or RedisHealth()

    async def get(self, session: str) -> str | None:
        try:
            value = await self._health.call("sticky", lambda: self._redis.get(self._key(session)))
        except RedisDown:
            return None
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def set(self, session: str, upstream: str, ttl: float) -> None:
        key = self._key(session)
        with contextlib.suppress(RedisDown):
            if ttl <= 0:
                await self._health.call("sticky", lambda: self._redis.delete(key))
            else:
                await self._health.call("sticky", lambda: self._redis.set(key, upstream, px=max(1, round(ttl * 1000))))

    async def close(self) -> None:
        await self._redis.aclose()

    def _key(self, session: str) -> str:
        return self._prefix + hashlib.sha256(session.encode("utf-8", "surrogatepass")).hexdigest()


def make_sticky_store(settings: RedisSettings, health: RedisHealth | None = None) -> StickyStore:
    """Redis when a URL is configured (shared by all workers), else process memory."""
    if settings.url:
        return RedisStickyStore(settings.url, timeout=settings.timeout_seconds, health=health)
    return MemoryStickyStore()
