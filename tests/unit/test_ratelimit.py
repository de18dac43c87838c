"""Rate limits with exact values, run against both backends: process memory and a real redis-server.

Time is an injected clock, so window edges are tested to the millisecond without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.errors import ProxyOverloaded, RateLimited
from translator.gateway.keys import ClientKey, hash_key
from translator.gateway.ratelimit import (
    _RELEASE,
    Lease,
    LimiterUnavailable,
    MemoryRateLimiter,
    RateLimiter,
    RateLimitExceeded,
    RedisRateLimiter,
    make_rate_limiter,
)
from translator.gateway.redis_health import RedisHealth

T0 = 1_700_000_000.25  # wall-clock sized, so Redis scores are checked at real precision


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, offset: float) -> None:
        self.now = T0 + offset


def client_key(
    name: str = "k", rpm: int | None = None, tpm: int | None = None, concurrency: int | None = None
) -> ClientKey:
    return ClientKey(
        name=name, key_hash=hash_key("secret-" + name), models=("*",), rpm=rpm, tpm=tpm, concurrency=concurrency
    )


MakeLimiter = Callable[..., RateLimiter]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def make_limiter(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[MakeLimiter]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made: list[RateLimiter] = []

    def make(**options: Any) -> RateLimiter:
        limiter: RateLimiter = (
            MemoryRateLimiter(clock, **options) if url is None else RedisRateLimiter(url, clock, **options)
        )
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.close()


@pytest.fixture
def limiter(make_limiter: MakeLimiter) -> RateLimiter:
    return make_limiter()


async def refused(limiter: RateLimiter, key: ClientKey) -> RateLimitExceeded:
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.acquire(key)
    return info.value


# ---- requests per minute ----------------------------------------------------------------------------------------


async def test_rpm_boundary_and_retry_after(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(rpm=3)
    first = await limiter.acquire(key)
    assert limiter.headers(first) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "60s",
    }
    clock.at(10)
    await limiter.acquire(key)
    clock.at(20)
    third = await limiter.acquire(key)  # the Nth passes
    assert limiter.headers(third) == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "40s",  # when the first leaves the window
    }

    clock.at(30)
    err = await refused(limiter, key)  # the N+1th does not
    assert isinstance(err, RateLimited)
    assert (err.status, err.claude_type, err.code) == (429, "rate_limit_error", "rate_limit_exceeded")
    assert err.message == "rate limit: 3 requests per minute for key 'k'"
    assert (err.retry_after, err.limit, err.key_name) == (30, "requests", "k")
    assert err.headers == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "30s",
        "Retry-After": "30",
    }

    clock.at(59.999)
    assert (await refused(limiter, key)).retry_after == 1  # never 0: the client must wait a little
    clock.at(60)  # the first request (t=0) has left the window (0, 60]
    again = await limiter.acquire(key)
    assert limiter.headers(again)["x-ratelimit-remaining-requests"] == "0"  # t=10, 20, 60 are in it
    assert (await refused(limiter, key)).retry_after == 10  # refusals consumed nothing: t=10 is next to leave


async def test_keys_have_separate_windows(limiter: RateLimiter) -> None:
    a, b = client_key("a", rpm=1), client_key("b", rpm=1)
    await limiter.acquire(a)
    await limiter.acquire(b)
    assert (await refused(limiter, a)).message == "rate limit: 1 requests per minute for key 'a'"
    assert (await refused(limiter, b)).key_name == "b"


# ---- tokens per minute ------------------------------------------------------------------------------------------


async def test_tpm_counts_released_tokens(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(tpm=100)
    lease = await limiter.acquire(key)
    assert limiter.headers(lease) == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "100",
        "x-ratelimit-reset-tokens": "0s",
    }
    await limiter.release(lease, 60)
    clock.at(10)
    lease = await limiter.acquire(key)  # 60 < 100
    assert limiter.headers(lease) == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "40",
        "x-ratelimit-reset-tokens": "50s",
    }
    await limiter.release(lease, 50)  # 110 now: over, but only the next request is refused

    clock.at(20)
    err = await refused(limiter, key)
    assert err.message == "rate limit: 100 tokens per minute for key 'k'"
    assert (err.retry_after, err.limit) == (40, "tokens")  # the 60 at t=0 leaving brings it to 50
    assert err.headers == {
        "x-ratelimit-limit-tokens": "100",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "40s",
        "Retry-After": "40",
    }
    clock.at(60)
    lease = await limiter.acquire(key)
    assert limiter.headers(lease)["x-ratelimit-remaining-tokens"] == "50"
    assert limiter.headers(lease)["x-ratelimit-reset-tokens"] == "10s"


async def test_tpm_reaching_the_limit_exactly_refuses(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(tpm=100)
    await limiter.release(await limiter.acquire(key), 99)
    await limiter.release(await limiter.acquire(key), 1)
    clock.at(1)
    assert (await refused(limiter, key)).retry_after == 59


async def test_tpm_retry_after_waits_for_enough_entries(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(tpm=100)
    for offset, tokens in [(0, 30), (5, 30), (10, 80)]:
        clock.at(offset)
        await limiter.release(await limiter.acquire(key), tokens)
    clock.at(20)
    # 140 used: dropping t=0 leaves 110, still over; dropping t=5 too leaves 80.
    assert (await refused(limiter, key)).retry_after == 45
    clock.at(64.5)
    assert (await refused(limiter, key)).retry_after == 1
    clock.at(65)
    await limiter.acquire(key)


async def test_tokens_count_from_when_the_request_ended(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(tpm=100)
    lease = await limiter.acquire(key)
    clock.at(30)
    await limiter.release(lease, 100)
    clock.at(70)
    assert (await refused(limiter, key)).retry_after == 20


async def test_release_is_idempotent_and_zero_tokens_record_nothing(limiter: RateLimiter) -> None:
    key = client_key(tpm=100, concurrency=1)
    lease = await limiter.acquire(key)
    await limiter.release(lease, 60)
    await limiter.release(lease, 60)  # a second release neither double-counts nor frees a second slot
    assert lease.released
    lease = await limiter.acquire(key)
    assert limiter.headers(lease)["x-ratelimit-remaining-tokens"] == "40"
    await limiter.release(lease, 0)
    lease = await limiter.acquire(key)
    assert limiter.headers(lease)["x-ratelimit-remaining-tokens"] == "40"
    err = await refused(limiter, key)
    assert err.limit == "concurrency"


# ---- concurrency ------------------------------------------------------------------------------------------------


async def test_concurrency_up_to_n_then_refused_until_a_release(limiter: RateLimiter) -> None:
    key = client_key(concurrency=2)
    a = await limiter.acquire(key)
    b = await limiter.acquire(key)
    assert limiter.headers(a) == {}  # OpenAI has no concurrency headers
    err = await refused(limiter, key)
    assert err.message == "rate limit: 2 concurrent requests for key 'k'"
    assert (err.retry_after, err.limit, err.headers) == (1, "concurrency", {"Retry-After": "1"})
    await limiter.release(a, 0)
    c = await limiter.acquire(key)
    await refused(limiter, key)
    await limiter.release(b, 0)
    await limiter.release(c, 0)
    await limiter.acquire(key)
    await limiter.acquire(key)


async def test_a_leaked_lease_expires(make_limiter: MakeLimiter, clock: Clock) -> None:
    limiter = make_limiter(lease_ttl=30)
    key = client_key(concurrency=1)
    await limiter.acquire(key)  # never released
    clock.at(29.9)
    await refused(limiter, key)
    clock.at(30)
    await limiter.acquire(key)


# ---- several limits ---------------------------------------------------------------------------------------------


async def test_longest_wait_wins_when_several_limits_refuse(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(rpm=1, concurrency=1)
    await limiter.acquire(key)
    clock.at(15)
    err = await refused(limiter, key)
    assert (err.limit, err.retry_after) == ("requests", 45)
    assert err.message == "rate limit: 1 requests per minute for key 'k'"


async def test_a_refused_request_consumes_nothing(limiter: RateLimiter) -> None:
    key = client_key(rpm=2, concurrency=1)
    a = await limiter.acquire(key)
    assert (await refused(limiter, key)).limit == "concurrency"
    await limiter.release(a, 0)
    b = await limiter.acquire(key)  # the refused one did not use up the second request of the minute
    assert limiter.headers(b)["x-ratelimit-remaining-requests"] == "0"


async def test_all_headers_together(limiter: RateLimiter, clock: Clock) -> None:
    key = client_key(rpm=10, tpm=1000, concurrency=5)
    await limiter.release(await limiter.acquire(key), 250)
    clock.at(12.5)
    lease = await limiter.acquire(key)
    assert limiter.headers(lease) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "8",
        "x-ratelimit-reset-requests": "48s",  # 47.5 rounds up
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "750",
        "x-ratelimit-reset-tokens": "48s",
    }
    copy = limiter.headers(lease)
    copy.clear()
    assert limiter.headers(lease)  # callers get a copy


async def test_key_without_limits_is_never_refused(limiter: RateLimiter) -> None:
    key = client_key()
    leases = [await limiter.acquire(key) for _ in range(100)]
    assert all(limiter.headers(lease) == {} for lease in leases)
    for lease in leases:
        await limiter.release(lease, 1000)
    await limiter.acquire(key)


# ---- Redis specifics --------------------------------------------------------------------------------------------


async def test_redis_limits_are_shared_between_processes(redis_url: str, clock: Clock) -> None:
    one, two = RedisRateLimiter(redis_url, clock), RedisRateLimiter(redis_url, clock)
    try:
        key = client_key(rpm=2, concurrency=5)
        await one.acquire(key)
        lease = await two.acquire(key)
        assert (await refused(one, key)).limit == "requests"
        await one.release(lease, 0)  # a lease can be released by another instance too
    finally:
        await one.close()
        await two.close()


async def test_redis_release_survives_a_cancelled_handler(redis_url: str, clock: Clock) -> None:
    key = client_key(concurrency=1)
    limiter = RedisRateLimiter(redis_url, clock)
    lease = await limiter.acquire(key)
    handler = asyncio.create_task(limiter.release(lease, 0))
    await asyncio.sleep(0)  # the release is under way ...
    handler.cancel()  # ... when the client goes away
    with pytest.raises(asyncio.CancelledError):
        await handler
    await limiter.close()  # waits for the release still in flight
    other = RedisRateLimiter(redis_url, clock)
    try:
        await other.acquire(key)  # the slot was freed all the same
    finally:
        await other.close()


async def test_redis_keys_expire_and_logs_stay_small(redis_url: str, clock: Clock) -> None:
    limiter = RedisRateLimiter(redis_url, clock, lease_ttl=120)
    client = aioredis.from_url(redis_url)
    try:
        key = client_key(rpm=100, tpm=10_000, concurrency=10)
        for second in range(5):
            clock.at(second)
            await limiter.release(await limiter.acquire(key), 10)
        await limiter.acquire(key)  # one lease left open
        names = sorted(k.decode() if isinstance(k, bytes) else k for k in await client.keys("translator:rl:*"))
        tag = "translator:rl:{" + key.key_hash[7:] + "}"
        assert names == [f"{tag}:{n}" for n in ("leases", "requests", "token_total", "tokens")]
        for name in names:
            ttl = await client.pttl(name)
            assert 0 < ttl <= (120_000 if name.endswith("leases") else 60_000), (name, ttl)

        clock.at(200)  # everything in the logs is stale, and the lease has expired
        await limiter.release(await limiter.acquire(key), 7)
        assert await client.zcard(f"{tag}:requests") == 1
        assert await client.zcard(f"{tag}:tokens") == 1
        assert await client.zcard(f"{tag}:leases") == 0
        assert await client.get(f"{tag}:token_total") == b"7"
    finally:
        await limiter.close()
        await client.aclose()


async def test_redis_rebuilds_a_lost_token_total(redis_url: str, clock: Clock) -> None:
    limiter = RedisRateLimiter(redis_url, clock)
    client = aioredis.from_url(redis_url)
    try:
        key = client_key(tpm=100)
        await limiter.release(await limiter.acquire(key), 70)
        await limiter.release(await limiter.acquire(key), 40)
        await client.delete("translator:rl:{" + key.key_hash[7:] + "}:token_total")
        clock.at(5)
        assert (await refused(limiter, key)).retry_after == 55
    finally:
        await limiter.close()
        await client.aclose()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_down_under_deny_refuses_with_503() -> None:
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{_unused_port()}/0", timeout=0.5, on_error="deny")
    try:
        key = client_key(rpm=10, concurrency=1)
        with pytest.raises(LimiterUnavailable) as info:
            await limiter.acquire(key)
        assert info.value.status == 503
        assert isinstance(info.value, ProxyOverloaded)  # so its answer carries Retry-After
        assert info.value.message == "rate limits cannot be checked: the rate limit store is unavailable"
        await limiter.release(Lease(key=key, id="x"), 5)  # counted, not raised: the answer was already sent
        unlimited = await limiter.acquire(client_key())  # no limits: Redis is not even asked
        assert limiter.headers(unlimited) == {}
    finally:
        await limiter.close()


async def test_redis_down_under_allow_admits_unmetered() -> None:
    health = RedisHealth()
    limiter = RedisRateLimiter(f"redis://127.0.0.1:{_unused_port()}/0", timeout=0.5, health=health)
    try:
        key = client_key(rpm=1, concurrency=1)
        leases = [await limiter.acquire(key) for _ in range(3)]  # over both limits, yet admitted
        assert [(lease.unmetered, limiter.headers(lease)) for lease in leases] == [(True, {})] * 3
        assert health.up is False
        for lease in leases:
            await limiter.release(lease, 5)  # nothing to release: Redis is not asked
            assert not lease.released
    finally:
        await limiter.close()


async def test_redis_up_again_meters_again(redis_url: str, clock: Clock) -> None:
    health = RedisHealth(retry_seconds=0.0)
    down = RedisRateLimiter(f"redis://127.0.0.1:{_unused_port()}/0", clock, timeout=0.5, health=health)
    up = RedisRateLimiter(redis_url, clock, health=health)
    try:
        key = client_key(rpm=1)
        assert (await down.acquire(key)).unmetered and health.up is False
        assert not (await up.acquire(key)).unmetered and health.up is True
        with pytest.raises(RateLimitExceeded):
            await up.acquire(key)
    finally:
        await down.close()
        await up.close()


class Relay:
    """A TCP relay in front of Redis that can be cut (its connections dropped, new ones refused) and joined
    again: a network partition, with Redis and its data still there on the other side."""

    def __init__(self, target: str) -> None:
        self._target_port = int(target.rsplit(":", 1)[1].split("/")[0])
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def join(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await asyncio.gather(*self._handlers, return_exceptions=True)  # each ends as its sockets close
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._handlers.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_release_lost_to_an_outage_is_sent_again(redis_url: str, clock: Clock) -> None:
    relay = Relay(redis_url)
    await relay.join()
    health_clock = Clock()
    health = RedisHealth(retry_seconds=1.0, clock=health_clock)
    limiter = RedisRateLimiter(relay.url, clock, timeout=0.5, health=health)
    try:
        key = client_key(tpm=100, concurrency=1)
        lease = await limiter.acquire(key)
        await relay.cut()
        await limiter.release(lease, 7)  # Redis unreachable: its slot would stay taken for an hour
        assert health.up is False
        await relay.join()
        health_clock.now += 1.0  # a retry is due
        again = await limiter.acquire(key)  # the release goes first: the slot is free, the tokens counted
        assert (again.unmetered, limiter.headers(again)["x-ratelimit-remaining-tokens"]) == (False, "93")
        with pytest.raises(RateLimitExceeded) as info:
            await limiter.acquire(key)  # one slot, held by `again` alone
        assert info.value.limit == "concurrency"
    finally:
        await limiter.close()
        await relay.cut()


async def test_a_release_sent_twice_counts_its_tokens_once(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    try:
        keys = ["t:{k}:tokens", "t:{k}:token_total", "t:{k}:leases"]
        for _ in range(2):  # a release that timed out, yet ran, and was sent again
            await client.eval(_RELEASE, 3, *keys, repr(T0), "lease-1", 7, 60_000)
        assert await client.get("t:{k}:token_total") == b"7"
        assert await client.zcard("t:{k}:tokens") == 1
    finally:
        await client.aclose()


async def test_make_rate_limiter_picks_the_backend() -> None:
    memory = make_rate_limiter(RedisSettings())
    redis_backed = make_rate_limiter(RedisSettings(url="redis://127.0.0.1:1/0"))  # connects lazily
    assert isinstance(memory, MemoryRateLimiter)
    assert isinstance(redis_backed, RedisRateLimiter)
    await memory.close()
    await redis_backed.close()


async def test_make_rate_limiter_takes_the_outage_policy_and_the_shared_health() -> None:
    health = RedisHealth()
    url = f"redis://127.0.0.1:{_unused_port()}/0"
    limiter = make_rate_limiter(RedisSettings(url=url, on_error="deny", timeout_seconds=0.5), health)
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.acquire(client_key(rpm=1))
        assert health.up is False
    finally:
        await limiter.close()
