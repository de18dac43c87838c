"""``translator.gateway.redis_health``: outage edges logged once and counted, and no call tried while Redis is
known down except one every ``retry_seconds``. The calls are stand-ins here; tests/integration/
test_redis_outage.py runs the same against a real redis-server that is stopped and started."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from translator.gateway.redis_health import RedisDown, RedisHealth


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Redis:
    """A stand-in call: answers "PONG" while up, else raises the error it was given."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.calls = 0

    async def ping(self) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return "PONG"


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lines(server_log: Callable[[], str]) -> list[dict[str, object]]:
    return [line for line in map(orjson.loads, server_log().splitlines()) if str(line["event"]).startswith("redis")]


async def test_each_edge_is_logged_and_counted_once(clock: Clock, server_log: Callable[[], str]) -> None:
    changes: list[bool] = []
    errors: list[str] = []
    health = RedisHealth(on_error="deny", retry_seconds=1.0, clock=clock, on_change=changes.append,
                         count_error=errors.append)
    redis = Redis()
    assert await health.call("ratelimit", redis.ping) == "PONG"
    assert (health.up, changes) == (True, [True])
    redis.error = RedisConnectionError("refused")
    for component in ("ratelimit", "sticky", "responses"):
        with pytest.raises(RedisDown):
            await health.call(component, redis.ping)
    assert (health.up, changes, errors) == (False, [True, False], ["ratelimit", "sticky", "responses"])
    assert redis.calls == 2  # the first failure opened the outage: the others were not even tried
    clock.now += 1.0
    redis.error = None
    await health.call("sticky", redis.ping)
    await health.call("sticky", redis.ping)
    assert (health.up, changes, redis.calls) == (True, [True, False, True], 4)
    assert [(x["event"], x["level"]) for x in lines(server_log)] == [
        ("redis available", "info"), ("redis unavailable", "warning"), ("redis available again", "info"),
    ]
    down, back = lines(server_log)[1:]
    assert {k: down[k] for k in ("component", "error", "on_error")} == {
        "component": "ratelimit", "error": "ConnectionError", "on_error": "deny"}
    assert (back["down_seconds"], back["calls_without_redis"]) == (1.0, 3)


async def test_while_down_one_call_per_retry_interval_tries_again(clock: Clock) -> None:
    health = RedisHealth(retry_seconds=2.0, clock=clock)
    redis = Redis()
    redis.error = RedisTimeoutError("timed out")
    tried = []
    for _ in range(8):  # every half second for four seconds
        before = redis.calls
        with pytest.raises(RedisDown):
            await health.call("ratelimit", redis.ping)
        tried.append(redis.calls - before)
        clock.now += 0.5
    assert tried == [1, 0, 0, 0, 1, 0, 0, 0]


async def test_an_outage_at_start_is_a_warning(clock: Clock, server_log: Callable[[], str]) -> None:
    changes: list[bool] = []
    health = RedisHealth(clock=clock, on_change=changes.append)
    redis = Redis()
    redis.error = RedisConnectionError("refused")
    with pytest.raises(RedisDown):
        await health.call("ping", redis.ping)
    assert (health.up, changes) == (False, [False])
    assert [(x["event"], x["level"], x["on_error"]) for x in lines(server_log)] == [
        ("redis unavailable", "warning", "allow")]


async def test_other_errors_are_not_outages(clock: Clock) -> None:
    health = RedisHealth(clock=clock)

    async def broken() -> None:
        raise KeyError("a bug, not an outage")

    with pytest.raises(KeyError):
        await health.call("ratelimit", broken)
    assert health.up is None
