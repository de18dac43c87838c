"""The usage store, both backends alike: rows per UTC day, key and model; budgets' spent per day and month;
rollover at UTC midnight and month end; retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

import orjson
import pytest

from tests.redis_server import RestartableRedis, restartable_redis_fixture  # noqa: F401
from translator.gateway.usage import (
    Counts,
    MemoryUsageStore,
    RedisUsageStore,
    Row,
    Spent,
    UsageStore,
    UsageUnavailable,
    make_usage_store,
    period_end,
    period_name,
)

DAY = dt.date(2026, 12, 31)
NOON = dt.datetime(2026, 12, 31, 12, 0, tzinfo=dt.UTC)
ONE = Counts(requests=1, input_tokens=10, output_tokens=5, cache_read_input_tokens=100,
             cache_creation_input_tokens=20, cost_usd=0.25)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[UsageStore]:
    made: UsageStore = MemoryUsageStore()
    if request.param == "redis":
        made = RedisUsageStore(request.getfixturevalue("redis_url"))
    yield made
    await made.close()


def test_counts_from_claude_usage() -> None:
    usage = {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100,
             "cache_creation_input_tokens": 20, "server_tool_use": {"web_search_requests": 1}}
    assert Counts.from_claude(usage) == Counts(0, 10, 5, 100, 20, 0.0)
    assert Counts.from_claude({"input_tokens": "3", "output_tokens": -1}) == Counts()
    assert Counts.from_claude(None) == Counts()
    assert ONE.tokens == 135
    total = ONE + ONE
    assert total == Counts(2, 20, 10, 200, 40, 0.5)


def test_periods_are_utc_days_and_months() -> None:
    late = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 04:30 UTC next day
    assert period_name("day", late) == "2027-01-01"
    assert period_name("month", late) == "2027-01"
    assert period_end("day", NOON) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert period_end("month", NOON) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert period_end("month", dt.datetime(2027, 2, 10, tzinfo=dt.UTC)) == dt.datetime(2027, 3, 1, tzinfo=dt.UTC)


async def test_rows_add_up_per_day_key_and_model(store: UsageStore) -> None:
    await store.record("alice", "claude-x", ONE, NOON)
    await store.record("alice", "claude-x", ONE, NOON + dt.timedelta(hours=11))
    await store.record("bob", "claude-y", ONE, NOON)
    await store.record("alice", "claude-x", ONE, NOON + dt.timedelta(hours=12))  # the next UTC day
    rows = await store.rows(DAY, DAY + dt.timedelta(days=1))
    assert rows == [
        Row(DAY, "alice", "claude-x", ONE + ONE),
        Row(DAY, "bob", "claude-y", ONE),
        Row(DAY + dt.timedelta(days=1), "alice", "claude-x", ONE),
    ]
    assert await store.rows(DAY, DAY, key="bob") == [Row(DAY, "bob", "claude-y", ONE)]
    assert await store.rows(DAY - dt.timedelta(days=5), DAY - dt.timedelta(days=1)) == []
    assert rows[0].as_dict() == {"date": "2026-12-31", "key": "alice", "model": "claude-x", "requests": 2,
                                 "input_tokens": 20, "output_tokens": 10, "cache_read_input_tokens": 200,
                                 "cache_creation_input_tokens": 40, "cost_usd": 0.5}


async def test_spent_rolls_over_at_utc_midnight_and_month_end(store: UsageStore) -> None:
    await store.record("alice", "claude-x", ONE, NOON - dt.timedelta(days=1))
    await store.record("alice", "claude-y", ONE, NOON)
    await store.record("bob", "claude-y", ONE, NOON)
    assert await store.spent("alice", "day", NOON) == Spent(135, 0.25)
    assert await store.spent("alice", "month", NOON) == Spent(270, 0.5)
    new_year = NOON + dt.timedelta(hours=12)
    assert await store.spent("alice", "day", new_year) == Spent()
    assert await store.spent("alice", "month", new_year) == Spent()
    assert await store.spent("carol", "month", NOON) == Spent()


async def test_memory_keeps_retention_days_and_at_most_max_rows() -> None:
    store = MemoryUsageStore(retention_days=3, max_rows=4)
    for i in range(5):
        await store.record("alice", "m", ONE, NOON + dt.timedelta(days=i))
    assert [r.date.day for r in await store.rows(DAY, DAY + dt.timedelta(days=10))] == [2, 3, 4]
    for model in ("a", "b", "c", "d"):  # the day in use is kept whole even past max_rows; older days go first
        await store.record("alice", model, ONE, NOON + dt.timedelta(days=4))
    rows = await store.rows(DAY, DAY + dt.timedelta(days=10))
    assert [(r.date.day, r.model) for r in rows] == [(4, "a"), (4, "b"), (4, "c"), (4, "d"), (4, "m")]
    assert await store.spent("alice", "day", NOON + dt.timedelta(days=4)) == Spent(5 * 135, 5 * 0.25)
    assert await store.spent("alice", "month", NOON + dt.timedelta(days=4)) == Spent(8 * 135, 8 * 0.25)
    assert await store.spent("alice", "day", NOON + dt.timedelta(days=3)) == Spent()  # its day went


async def test_redis_days_expire_after_retention(redis_url: str) -> None:
    import redis.asyncio as aioredis

    store = RedisUsageStore(redis_url, prefix="t:usage", retention_days=90)
    await store.record("alice", "m", ONE, NOON)
    client = aioredis.from_url(redis_url)
    try:
        assert 90 * 86400 < await client.ttl("t:usage:day:2026-12-31") <= 91 * 86400
        assert 90 * 86400 < await client.ttl("t:usage:spent:2026-12") <= 91 * 86400
    finally:
        await client.aclose()
        await store.close()


@pytest.mark.parametrize("on_error", ["allow", "deny"])
async def test_redis_down_budget_checks_follow_on_error_and_recording_is_skipped_quietly(
    on_error: str, server_log: Callable[[], str]
) -> None:
    from translator.config import RedisSettings
    from translator.errors import ProxyOverloaded
    from translator.gateway.redis_health import RedisHealth

    errors: list[str] = []
    health = RedisHealth(on_error=on_error, retry_seconds=0, count_error=errors.append)
    settings = RedisSettings(url="redis://127.0.0.1:1/0", on_error=on_error, timeout_seconds=0.5)
    store = make_usage_store(settings, health)
    try:
        await store.record("alice", "m", ONE, NOON)  # not raised: the request was served
        store.record_soon("alice", "m", ONE, NOON)
        if on_error == "deny":
            with pytest.raises(UsageUnavailable) as refused:
                await store.spent("alice", "day", NOON)
            assert isinstance(refused.value, ProxyOverloaded)  # 503 with Retry-After, as the limiter's
        else:
            assert await store.spent("alice", "day", NOON) is None  # not known: the budget is not enforced
        with pytest.raises(UsageUnavailable):
            await store.rows(DAY, DAY)
    finally:
        await store.close()
    assert errors == ["usage"] * 4  # counted as every Redis user's calls are (translator_redis_errors_total)
    lines = [orjson.loads(line) for line in server_log().splitlines()]
    events = [line["event"] for line in lines if line["level"] != "debug"]  # (not asyncio's own debug lines)
    assert events == ["redis unavailable"]  # once, by the shared view: nothing per request


async def test_usage_store_rides_through_a_redis_restart(restartable_redis: RestartableRedis) -> None:
    """Each pooled connection is stale after a restart: its first call is retried once, not an outage."""
    from translator.config import RedisSettings
    from translator.gateway.redis_health import RedisHealth

    errors: list[str] = []
    health = RedisHealth(on_error="deny", count_error=errors.append)
    store = make_usage_store(RedisSettings(url=restartable_redis.url, on_error="deny"), health)
    try:
        await store.record("alice", "m", ONE, NOON)
        assert await store.spent("alice", "day", NOON) == Spent(135, 0.25)
        restartable_redis.stop()
        restartable_redis.start()  # empty (no persistence here)
        assert await store.spent("alice", "day", NOON) == Spent()
        await store.record("alice", "m", ONE, NOON)
        assert await store.rows(DAY, DAY) == [Row(DAY, "alice", "m", ONE)]
    finally:
        await store.close()
    assert (health.up, errors) == (True, [])


async def test_recording_in_the_background_is_waited_for_at_close(redis_url: str) -> None:
    store = RedisUsageStore(redis_url)
    for _ in range(20):
        store.record_soon("alice", "m", ONE, NOON)
    await store.close()  # none lost
    again = RedisUsageStore(redis_url)
    try:
        assert await again.spent("alice", "month", NOON) == Spent(20 * 135, 20 * 0.25)
    finally:
        await again.close()
