"""Redis outages: one view per process of whether Redis answers, shared by everything that uses it.

The rate limiter, the usage store, the stickiness store, the response store and the shared upstream cool-downs
each make their Redis calls through ``RedisHealth.call`` and, when it raises ``RedisDown``, take their own
fallback:

    rate limits         redis.on_error = "allow": let the request through unmetered; "deny": 503 + Retry-After
    budgets             as rate limits: "allow": the budget is not checked; "deny": 503 + Retry-After
    usage per key       not recorded (the request was served); reading it answers 503
    stickiness          no stickiness (a cache miss upstream, never a wrong answer)
    stored responses    503 in the Responses shape (an answer without its history would be a wrong answer)
    upstream cool-downs this process's own view

- An outage begins with the first call that fails (a refused connection, a timeout, an error reply): it is
  logged once, as a warning, ``translator_redis_up`` drops to 0 and ``translator_redis_outages_total`` counts it.
  It ends with the first call that succeeds: logged once, with how long it lasted and how many calls went
  without Redis, and ``translator_redis_up`` is 1 again. Nothing is logged per request in between.
- While Redis is down, calls are not even made (each could wait out its timeout): ``call`` raises ``RedisDown``
  at once. Every ``retry_seconds`` one call is let through to try again; the first that succeeds ends the outage.
- Each call that fails or is skipped counts in ``translator_redis_errors_total{component}``.

The connection settings live here too (``redis_client``), so every user of Redis gets the same timeouts, and
``RedisBackend`` is what the app holds: the settings, the shared ``RedisHealth`` and a client for readiness.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from translator.config import RedisSettings
from translator.log import log

T = TypeVar("T")

# What each component does without Redis, for the line that says an outage began (by redis.on_error).
_EFFECT = {
    "allow": "rate limits and budgets are not enforced, usage is not recorded, stickiness is off, "
             "stored responses answer 503",
    "deny": "keys with rate limits or a budget are refused (503), usage is not recorded, stickiness is off, "
            "stored responses answer 503",
}


class RedisDown(Exception):
    """Redis did not answer, or is known to be down and was not tried: take the fallback."""


class RedisHealth:
    """Whether Redis answers, learnt from the calls made through ``call``; see the module docstring.

    ``on_change(up)`` is told of each edge (the first answer or failure, then every change); ``on_error(component)``
    of each call that failed or was skipped.
    """

    def __init__(
        self,
        *,
        on_error: str = "allow",
        retry_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
        count_error: Callable[[str], None] | None = None,
    ) -> None:
        self.up: bool | None = None  # None: not tried yet
        self._policy = on_error
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._on_change = on_change or (lambda up: None)
        self._count_error = count_error or (lambda component: None)
        self._retry_at = 0.0  # while down: when the next call may try Redis again
        self._down_since = 0.0
        self._missed = 0  # calls that went without Redis in this outage

    async def call(self, component: str, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()`` unless Redis is known to be down; ``RedisDown`` when it is, or when the call fails."""
        if not self._may_try():
            self._went_without(component)
            raise RedisDown(component)
        try:
            result = await make()
        except RedisError as exc:
            self._failed(component, exc)
            raise RedisDown(component) from exc
        self._answered()
        return result

    def waiting(self) -> bool:
        """Down, and no retry due yet: a call now would be skipped."""
        return self.up is False and self._clock() < self._retry_at

    def _may_try(self) -> bool:
        if self.up is not False:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        self._retry_at = now + self._retry_seconds  # this call tries; the others wait for the next turn
        return True

    def _went_without(self, component: str) -> None:
        self._missed += 1
        self._count_error(component)

    def _failed(self, component: str, exc: RedisError) -> None:
        self._went_without(component)
        if self.up is False:
            return
        self.up = False
        now = self._clock()
        self._down_since, self._retry_at, self._missed = now, now + self._retry_seconds, 1
        log.warning("redis unavailable", component=component, error=exc.__class__.__name__,
                    on_error=self._policy, effect=_EFFECT.get(self._policy, ""))
        self._on_change(False)

    def _answered(self) -> None:
        if self.up is True:
            return
        if self.up is False:
            log.info("redis available again", down_seconds=round(self._clock() - self._down_since, 3),
                     calls_without_redis=self._missed)
        else:
            log.info("redis available")
        self.up = True
        self._on_change(True)


def redis_client(url: str, timeout: float) -> aioredis.Redis:
    """A client whose every call ends within about twice ``timeout`` (to connect, and for each reply).

    One retry, at once, on a refused, reset or timed-out connection: after a Redis restart, each pooled
    connection fails once before it is replaced, and that must not open another outage. redis-py's default
    (three retries with backoff) would hold a request for four timeouts when Redis is unreachable."""
    return aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                             retry=Retry(NoBackoff(), 1))


@dataclass
class RedisBackend:
    """What the app holds when ``redis.url`` is set: the outage view its Redis users share, and a client of
    its own for the check at start and for ``/readyz``."""

    settings: RedisSettings
    health: RedisHealth
    client: aioredis.Redis
    _checking: asyncio.Task[bool] | None = field(default=None, init=False)

    @classmethod
    def open(
        cls,
        settings: RedisSettings,
        *,
        on_change: Callable[[bool], None] | None = None,
        count_error: Callable[[str], None] | None = None,
    ) -> RedisBackend:
        health = RedisHealth(on_error=settings.on_error, retry_seconds=settings.retry_seconds,
                             on_change=on_change, count_error=count_error)
        return cls(settings, health, redis_client(settings.url, settings.timeout_seconds))

    async def check(self) -> bool:
        """Whether Redis answers a PING now (not tried while it is known down and no retry is due)."""
        try:
            await self.health.call("ping", self.client.ping)
        except RedisDown:
            return False
        return True

    def refresh(self) -> None:
        """PING in the background (one at a time, none while a retry is not due), so that ``health.up`` is
        fresh for whoever asks next: a readiness probe must answer at once, not wait out a Redis timeout."""
        if (self._checking is None or self._checking.done()) and not self.health.waiting():
            self._checking = asyncio.create_task(self.check())

    @property
    def refuses_when_down(self) -> bool:
        """``redis.on_error = "deny"``: while Redis is down, rate-limited keys are refused (and not ready)."""
        return self.settings.on_error == "deny"

    async def close(self) -> None:
        if self._checking is not None:
            await self._checking  # (ends within the client's timeouts)
        await self.client.aclose()
