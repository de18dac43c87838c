"""Usage per client key, model and UTC day: requests, tokens (input, output, cache read, cache write) and cost.

Every request a key was admitted for is recorded when it ends (``record``), with the tokens it used, even when
a stream ended early, and its cost (``translator.gateway.prices``). Three readers:

- ``rows(since, until, key)``: the table behind ``GET /v1/usage`` and ``translator usage``;
- ``spent(key, period, now)``: what a key used so far in its budget's UTC day or month, checked at admission;
- the Prometheus counters, kept apart in ``translator.gateway.metrics``.

``MemoryUsageStore`` keeps the days in this process, bounded by ``retention_days`` and ``max_rows`` (past it,
the oldest day goes). ``RedisUsageStore`` keeps them in Redis, shared by every replica, for ``retention_days``
(a TTL on each day's hash):

- ``{prefix}:day:<YYYY-MM-DD>``: a hash, one field per (key, model, count), field names JSON
  ``[key, model, count]`` so no name can break another apart;
- ``{prefix}:spent:<YYYY-MM-DD or YYYY-MM>``: a hash, fields JSON ``[key, "tokens" | "cost_usd"]``: the
  running totals a budget check reads in one round trip.

Both are written in one MULTI/EXEC per request, in the background (``record_soon``: a response is never held
for it). Redis calls go through the app's shared outage view (``translator.gateway.redis_health``): while Redis
does not answer, recording is skipped (the request was served; the outage is logged once, not per request),
budget checks follow ``redis.on_error`` as the rate limiter does ("allow": not enforced; "deny": 503
``UsageUnavailable`` with Retry-After), and reading the table answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import orjson
import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.errors import ProxyOverloaded
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client

Period = Literal["day", "month"]
RETENTION_DAYS = 90
MAX_ROWS = 100_000  # in memory: (day, key, model) rows kept at most
NO_KEY = "-"  # the key name of requests to an open proxy (no [[keys]])


class UsageUnavailable(ProxyOverloaded):
    """The usage store (Redis) did not answer: a budget check under ``redis.on_error = "deny"`` (refused rather
    than let through unmetered, as the rate limiter does), or a read of the usage table. 503, with the
    Retry-After every ``ProxyOverloaded`` carries."""

    claude_type = "api_error"


def _count(value: Any) -> int:
    """A token count as the upstream reported it; anything but a non-negative integer counts as 0."""
    return value if type(value) is int and value > 0 else 0  # (type: a bool is no count)


@dataclass(frozen=True, slots=True)
class Counts:
    """What some requests used. The field names are the wire names of ``GET /v1/usage`` (Claude's)."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cost_usd: float = 0.0

    @classmethod
    def from_claude(cls, usage: object, requests: int = 0, cost_usd: float = 0.0) -> Counts:
        """The token counts of a usage in Claude's shape (none at all: zeros), for ``requests`` requests that
        cost ``cost_usd``."""
        if not isinstance(usage, dict):
            return cls(requests, cost_usd=cost_usd)
        return cls(
            requests,
            _count(usage.get("input_tokens")),
            _count(usage.get("output_tokens")),
            _count(usage.get("cache_read_input_tokens")),
            _count(usage.get("cache_creation_input_tokens")),
            cost_usd,
        )

    @property
    def tokens(self) -> int:
        """Every token, cached input included: what ``budget_tokens`` counts (as ``tpm`` does)."""
        return (self.input_tokens + self.output_tokens + self.cache_read_input_tokens
                + self.cache_creation_input_tokens)

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cost_usd + other.cost_usd,
        )

    def as_dict(self) -> dict[str, int | float]:
        """For JSON: the cost rounded to 1e-8 USD (the cheapest token's price is 1e-8), float noise gone."""
        return {**{name: getattr(self, name) for name in FIELDS}, "cost_usd": round(self.cost_usd, 8)}


FIELDS = tuple(f.name for f in fields(Counts))


@dataclass(frozen=True, slots=True)
class Spent:
    """What a key used in a budget's period: every token (cached input included) and the cost."""

    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Row:
    """One (UTC day, key, model) of the usage table."""

    date: dt.date
    key: str
    model: str
    counts: Counts

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "key": self.key, "model": self.model, **self.counts.as_dict()}


def period_name(period: Period, now: dt.datetime) -> str:
    """The UTC day (``2026-12-07``) or month (``2026-12``) ``now`` falls in."""
    day = now.astimezone(dt.UTC).date()
    return day.isoformat() if period == "day" else day.isoformat()[:7]


def period_end(period: Period, now: dt.datetime) -> dt.datetime:
    """When the UTC day or month ``now`` falls in ends: a budget starts afresh then."""
    day = now.astimezone(dt.UTC).date()
    next_month = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    end = day + dt.timedelta(days=1) if period == "day" else next_month
    return dt.datetime.combine(end, dt.time(), dt.UTC)


def days(since: dt.date, until: dt.date) -> Iterator[dt.date]:
    day = since
    while day <= until:
        yield day
        day += dt.timedelta(days=1)


class UsageStore(Protocol):
    async def record(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        """Add one request's counts to its key's and model's row for the UTC day of ``now``."""
        ...

    def record_soon(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        """``record`` without waiting for it (what a request does as it ends); ``close`` waits for it."""
        ...

    async def spent(self, key: str, period: Period, now: dt.datetime) -> Spent | None:
        """The key's tokens and cost in the UTC day or month of ``now``; None when the store does not answer
        and ``redis.on_error`` is "allow" (the budget is then not enforced)."""
        ...

    async def rows(self, since: dt.date, until: dt.date, key: str | None = None) -> list[Row]:
        """The rows from ``since`` to ``until`` (UTC days, both included), by day, key and model."""
        ...

    async def close(self) -> None: ...


# ---- in process memory ------------------------------------------------------------------------------------------


class MemoryUsageStore:
    """The usage table in this process: one worker's view (with ``--workers`` or replicas, use Redis).

    Beside the rows it keeps each key's running total per day and month, so a budget check does not sum
    rows; a period's totals go when none of its days is left."""

    def __init__(self, *, retention_days: int = RETENTION_DAYS, max_rows: int = MAX_ROWS) -> None:
        self._retention = dt.timedelta(days=retention_days)
        self._max_rows = max_rows
        self._days: dict[dt.date, dict[tuple[str, str], Counts]] = {}
        self._size = 0
        self._spent: dict[str, dict[str, Spent]] = {}  # period name (day or month) -> key -> its total

    async def record(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        self.record_soon(key, model, counts, now)

    def record_soon(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        """(At once: memory does not wait.)"""
        day = now.astimezone(dt.UTC).date()
        new_day = day not in self._days
        table = self._days.setdefault(day, {})
        before = table.get((key, model))
        table[(key, model)] = counts if before is None else before + counts
        self._size += before is None
        for period in ("day", "month"):
            totals = self._spent.setdefault(period_name(period, now), {})
            spent = totals.get(key, Spent())
            totals[key] = Spent(spent.tokens + counts.tokens, spent.cost_usd + counts.cost_usd)
        if new_day or self._size > self._max_rows:
            self._forget(day)

    def _forget(self, today: dt.date) -> None:
        """Days past retention go, then the oldest days while the table is over ``max_rows``."""
        for day in sorted(self._days):
            if day > today - self._retention and (self._size <= self._max_rows or day == today):
                break
            self._size -= len(self._days.pop(day))
        kept = {name for day in self._days for name in (day.isoformat(), day.isoformat()[:7])}
        for name in [name for name in self._spent if name not in kept]:
            del self._spent[name]

    async def spent(self, key: str, period: Period, now: dt.datetime) -> Spent:
        return self._spent.get(period_name(period, now), {}).get(key, Spent())

    async def rows(self, since: dt.date, until: dt.date, key: str | None = None) -> list[Row]:
        return [
            Row(day, row_key, model, counts)
            for day in sorted(self._days) if since <= day <= until
            for (row_key, model), counts in sorted(self._days[day].items())
            if key is None or row_key == key
        ]

    async def close(self) -> None:
        self._days.clear()
        self._spent.clear()
        self._size = 0


# ---- Redis -------------------------------------------------------------------------------------------------------


def _field(*parts: str) -> bytes:
    return orjson.dumps(list(parts))


class RedisUsageStore:
    """The usage table in Redis: every replica and worker records into it, and budgets see their sum.

    Its calls go through ``health`` (the outage view shared with the app's other Redis users, see
    ``redis_health``): while Redis does not answer, ``record`` drops the request's usage without a word (the
    outage is logged once, and each call counted in ``translator_redis_errors_total{component="usage"}``),
    ``spent`` follows ``on_error`` ("allow": None, the budget is not enforced; "deny": ``UsageUnavailable``),
    and ``rows`` raises ``UsageUnavailable``."""

    def __init__(
        self, url: str, *, prefix: str = "translator:usage", retention_days: int = RETENTION_DAYS,
        timeout: float = 5.0, on_error: str = "allow", health: RedisHealth | None = None,
    ) -> None:
        self._prefix = prefix
        self._ttl = dt.timedelta(days=retention_days + 1)  # a day's hash outlives its last write by retention
        self._retention = dt.timedelta(days=retention_days)
        self._on_error = on_error
        self._health = health or RedisHealth(on_error=on_error)
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._pending: set[asyncio.Task[None]] = set()

    async def record(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        """Shielded, so a caller cancelled (a departing client) still records what it used."""
        await asyncio.shield(self._start(key, model, counts, now))

    def record_soon(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        """``record`` in the background: a response is not held for the write (nor while Redis does not
        answer). Kept until it ends, and ``close`` waits for it, so no usage is lost at shutdown."""
        self._start(key, model, counts, now)

    def _start(self, key: str, model: str, counts: Counts, now: dt.datetime) -> asyncio.Task[None]:
        task = asyncio.create_task(self._send_record(key, model, counts, now))
        self._pending.add(task)  # the loop holds tasks weakly: keep it alive until it ends
        task.add_done_callback(self._pending.discard)
        return task

    async def _send_record(self, key: str, model: str, counts: Counts, now: dt.datetime) -> None:
        day_key = f"{self._prefix}:day:{period_name('day', now)}"
        pipe = self._redis.pipeline(transaction=True)
        for name in FIELDS:
            value = getattr(counts, name)
            if value:
                _increment(pipe, day_key, _field(key, model, name), value)
        pipe.expire(day_key, self._ttl)
        for period in ("day", "month"):
            spent_key = f"{self._prefix}:spent:{period_name(period, now)}"
            pipe.hincrby(spent_key, _field(key, "tokens"), counts.tokens)
            pipe.hincrbyfloat(spent_key, _field(key, "cost_usd"), counts.cost_usd)
            pipe.expire(spent_key, self._ttl)
        with contextlib.suppress(RedisDown):  # the request was served; the outage is logged once and counted
            await self._health.call("usage", pipe.execute)

    async def spent(self, key: str, period: Period, now: dt.datetime) -> Spent | None:
        spent_key = f"{self._prefix}:spent:{period_name(period, now)}"
        fields_ = [_field(key, "tokens"), _field(key, "cost_usd")]
        try:
            tokens, cost = await self._health.call("usage", lambda: self._redis.hmget(spent_key, fields_))
        except RedisDown as exc:
            if self._on_error == "deny":
                raise _unavailable(exc) from exc
            return None  # "allow": the request goes through, unmetered by its budget
        return Spent(int(tokens or 0), float(cost or 0))

    async def rows(self, since: dt.date, until: dt.date, key: str | None = None) -> list[Row]:
        since = max(since, until - self._retention)  # nothing older is kept: spare the round trips
        listed = list(days(since, until))
        pipe = self._redis.pipeline(transaction=False)
        for day in listed:
            pipe.hgetall(f"{self._prefix}:day:{day.isoformat()}")
        try:
            hashes = await self._health.call("usage", pipe.execute)
        except RedisDown as exc:
            raise _unavailable(exc) from exc
        found = []
        for day, table in zip(listed, hashes, strict=True):
            found += [row for row in _rows(day, table) if key is None or row.key == key]
        return found

    async def close(self) -> None:
        """Waits for the writes still in flight (each ends within the client's timeouts), then closes."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()


def _unavailable(exc: RedisDown) -> UsageUnavailable:
    cause = exc.__cause__
    why = cause.__class__.__name__ if cause is not None else "down, not tried"
    return UsageUnavailable(f"usage store unavailable: {why}")


def _increment(pipe: Any, name: str, field: bytes, value: int | float) -> None:
    if isinstance(value, float):
        pipe.hincrbyfloat(name, field, value)
    else:
        pipe.hincrby(name, field, value)


def _rows(day: dt.date, table: dict[bytes, bytes]) -> list[Row]:
    """One day's hash as its rows, sorted by key and model (fields not of ours are skipped)."""
    values: dict[tuple[str, str], dict[str, Any]] = {}
    for raw_field, raw_value in table.items():
        parts = orjson.loads(raw_field)
        if not (isinstance(parts, list) and len(parts) == 3 and parts[2] in FIELDS):
            continue
        key, model, name = parts
        values.setdefault((key, model), {})[name] = float(raw_value) if name == "cost_usd" else int(raw_value)
    return [Row(day, key, model, Counts(**counts)) for (key, model), counts in sorted(values.items())]


def make_usage_store(settings: RedisSettings, health: RedisHealth | None = None) -> UsageStore:
    """Redis when a URL is configured (usage shared by all replicas), else process memory. ``health``: the
    outage view shared with the app's other Redis users."""
    if settings.url:
        return RedisUsageStore(settings.url, timeout=settings.timeout_seconds, on_error=settings.on_error,
                               health=health)
    return MemoryUsageStore()
