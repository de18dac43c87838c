"""Per-key rate limits: requests per minute, tokens per minute, and requests in flight.

Algorithm (both backends, identical semantics): a **sliding log** over the last 60 seconds. Each admitted request
leaves its timestamp; each finished request leaves ``(timestamp, tokens)``. At time ``now`` an entry counts while
its timestamp is ``> now - 60``. A sliding log is exact, with no burst of 2x at a fixed window's edge, and its
memory is bounded by the rate itself (at most ``rpm`` request entries per key).

- requests: refused when ``rpm`` requests were admitted in the window; Retry-After is when the oldest leaves it.
- tokens: tokens are only known when a request ends, so ``release`` records them; a request is refused when the
  tokens recorded in the window already reach ``tpm``. Retry-After is when enough old entries leave the window to
  bring the total below ``tpm``. (Requests in flight are not counted, so a burst can overshoot ``tpm`` once.)
- concurrency: each admitted request holds a lease until ``release``. A lease not released within ``lease_ttl``
  (a crashed worker, a bug) expires, so a slot can never leak forever. Retry-After is 1 s: a slot frees whenever
  any request ends, which no window predicts.

A refused request consumes nothing. When several limits refuse at once, Retry-After is the longest of their waits
(retrying sooner would only be refused again) and the message names that limit.

``MemoryRateLimiter`` keeps the log in process memory (one process); ``RedisRateLimiter`` keeps it in Redis,
shared by every worker and host, checked and updated atomically by one Lua script per call. While Redis does not
answer, ``redis.on_error`` decides: "allow" lets requests through unmetered (their tokens are not recorded),
"deny" refuses them with ``LimiterUnavailable`` (503, Retry-After). See ``redis_health`` for how an outage is
noticed, logged once and counted.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis

from translator.config import RedisSettings
from translator.errors import ProxyOverloaded, RateLimited
from translator.gateway.keys import ClientKey
from translator.gateway.redis_health import RedisDown, RedisHealth, redis_client

WINDOW = 60.0  # seconds: every limit here is "per minute"
LEASE_TTL = 3600.0  # a lease older than this is presumed leaked; longer than any upstream call may take
CONCURRENCY_RETRY_AFTER = 1


class RateLimitExceeded(RateLimited):
    """A key went over one of its limits. ``limit`` is "requests", "tokens", or "concurrency" (for metrics)."""

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str], key_name: str, limit: str):
        super().__init__(message, retry_after=retry_after, headers=headers)
        self.key_name = key_name
        self.limit = limit


class LimiterUnavailable(ProxyOverloaded):
    """The shared limit store (Redis) did not answer and ``redis.on_error`` is "deny": the request is refused
    (503, with the Retry-After every ``ProxyOverloaded`` carries) rather than let through unmetered."""

    claude_type = "api_error"


@dataclass
class Lease:
    """One admitted request: hand it back to ``release`` exactly once (later calls are ignored)."""

    key: ClientKey
    id: str
    headers: dict[str, str] = field(default_factory=dict)  # the x-ratelimit-* state when it was admitted
    released: bool = False
    unmetered: bool = False  # let through while the limit store was down ("allow"): nothing to release


class RateLimiter(Protocol):
    async def acquire(self, key: ClientKey) -> Lease:
        """Admit one request for ``key`` or raise ``RateLimitExceeded`` (a ``RateLimited``, HTTP 429)."""
        ...

    async def release(self, lease: Lease, tokens: int) -> None:
        """Free the lease's concurrency slot and count ``tokens`` (input + output) against the key's tpm."""
        ...

    def headers(self, lease: Lease) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` response headers for the limits this key has."""
        ...

    async def close(self) -> None: ...


# ---- shared decision logic --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """A key's state inside the window at ``now``, before this request is counted."""

    now: float
    requests: int = 0
    oldest_request: float | None = None  # timestamp of the oldest request in the window
    tokens: int = 0
    oldest_tokens: float | None = None  # timestamp of the oldest token entry in the window
    tokens_free_at: float | None = None  # timestamp of the entry whose expiry brings tokens below tpm
    in_flight: int = 0


def refusal(key: ClientKey, usage: Usage) -> RateLimitExceeded | None:
    """The error to raise if any limit refuses this request, else None."""
    waits: list[tuple[float, str, str]] = []
    if key.rpm is not None and usage.requests >= key.rpm:
        waits.append((_until_expiry(usage.oldest_request, usage.now), "requests", f"{key.rpm} requests per minute"))
    if key.tpm is not None and usage.tokens >= key.tpm:
        waits.append((_until_expiry(usage.tokens_free_at, usage.now), "tokens", f"{key.tpm} tokens per minute"))
    if key.concurrency is not None and usage.in_flight >= key.concurrency:
        waits.append((CONCURRENCY_RETRY_AFTER, "concurrency", f"{key.concurrency} concurrent requests"))
    if not waits:
        return None
    wait, limit, what = max(waits, key=lambda w: w[0])
    retry_after = max(1, _ceil_seconds(wait))
    headers = {**usage_headers(key, usage, admitted=False), "Retry-After": str(retry_after)}
    return RateLimitExceeded(
        f"rate limit: {what} for key '{key.name}'",
        retry_after=retry_after, headers=headers, key_name=key.name, limit=limit,
    )


def usage_headers(key: ClientKey, usage: Usage, *, admitted: bool) -> dict[str, str]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; reset is when remaining next goes up."""
    headers: dict[str, str] = {}
    if key.rpm is not None:
        used = usage.requests + (1 if admitted else 0)
        oldest = usage.oldest_request if usage.oldest_request is not None else (usage.now if admitted else None)
        headers["x-ratelimit-limit-requests"] = str(key.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, key.rpm - used))
        headers["x-ratelimit-reset-requests"] = _duration(_until_expiry(oldest, usage.now))
    if key.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, key.tpm - usage.tokens))
        free_at = usage.tokens_free_at if usage.tokens >= key.tpm else usage.oldest_tokens
        headers["x-ratelimit-reset-tokens"] = _duration(_until_expiry(free_at, usage.now))
    return headers


def _until_expiry(timestamp: float | None, now: float) -> float:
    """Seconds until an entry made at ``timestamp`` leaves the window (0 when there is none)."""
    return 0.0 if timestamp is None else max(0.0, timestamp + WINDOW - now)


def _ceil_seconds(seconds: float) -> int:
    # Rounding to milliseconds first keeps float noise (30.0000000001) from adding a whole second.
    return math.ceil(round(seconds, 3))


def _duration(seconds: float) -> str:
    """OpenAI's reset format, whole seconds: "12s"."""
    return f"{_ceil_seconds(seconds)}s"


def _new_lease_id() -> str:
    return uuid.uuid4().hex


# ---- in process memory ------------------------------------------------------------------------------------------


@dataclass
class _KeyLog:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_total: int = 0
    leases: dict[str, float] = field(default_factory=dict)  # lease id -> expiry


class MemoryRateLimiter:
    """Sliding 60 s log per key in this process. Correct for one process; use Redis for several workers.

    asyncio runs one coroutine at a time and nothing here awaits, so each check-and-record is atomic.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, lease_ttl: float = LEASE_TTL) -> None:
        self._clock = clock
        self._lease_ttl = lease_ttl
        self._logs: dict[str, _KeyLog] = {}  # by key hash: bounded by the configured keys

    async def acquire(self, key: ClientKey) -> Lease:
        if not key.has_limits:
            return Lease(key=key, id=_new_lease_id())
        now = self._clock()
        entry = self._logs.setdefault(key.key_hash, _KeyLog())
        usage = self._usage(key, entry, now)
        error = refusal(key, usage)
        if error is not None:
            raise error
        lease = Lease(key=key, id=_new_lease_id(), headers=usage_headers(key, usage, admitted=True))
        if key.rpm is not None:
            entry.requests.append(now)
        if key.concurrency is not None:
            entry.leases[lease.id] = now + self._lease_ttl
        return lease

    async def release(self, lease: Lease, tokens: int) -> None:
        if lease.released:
            return
        lease.released = True
        entry = self._logs.get(lease.key.key_hash)
        if entry is None:
            return
        entry.leases.pop(lease.id, None)
        if lease.key.tpm is not None and tokens > 0:
            entry.tokens.append((self._clock(), tokens))
            entry.token_total += tokens

    def headers(self, lease: Lease) -> dict[str, str]:
        return dict(lease.headers)

    async def close(self) -> None:
        self._logs.clear()

    def _usage(self, key: ClientKey, entry: _KeyLog, now: float) -> Usage:
        cutoff = now - WINDOW
        _prune(entry, cutoff, now)
        free_at = _tokens_free_at(entry.tokens, entry.token_total, key.tpm)
        return Usage(
            now=now,
            requests=len(entry.requests),
            oldest_request=entry.requests[0] if entry.requests else None,
            tokens=entry.token_total,
            oldest_tokens=entry.tokens[0][0] if entry.tokens else None,
            tokens_free_at=free_at,
            in_flight=len(entry.leases),
        )


def _prune(entry: _KeyLog, cutoff: float, now: float) -> None:
    """Drop entries at or before ``cutoff`` and leases past their expiry."""
    while entry.requests and entry.requests[0] <= cutoff:
        entry.requests.popleft()
    while entry.tokens and entry.tokens[0][0] <= cutoff:
        entry.token_total -= entry.tokens.popleft()[1]
    for lease_id in [i for i, expiry in entry.leases.items() if expiry <= now]:
        del entry.leases[lease_id]


def _tokens_free_at(log_: deque[tuple[float, int]], total: int, tpm: int | None) -> float | None:
    """Timestamp of the entry whose expiry brings the total below tpm (None when already below)."""
    if tpm is None or total < tpm:
        return None
    for stamp, tokens in log_:
        total -= tokens
        if total < tpm:
            return stamp
    return None  # unreachable: an empty log has total 0 < tpm


# ---- Redis -------------------------------------------------------------------------------------------------------

# KEYS: requests zset, tokens zset, token total, leases zset  (all under one {hash tag}: Redis Cluster safe)
# ARGV: now, cutoff, rpm, tpm, concurrency (0 = no limit), lease id, lease expiry, window ms, lease ttl ms
# Token entries are members "<lease id>:<tokens>" scored by time; the total is kept beside them so acquire does
# not sum the log, and rebuilt from the log if it ever goes missing. Scores go in as the caller's strings so Lua's
# 14-digit number formatting never rounds a timestamp; they come back as strings for the same reason.
_ACQUIRE = """
local now, cutoff = ARGV[1], ARGV[2]
local rpm, tpm, conc = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local id, lease_expiry = ARGV[6], ARGV[7]
local window_ms, lease_ttl_ms = tonumber(ARGV[8]), tonumber(ARGV[9])

local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
local function oldest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return first[2] or ''
end

local requests, oldest_request = 0, ''
if rpm > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
  requests = redis.call('ZCARD', KEYS[1])
  oldest_request = oldest(KEYS[1])
end

local tokens, oldest_tokens, free_at = 0, '', ''
if tpm > 0 then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
  local total = redis.call('GET', KEYS[3])
  if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('DEL', KEYS[3])
  elseif total then
    local gone = 0
    for _, m in ipairs(expired) do gone = gone + tokens_of(m) end
    tokens = math.max(0, tonumber(total) - gone)
    if gone > 0 then redis.call('SET', KEYS[3], tokens, 'KEEPTTL') end
  else
    for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do tokens = tokens + tokens_of(m) end
    redis.call('SET', KEYS[3], tokens, 'PX', window_ms)
  end
  oldest_tokens = oldest(KEYS[2])
  if tokens >= tpm then
    local left = tokens
    local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = 1, #entries, 2 do
      left = left - tokens_of(entries[i])
      if left < tpm then free_at = entries[i + 1]; break end
    end
  end
end

local in_flight = 0
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  in_flight = redis.call('ZCARD', KEYS[4])
end

local refused = (rpm > 0 and requests >= rpm) or (tpm > 0 and tokens >= tpm) or (conc > 0 and in_flight >= conc)
if not refused then
  if rpm > 0 then
    redis.call('ZADD', KEYS[1], now, id)
    redis.call('PEXPIRE', KEYS[1], window_ms)
  end
  if conc > 0 then
    redis.call('ZADD', KEYS[4], lease_expiry, id)
    redis.call('PEXPIRE', KEYS[4], lease_ttl_ms)
  end
end
return {requests, oldest_request, tokens, oldest_tokens, free_at, in_flight}
"""

# KEYS: tokens zset, token total, leases zset.  ARGV: now, lease id, tokens (0 = none to record), window ms
# Idempotent, so a release sent again after a timeout (which may have run after all) counts its tokens once.
_RELEASE = """
local now, id, tokens, window_ms = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREM', KEYS[3], id)
if tokens > 0 and redis.call('ZADD', KEYS[1], now, id .. ':' .. tokens) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then
    redis.call('INCRBY', KEYS[2], tokens)
  else
    local total = 0
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
      total = total + tonumber(string.match(m, ':(%d+)$'))
    end
    redis.call('SET', KEYS[2], total)
  end
  redis.call('PEXPIRE', KEYS[1], window_ms)
  redis.call('PEXPIRE', KEYS[2], window_ms)
end
return 1
"""


class RedisRateLimiter:
    """The same sliding log in Redis, so every worker process and host shares each key's limits.

    Every call is one Lua script (atomic in Redis). All keys carry TTLs refreshed on write: the logs live one
    window past their last entry, the leases ``lease_ttl`` past the last admission, so idle keys vanish.
    Timestamps come from ``clock`` (wall time by default, so hosts agree to within their NTP skew).
    If Redis does not answer, ``acquire`` follows ``on_error``: "allow" admits the request unmetered, "deny"
    raises ``LimiterUnavailable`` (503). A release that fails is kept and sent again by the first ``acquire``
    after Redis answers again, so a short outage does not hold a key's concurrency slots for ``lease_ttl``
    (only releases of leases taken before the outage can fail: that many at most). ``health`` is the outage
    view shared with the app's other Redis users.
    """

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.time,
        *,
        lease_ttl: float = LEASE_TTL,
        prefix: str = "translator:rl",
        timeout: float = 5.0,
        on_error: str = "allow",
        health: RedisHealth | None = None,
    ) -> None:
        self._clock = clock
        self._lease_ttl = lease_ttl
        self._prefix = prefix
        self._on_error = on_error
        self._health = health or RedisHealth(on_error=on_error)
        self._redis: aioredis.Redis = redis_client(url, timeout)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._release = self._redis.register_script(_RELEASE)
        self._pending: set[asyncio.Task[None]] = set()
        self._unsent: list[tuple[list[str], list[str | int]]] = []  # releases that failed: (keys, args)

    async def acquire(self, key: ClientKey) -> Lease:
        if not key.has_limits:
            return Lease(key=key, id=_new_lease_id())
        now = self._clock()
        lease_id = _new_lease_id()
        args: list[str | int] = [
            repr(now), repr(now - WINDOW), key.rpm or 0, key.tpm or 0, key.concurrency or 0,
            lease_id, repr(now + self._lease_ttl), _ms(WINDOW), _ms(self._lease_ttl),
        ]
        await self._resend_releases()
        try:
            reply = await self._health.call("ratelimit", lambda: self._acquire(keys=self._keys(key), args=args))
        except RedisDown:
            return self._without_store(key, lease_id)
        usage = _usage_from_reply(now, reply)
        error = refusal(key, usage)
        if error is not None:
            raise error
        return Lease(key=key, id=lease_id, headers=usage_headers(key, usage, admitted=True))

    def _without_store(self, key: ClientKey, lease_id: str) -> Lease:
        """Redis is down: refuse ("deny") or admit without limits ("allow")."""
        if self._on_error == "deny":
            raise LimiterUnavailable("rate limits cannot be checked: the rate limit store is unavailable")
        return Lease(key=key, id=lease_id, unmetered=True)

    async def release(self, lease: Lease, tokens: int) -> None:
        """Shielded, so a handler cancelled by a departing client still frees its slot. A failure is not
        raised (the request has already been served): the release is kept and sent again once Redis answers."""
        if lease.released or lease.unmetered:
            return
        lease.released = True
        recorded = tokens if lease.key.tpm is not None and tokens > 0 else 0
        if lease.key.concurrency is None and not recorded:
            return  # nothing to free and nothing to record: spare the round trip
        task = asyncio.create_task(self._send_release(lease, recorded))
        self._pending.add(task)  # the loop holds tasks weakly: keep it alive even if our caller is cancelled
        task.add_done_callback(self._pending.discard)
        await asyncio.shield(task)

    async def _send_release(self, lease: Lease, recorded: int) -> None:
        _, tokens_key, total_key, leases_key = self._keys(lease.key)
        args: list[str | int] = [repr(self._clock()), lease.id, recorded, _ms(WINDOW)]
        await self._release_or_keep([tokens_key, total_key, leases_key], args)

    async def _release_or_keep(self, keys: list[str], args: list[str | int]) -> bool:
        """Whether the release reached Redis; if not, it is kept to be sent again."""
        try:
            await self._health.call("ratelimit", lambda: self._release(keys=keys, args=args))
        except RedisDown:
            self._unsent.append((keys, args))
            return False
        return True

    async def _resend_releases(self) -> None:
        """The releases that failed, sent again unless Redis is down with no retry due (each would only be
        skipped); the first that fails keeps the rest for later."""
        if not self._unsent or self._health.waiting():
            return
        unsent, self._unsent = self._unsent, []  # (taken whole: a concurrent acquire does not send them twice)
        for i, (keys, args) in enumerate(unsent):
            if not await self._release_or_keep(keys, args):
                self._unsent.extend(unsent[i + 1:])
                return

    def headers(self, lease: Lease) -> dict[str, str]:
        return dict(lease.headers)

    async def close(self) -> None:
        """Waits for releases still in flight (their handlers may be gone), then closes the connections."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self._redis.aclose()

    def _keys(self, key: ClientKey) -> list[str]:
        tag = f"{self._prefix}:{{{key.key_hash.removeprefix('sha256:')}}}"
        return [f"{tag}:requests", f"{tag}:tokens", f"{tag}:token_total", f"{tag}:leases"]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _usage_from_reply(now: float, reply: list[Any]) -> Usage:
    requests, oldest_request, tokens, oldest_tokens, free_at, in_flight = reply
    return Usage(
        now=now,
        requests=int(requests),
        oldest_request=_score(oldest_request),
        tokens=int(tokens),
        oldest_tokens=_score(oldest_tokens),
        tokens_free_at=_score(free_at),
        in_flight=int(in_flight),
    )


def _score(value: bytes | str) -> float | None:
    text = value.decode() if isinstance(value, bytes) else value
    return float(text) if text else None


def make_rate_limiter(settings: RedisSettings, health: RedisHealth | None = None) -> RateLimiter:
    """Redis when a URL is configured (limits shared by all workers), else process memory."""
    if settings.url:
        return RedisRateLimiter(settings.url, timeout=settings.timeout_seconds, on_error=settings.on_error,
                                health=health)
    return MemoryRateLimiter()
