"""Redis going away and coming back while the proxy serves: a real redis-server, stopped and started again on
its port, under each ``redis.on_error`` policy. Checked: the answers (in each route's shape), the outage logged
once each way, the ``translator_redis_*`` metrics, ``/readyz``, the warning at start, streams in flight across a
restart, stickiness and stored responses without Redis, a Redis that never answers, and upstream cool-downs
shared between replicas through Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream, Reply
from tests.redis_server import RestartableRedis, restartable_redis_fixture  # noqa: F401
from translator.config import RedisSettings
from translator.gateway.keys import hash_key
from translator.gateway.usage import make_usage_store
from translator.server.state import METRICS

LIMITED = "sk-tr-limited-outage-0123456789"
FREE = "sk-tr-free-outage-0123456789"
CLIENT_KEYS.update({LIMITED, FREE})
KEYS = [{"name": "limited", "hash": hash_key(LIMITED), "rpm": 2},
        {"name": "free", "hash": hash_key(FREE)}]

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn", "stop_sequence": None,
           "usage": {"input_tokens": 3, "output_tokens": 1}}
CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "Hi"}]}
CLAUDE = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}
LIMITED_AUTH = {"Authorization": f"Bearer {LIMITED}"}
FREE_AUTH = {"Authorization": f"Bearer {FREE}"}

MakeProxy = Callable[..., Awaitable[TestClient]]


def redis_settings(server: RestartableRedis, on_error: str) -> dict[str, Any]:
    # (a retry interval far below the time a redis-server takes to stop or start: every call after one tries)
    return {"url": server.url, "on_error": on_error, "timeout_seconds": 2.0, "retry_seconds": 0.001}


def redis_log(server_log: Callable[[], str]) -> list[tuple[str, str]]:
    lines = map(orjson.loads, server_log().splitlines())
    return [(x["event"], x["level"]) for x in lines if str(x["event"]).startswith("redis")]


def sample(proxy: TestClient, name: str, **labels: str) -> float | None:
    return proxy.server.app[METRICS].registry.get_sample_value(name, labels)


async def until(condition: Callable[[], bool]) -> None:
    """Wait for something the server does after its answer has gone out (the guard only stops a hang)."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 60)


async def ready(proxy: TestClient) -> tuple[int, Any]:
    resp = await proxy.get("/readyz")
    return resp.status, await resp.json()


async def test_allow_lets_limited_keys_through_until_redis_is_back(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
    server_log: Callable[[], str],
) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(MESSAGE))
    proxy = await make_proxy(keys=KEYS, redis=redis_settings(restartable_redis, "allow"))
    first = await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)
    assert (first.status, first.headers["x-ratelimit-remaining-requests"]) == (200, "1")
    assert await ready(proxy) == (200, {"status": "ready", "redis": "up"})

    restartable_redis.stop()
    for _ in range(3):  # past the key's 2 requests a minute: not metered while Redis is down
        resp = await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)
        assert resp.status == 200
        assert "x-ratelimit-remaining-requests" not in resp.headers
    assert await ready(proxy) == (200, {"status": "ready", "redis": "down"})  # serving: still ready
    assert sample(proxy, "translator_redis_up") == 0
    assert sample(proxy, "translator_redis_errors_total", component="ratelimit") == 3

    restartable_redis.start()  # empty: the window starts again
    resp = await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)
    assert (resp.status, resp.headers["x-ratelimit-remaining-requests"]) == (200, "1")
    assert await ready(proxy) == (200, {"status": "ready", "redis": "up"})
    resp = await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)
    assert resp.status == 200
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)).status == 429
    assert sample(proxy, "translator_redis_up") == 1
    assert sample(proxy, "translator_redis_outages_total") == 1
    assert redis_log(server_log) == [
        ("redis available", "info"), ("redis unavailable", "warning"), ("redis available again", "info")]


STREAM = [
    {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                          "usage": {"input_tokens": 3, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


def held_upstream(hold: asyncio.Event) -> web.Application:
    """A Claude upstream whose streams stop before their end (``message_delta``) until ``hold`` is set; a
    request that does not stream gets ``MESSAGE``."""

    async def messages(request: web.Request) -> web.StreamResponse:
        if not (await request.json()).get("stream"):
            return web.json_response(MESSAGE)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in STREAM:
            if event["type"] == "message_delta":
                await hold.wait()
            await resp.write(b"event: %s\ndata: %s\n\n" % (event["type"].encode(), orjson.dumps(event)))
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    return app


async def test_streams_in_flight_ride_through_a_restart(
    make_proxy: MakeProxy, aiohttp_server: Any, restartable_redis: RestartableRedis,
    server_log: Callable[[], str],
) -> None:
    hold = asyncio.Event()
    upstream = await aiohttp_server(held_upstream(hold))
    keys = [{"name": "limited", "hash": hash_key(LIMITED), "concurrency": 3, "tpm": 10_000}]
    proxy = await make_proxy(keys=keys, redis=redis_settings(restartable_redis, "allow"),
                             upstream={"base_url": str(upstream.make_url("")).rstrip("/")})
    streams = [await proxy.post("/v1/messages", json={**CLAUDE, "stream": True}, headers=LIMITED_AUTH)
               for _ in range(3)]
    assert [s.status for s in streams] == [200] * 3  # all three slots taken, the streams under way

    restartable_redis.stop()
    hold.set()
    for stream in streams:  # they end well; their releases (a slot, 5 tokens each) wait for Redis
        assert (await stream.read()).endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    # (a request's log line is written once its handler has ended: lease released, or kept to send again)
    await until(lambda: sum(x["event"] == "request" for x in map(orjson.loads, server_log().splitlines())) == 3)
    assert sample(proxy, "translator_redis_errors_total", component="ratelimit") == 3

    restartable_redis.start()  # empty: the releases, sent now, record the streams' tokens
    resp = await proxy.post("/v1/messages", json=CLAUDE, headers=LIMITED_AUTH)
    assert (resp.status, resp.headers["x-ratelimit-remaining-tokens"]) == (200, str(10_000 - 3 * 5))
    assert redis_log(server_log) == [
        ("redis available", "info"), ("redis unavailable", "warning"), ("redis available again", "info")]


async def test_deny_refuses_limited_keys_in_each_routes_shape(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
    server_log: Callable[[], str],
) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(MESSAGE))
    proxy = await make_proxy(keys=KEYS, redis=redis_settings(restartable_redis, "deny"))
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=LIMITED_AUTH)).status == 200

    restartable_redis.stop()
    chat = await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)
    assert (chat.status, chat.headers["Retry-After"]) == (503, "1")
    assert await chat.json() == {"error": {
        "message": "rate limits cannot be checked: the rate limit store is unavailable",
        "type": "server_error", "param": None, "code": None}}
    claude = await proxy.post("/v1/messages", json=CLAUDE, headers=LIMITED_AUTH)
    assert (claude.status, claude.headers["Retry-After"]) == (503, "1")
    assert await claude.json() == {"type": "error", "error": {
        "type": "api_error", "message": "rate limits cannot be checked: the rate limit store is unavailable"}}
    responses = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi", "store": False},
                                 headers=LIMITED_AUTH)
    assert (responses.status, (await responses.json())["error"]["type"]) == (503, "server_error")
    free = await proxy.post("/v1/chat/completions", json=CHAT, headers=FREE_AUTH)
    assert free.status == 200  # a key without limits never needed Redis
    assert await ready(proxy) == (503, {"status": "unavailable", "redis": "down"})
    assert sample(proxy, "translator_redis_errors_total", component="ratelimit") == 3

    restartable_redis.start()
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=LIMITED_AUTH)).status == 200
    assert await ready(proxy) == (200, {"status": "ready", "redis": "up"})
    assert redis_log(server_log) == [
        ("redis available", "info"), ("redis unavailable", "warning"), ("redis available again", "info")]


async def test_redis_down_at_start_is_a_warning_and_the_proxy_serves(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
    server_log: Callable[[], str],
) -> None:
    restartable_redis.stop()
    proxy = await make_proxy(keys=KEYS, redis=redis_settings(restartable_redis, "allow"))
    assert redis_log(server_log) == [("redis unavailable", "warning")]  # before any request
    assert (sample(proxy, "translator_redis_up"), sample(proxy, "translator_redis_outages_total")) == (0, 1)
    fake_upstream.json(MESSAGE)
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)).status == 200
    assert await ready(proxy) == (200, {"status": "ready", "redis": "down"})
    restartable_redis.start()
    fake_upstream.json(MESSAGE)
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=LIMITED_AUTH)).status == 200
    assert await ready(proxy) == (200, {"status": "ready", "redis": "up"})
    assert redis_log(server_log) == [("redis unavailable", "warning"), ("redis available again", "info")]


async def test_without_redis_no_stickiness_and_stored_responses_answer_503(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(MESSAGE))
    proxy = await make_proxy(redis=redis_settings(restartable_redis, "allow"))
    made = await (await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"})).json()

    restartable_redis.stop()
    sticky = await proxy.post("/v1/messages", json=CLAUDE, headers={"x-session-id": "conv-1"})
    assert sticky.status == 200  # the conversation goes wherever: a cache miss upstream, not an error
    assert sample(proxy, "translator_redis_errors_total", component="sticky") == 2  # read, and remember
    again = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "More",
                                                    "previous_response_id": made["id"]})
    assert (again.status, again.headers["Retry-After"]) == (503, "1")
    assert await again.json() == {"error": {"message": "the response store is unavailable; try again shortly",
                                            "type": "server_error", "param": None, "code": "overloaded"}}
    for method in ("GET", "DELETE"):
        resp = await proxy.request(method, f"/v1/responses/{made['id']}")
        assert (resp.status, (await resp.json())["error"]["type"]) == (503, "server_error")
    unstored = await proxy.post("/v1/responses", json={"model": "claude-x", "input": "Hi"})
    assert unstored.status == 200  # answered; only not kept for a later turn

    restartable_redis.start()  # empty: what was stored before is gone with it (no persistence in this test)
    assert (await proxy.get(f"/v1/responses/{made['id']}")).status == 404


async def test_a_cooldown_is_shared_by_replicas_through_redis(
    aiohttp_client: Callable[..., Awaitable[TestClient]], aiohttp_server: Any, restartable_redis: RestartableRedis,
) -> None:
    from translator.config import Settings
    from translator.server import create_app

    failing, healthy = FakeUpstream(), FakeUpstream()
    for fake in (failing, healthy):
        fake.server = await aiohttp_server(fake.app)
    failing.default = Reply(503, orjson.dumps({"type": "error", "error": {"type": "api_error", "message": "down"}}))
    healthy.default = Reply(200, orjson.dumps(MESSAGE))
    upstreams = [  # the failing one first by weight: without shared health each replica would try it first
        {"name": "failing", "base_url": str(failing.server.make_url("")).rstrip("/"), "weight": 1e9},
        {"name": "healthy", "base_url": str(healthy.server.make_url("")).rstrip("/"), "weight": 1e-9},
    ]
    routing = {"failures_before_cooldown": 1, "cooldown_seconds": 60}
    settings = Settings.model_validate({"upstreams": upstreams, "routing": routing,
                                        "redis": redis_settings(restartable_redis, "allow")})
    replica_a, replica_b = [await aiohttp_client(create_app(settings)) for _ in range(2)]

    assert (await replica_a.post("/v1/messages", json=CLAUDE)).status == 200  # failed over to "healthy"
    assert (len(failing.requests), len(healthy.requests)) == (1, 1)
    assert (await replica_b.post("/v1/messages", json=CLAUDE)).status == 200
    assert (len(failing.requests), len(healthy.requests)) == (1, 2)  # B kept away from it too
    assert sample(replica_b, "translator_upstream_healthy", upstream="failing") == 0


async def test_a_redis_that_never_answers_holds_no_request(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, server_log: Callable[[], str]
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # reads what it is sent, and never answers
        await reader.read()

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        redis = {"url": f"redis://127.0.0.1:{port}/0", "on_error": "deny", "timeout_seconds": 0.2,
                 "retry_seconds": 0.001}
        proxy = await make_proxy(keys=KEYS, redis=redis)
        fake_upstream.json(MESSAGE)
        # (the guard only keeps a regression from hanging the suite; the call ends after the socket timeout)
        refused = await asyncio.wait_for(proxy.post("/v1/messages", json=CLAUDE, headers=LIMITED_AUTH), 60)
        assert refused.status == 503
        free = await asyncio.wait_for(proxy.post("/v1/messages", json=CLAUDE, headers=FREE_AUTH), 60)
        assert free.status == 200
        for _ in range(3):  # each probe answers from the last state; its PING (which hangs) runs on behind it
            assert await asyncio.wait_for(ready(proxy), 60) == (503, {"status": "unavailable", "redis": "down"})
        lines = [x for x in map(orjson.loads, server_log().splitlines()) if x["event"] == "redis unavailable"]
        assert [(x["component"], x["error"]) for x in lines] == [("ping", "TimeoutError")]  # at start, once
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


@pytest.mark.parametrize("on_error", ["allow", "deny"])
async def test_no_redis_configured_changes_nothing(make_proxy: MakeProxy, on_error: str) -> None:
    proxy = await make_proxy(redis={"on_error": on_error})
    assert await ready(proxy) == (200, {"status": "ready"})
    assert b"translator_redis" not in (await (await proxy.get("/metrics")).read())


BUDGET = "sk-tr-budget-outage-0123456789"
CLIENT_KEYS.add(BUDGET)
BUDGET_AUTH = {"Authorization": f"Bearer {BUDGET}"}
BUDGETED = [*KEYS, {"name": "budget", "hash": hash_key(BUDGET), "budget_tokens": 1_000_000}]


@pytest.mark.parametrize("on_error", ["allow", "deny"])
async def test_budgets_follow_on_error_and_usage_is_skipped_quietly_while_redis_is_down(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
    server_log: Callable[[], str], on_error: str,
) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(MESSAGE))
    proxy = await make_proxy(keys=BUDGETED, redis=redis_settings(restartable_redis, on_error))
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=BUDGET_AUTH)).status == 200

    restartable_redis.stop()
    budgeted = await proxy.post("/v1/chat/completions", json=CHAT, headers=BUDGET_AUTH)
    if on_error == "allow":
        assert budgeted.status == 200  # served, unmetered by its budget
    else:
        assert (budgeted.status, budgeted.headers["Retry-After"]) == (503, "1")
        assert await budgeted.json() == {"error": {"message": "usage store unavailable: ConnectionError",
                                                   "type": "server_error", "param": None, "code": None}}
    for _ in range(2):  # a key without a budget is served; only its usage goes unrecorded
        assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=FREE_AUTH)).status == 200
    served = 3 if on_error == "allow" else 2
    await until(lambda: sample(proxy, "translator_redis_errors_total", component="usage") == 1 + served)
    assert not [line for line in server_log().splitlines() if "usage" in str(orjson.loads(line)["event"])]

    restartable_redis.start()
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=BUDGET_AUTH)).status == 200
    assert redis_log(server_log) == [
        ("redis available", "info"), ("redis unavailable", "warning"), ("redis available again", "info")]


class Blackhole:
    """A TCP relay in front of a real redis-server that, while ``hold`` is set, swallows the usage writes it is
    sent (the one command only they send): they never get an answer, as from a Redis that hangs. (Only them:
    other calls made for a request, upstream cool-downs for one, are waited for by design, up to the timeout.)"""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.hold = False
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/0"

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, holds: bool) -> None:
            while data := await src.read(65536):
                if not (holds and self.hold and b"HINCRBYFLOAT" in data):
                    dst.write(data)
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False),
                             return_exceptions=True)

    async def release(self) -> None:
        """Stop swallowing, and cut every connection (what was swallowed is lost: its caller sees a reset)."""
        self.hold = False
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def close(self) -> None:
        await self.release()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def test_a_response_is_not_held_for_its_usage_write(
    make_proxy: MakeProxy, fake_upstream: FakeUpstream, restartable_redis: RestartableRedis,
    server_log: Callable[[], str],
) -> None:
    from translator.server.state import USAGE

    blackhole = Blackhole(restartable_redis.port)
    url = await blackhole.start()
    try:
        # (a timeout far past the guard: a response held for the write would not come back in time)
        redis = {"url": url, "on_error": "allow", "timeout_seconds": 120.0, "retry_seconds": 0.001}
        proxy = await make_proxy(keys=KEYS, redis=redis)
        blackhole.hold = True
        fake_upstream.json(MESSAGE)
        resp = await asyncio.wait_for(proxy.post("/v1/messages", json=CLAUDE, headers=FREE_AUTH), 60)
        assert resp.status == 200
        store = proxy.server.app[USAGE]
        assert len(store._pending) == 1  # the write is still waiting for Redis, and the response went out
        await blackhole.release()  # the write's connection is cut: retried once, on a fresh connection
        await asyncio.wait_for(store.close(), 60)  # what shutdown does: waits for the writes in flight
        today = dt.datetime.now(dt.UTC).date()
        reader = make_usage_store(RedisSettings(url=restartable_redis.url))
        rows = await reader.rows(today - dt.timedelta(days=1), today)  # (around midnight UTC, either day)
        await reader.close()
        assert [(r.key, r.counts.requests) for r in rows] == [("free", 1)]  # nothing lost
        assert not [x for x in map(orjson.loads, server_log().splitlines()) if x["level"] == "warning"]
    finally:
        await blackhole.close()
