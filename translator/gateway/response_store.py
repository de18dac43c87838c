"""Stored Responses (``store: true``): what ``previous_response_id``, ``GET /v1/responses/{id}``,
``DELETE`` and ``input_items`` read.

A stored response keeps the whole conversation it ended: the earlier turns it continued (``history``), the
request's own input items and the response itself (whose ``output`` items the next turn continues from).
It belongs to the client key that made it: another key is told it does not exist. Entries expire after a TTL;
in memory they are also bounded in total size (oldest dropped first), in Redis shared by every worker.

Unlike stickiness, losing an entry changes an answer: a store that cannot be read raises
``StoreUnavailable`` (503) rather than answering as if there were no history.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from translator.errors import ProxyOverloaded
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


class RedisResponseStore:
    """Entries in Redis with native expiry, shared by every worker."""

    def __init__(self, url: str, ttl: float, *, prefix: str = "translator:response:", timeout: float = 2.0) -> None:
        self._ttl_ms = max(1, round(ttl * 1000))
        self._prefix = prefix
        self._redis: aioredis.Redis = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def get(self, response_id: str) -> StoredResponse | None:
        try:
            data = await self._redis.get(self._prefix + response_id)
        except RedisError as exc:
            raise StoreUnavailable(f"the response store is unavailable ({exc.__class__.__name__})") from exc
        return None if data is None else StoredResponse.loads(data if isinstance(data, bytes) else data.encode())

    async def put(self, response_id: str, stored: StoredResponse) -> None:
        try:
            await self._redis.set(self._prefix + response_id, stored.dumps(), px=self._ttl_ms)
        except RedisError as exc:  # the answer has gone out: it stays unstored, and later turns are told so
            log.warning("response store unavailable", op="put", error=exc.__class__.__name__)

    async def delete(self, response_id: str) -> bool:
        try:
            return bool(await self._redis.delete(self._prefix + response_id))
        except RedisError as exc:
            raise StoreUnavailable(f"the response store is unavailable ({exc.__class__.__name__})") from exc

    async def close(self) -> None:
        await self._redis.aclose()


def make_response_store(redis_url: str, ttl: float, max_bytes: int) -> ResponseStore:
    """Redis when a URL is configured (shared by all workers), else process memory."""
    if redis_url:
        return RedisResponseStore(redis_url, ttl)
    return MemoryResponseStore(ttl, max_bytes)
