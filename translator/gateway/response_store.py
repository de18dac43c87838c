"""Stored Responses (``store: true``): what ``previous_response_id``, ``GET /v1/responses/{id}``,
``DELETE`` and ``input_items`` read.

A stored response keeps the whole conversation it ended: the earlier turns it continued (``history``), the
request's own input items and the response itself (whose ``output`` items the next turn continues from).
It belongs to the client key that made it: another key is told it does not exist. Entries expire after a TTL;
in memory they are also bounded in total size (oldest dropped first), in Redis shared by every worker.

Unlike stickiness, losing an entry changes an answer: while Redis is down, reading or deleting raises
``StoreUnavailable`` (503, in the Responses shape, with Retry-After) rather than answering as if there were no
history, whatever ``redis.on_error`` says; storing is skipped (the answer has gone out). The outage is logged
once and counted (``redis_health``).
"""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.errors import ProxyOverloaded
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client
from translator.log import log


class StoreUnavailable(ProxyOverloaded):
    """The response store (Redis) did not answer: the request cannot be served as asked."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    owner: str | None  # the client key's name (None: the proxy is open)
    response: Mapping[str, Any]
    history: list[dict[str, Any]]  # the items of the turns before this one
    input: list[dict[str, Any]]  # this request's own input items

    def conversation(self) -> list[dict[str, Any]]:
        """Every item so far, as the next turn's ``previous_response_id`` continues it."""
        return [*self.history, *self.input, *self.response.get("output", [])]

    def dumps(self) -> bytes:
        return orjson.dumps({"owner": self.owner, "response": self.response, "history": self.history,
                             "input": self.input})

    @classmethod
    def loads(cls, data: bytes) -> StoredResponse:
        raw = orjson.loads(data)
        return cls(raw["owner"], raw["response"], raw["history"], raw["input"])


class ResponseStore(Protocol):
    async def get(self, response_id: str) -> StoredResponse | None: ...

    async def put(self, response_id: str, stored: StoredResponse) -> None: ...

    async def delete(self, response_id: str) -> bool:
        """Whether there was such a response."""
        ...

    async def close(self) -> None: ...


class MemoryResponseStore:
    """Entries in process memory, in the order they were stored (so also the order they expire in), bounded
    by their total encoded size: past ``max_bytes`` the oldest go first."""

    def __init__(self, ttl: float, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl, self._max_bytes, self._clock = ttl, max_bytes, clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()  # id -> (encoded, expires at)
        self._size = 0

    async def get(self, response_id: str) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._drop(response_id)
            return None
        return StoredResponse.loads(entry[0])

    async def put(self, response_id: str, stored: StoredResponse) -> None:
        data = stored.dumps()
        if len(data) > self._max_bytes:
            log.warning("response not stored: larger than responses.max_store_bytes", size=len(data))
            return
        self._drop(response_id)
        self._entries[response_id] = (data, self._clock() + self._ttl)
        self._size += len(data)
        self._evict()

    async def delete(self, response_id: str) -> bool:
        return await self.get(response_id) is not None and self._drop(response_id)

    async def close(self) -> None:
        self._entries.clear()
        self._size = 0

    def _evict(self) -> None:
        now = self._clock()
        while self._entries:
            oldest, (_, expires_at) = next(iter(self._entries.items()))
            if expires_at > now and self._size <= self._max_bytes:
                return
            self._drop(oldest)

    def _drop(self, response_id: str) -> bool:
        entry = self._entries.pop(response_id, None)
        if entry is not None:
            self._size -= len(entry[0])
        return entry is not None


_UNAVAILABLE = "the response store is unavailable; try again shortly"


class RedisResponseStore:
    """Entries in Redis with native expiry, shared by every worker."""

    def __init__(
        self,
        url: str,
        ttl: float,
        *,
        prefix: str = "translator:response:",
        timeout: float = 2.0,
        health: RedisHealth | None = None,
    ) -> None:
        self._ttl_ms = max(1, round(ttl * 1000))
        self._prefix = prefix
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._health = health or RedisHealth()

    async def get(self, response_id: str) -> StoredResponse | None:
        try:
            data = await self._health.call("responses", lambda: self._redis.get(self._prefix + response_id))
        except RedisDown as exc:
            raise StoreUnavailable(_UNAVAILABLE) from exc
        return None if data is None else StoredResponse.loads(data if isinstance(data, bytes) else data.encode())

    async def put(self, response_id: str, stored: StoredResponse) -> None:
        data = stored.dumps()
        # (on failure the answer has gone out: it stays unstored, and a later turn is told it does not exist)
        with contextlib.suppress(RedisDown):
            await self._health.call("responses", lambda: self._redis.set(self._prefix + response_id, data,
                                                                         px=self._ttl_ms))

    async def delete(self, response_id: str) -> bool:
        try:
            return bool(await self._health.call("responses", lambda: self._redis.delete(self._prefix + response_id)))
        except RedisDown as exc:
            raise StoreUnavailable(_UNAVAILABLE) from exc

    async def close(self) -> None:
        await self._redis.aclose()


def make_response_store(
    redis: RedisSettings, ttl: float, max_bytes: int, health: RedisHealth | None = None
) -> ResponseStore:
    """Redis when a URL is configured (shared by all workers), else process memory."""
    if redis.url:
        return RedisResponseStore(redis.url, ttl, timeout=redis.timeout_seconds, health=health)
    return MemoryResponseStore(ttl, max_bytes)
