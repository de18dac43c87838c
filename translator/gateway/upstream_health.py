"""Upstream cool-downs shared through Redis, so that every worker and replica keeps away from an upstream that
one of them found failing (the router, ``translator.router``, decides when; this module only shares it).

A cool-down is one key per upstream, ``translator:cooldown:<name>``, whose expiry (PX) is the cool-down's length:
a reader learns what is left from PTTL, so no two hosts' clocks are ever compared. Publishing keeps a longer
cool-down already there (one Lua script); an upstream that answers again is cleared for all (DEL).
Readers take the keys in one pipelined round trip at most every ``refresh_seconds``, and in between reuse what
they read, so a request costs no Redis call of its own.

What stays per process: the count of consecutive failures that starts a cool-down, and the probe after one
(each process sends its own). While Redis is down each process has only its own view (``redis_health``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client

# KEYS: the upstream's cool-down key.  ARGV: its length in ms.  A longer cool-down already set is kept.
_PUBLISH = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class SharedCooldowns:
    def __init__(
        self,
        url: str,
        names: list[str],
        *,
        prefix: str = "translator:cooldown:",
        timeout: float = 2.0,
        refresh_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        health: RedisHealth | None = None,
    ) -> None:
        self._names = names
        self._prefix = prefix
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._health = health or RedisHealth()
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._publish = self._redis.register_script(_PUBLISH)
        self._read_at = -float("inf")
        self._until: dict[str, float] = {}  # upstream -> end of its shared cool-down, on our clock

    async def publish(self, name: str, seconds: float) -> None:
        """Every process is to keep away from ``name`` for ``seconds`` (unless one already keeps away longer)."""
        ms = max(1, round(seconds * 1000))
        with contextlib.suppress(RedisDown):
            await self._health.call("upstream_health", lambda: self._publish(keys=[self._key(name)], args=[ms]))

    async def clear(self, name: str) -> None:
        """``name`` answered again: its cool-down ends for everyone."""
        self._until.pop(name, None)
        with contextlib.suppress(RedisDown):
            await self._health.call("upstream_health", lambda: self._redis.delete(self._key(name)))

    async def remaining(self) -> dict[str, float]:
        """Seconds left of each upstream's shared cool-down (those cooling down only), read from Redis at most
        every ``refresh_seconds``; while Redis is down, what was last read."""
        now = self._clock()
        if now >= self._read_at + self._refresh_seconds:
            self._read_at = now  # requests meanwhile reuse the last reading
            with contextlib.suppress(RedisDown):
                lefts = await self._health.call("upstream_health", self._read)
                self._until = {name: now + ms / 1000 for name, ms in zip(self._names, lefts, strict=True) if ms > 0}
        now = self._clock()
        return {name: until - now for name, until in self._until.items() if until > now}

    async def close(self) -> None:
        await self._redis.aclose()

    async def _read(self) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in self._names:
                pipe.pttl(self._key(name))  # -2: no such key (no cool-down); -1 cannot happen (always set with PX)
            return [int(ms) for ms in await pipe.execute()]

    def _key(self, name: str) -> str:
        return self._prefix + name


def make_shared_cooldowns(
    settings: RedisSettings, names: list[str], health: RedisHealth | None = None
) -> SharedCooldowns | None:
    """Shared through Redis when a URL is configured; else None (each process keeps its own)."""
    if not settings.url:
        return None
    return SharedCooldowns(settings.url, names, timeout=settings.timeout_seconds, health=health)
