"""Usage per key, budgets and the admin surface, through the real server in front of the fake upstream."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.gateway.keys import hash_key

ALICE = "sk-tr-usage-alice-0123456789abcdef"
BOB = "sk-tr-usage-bob-0123456789abcdef"
ADMIN = "sk-tr-usage-admin-0123456789abcdef"
CLIENT_KEYS.update({ALICE, BOB, ADMIN})
OPS = {"name": "ops", "hash": hash_key(ADMIN), "models": [], "admin": True}
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
MODEL = "claude-sonnet-4-5"  # built-in price: $3 input, $15 output, $0.30 cache read, $3.75 cache write per MTok
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 2}}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
RESPONSES = {"model": MODEL, "input": "hi"}
ZERO = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0, "cost_usd": 0.0}


def row(day: str, key: str, model: str = MODEL, **counts: Any) -> dict[str, Any]:
    return {"date": day, "key": key, "model": model, **ZERO, **counts}


async def usage(proxy, query: str = "") -> dict[str, Any]:
    resp = await proxy.get(f"/v1/usage{query}", headers=AS_ADMIN)
    assert resp.status == 200
    return await resp.json()


@pytest.fixture
async def gateway(make_proxy):
    keys = [{"name": "alice", "hash": hash_key(ALICE)}, {"name": "bob", "hash": hash_key(BOB)}, OPS]
    return await make_proxy(keys=keys, upstream={"api_key": "sk-upstream-secret"})


@pytest.mark.parametrize("path", ["/v1/usage", "/metrics"])
async def test_the_admin_surface_needs_an_admin_key(gateway, path: str) -> None:
    missing = await gateway.get(path)
    assert missing.status == 401
    assert (await missing.json())["error"]["type"] == "authentication_error"
    client = await gateway.get(path, headers={"x-api-key": ALICE})
    assert client.status == 403
    assert await client.json() == {"error": {"message": "key 'alice' is not an admin key ([[keys]] admin = true)",
                                             "type": "permission_error", "param": None, "code": None}}
    assert (await gateway.get(path, headers=AS_ADMIN)).status == 200
    assert (await gateway.get(path, headers={"x-api-key": ADMIN})).status == 200


async def test_usage_per_key_and_model_from_every_route(gateway, fake_upstream: FakeUpstream) -> None:
    cached = {**MESSAGE, "usage": {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 1000,
                                   "cache_creation_input_tokens": 200}}
    for reply in (MESSAGE, cached, MESSAGE, MESSAGE):
        fake_upstream.json(reply)
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": ALICE})).status == 200
    assert (await gateway.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})).status == 200
    assert (await gateway.post("/v1/responses", json=RESPONSES, headers={"x-api-key": ALICE})).status == 200
    haiku = {**CHAT, "model": "claude-haiku-4-5"}
    assert (await gateway.post("/v1/chat/completions", json=haiku, headers={"x-api-key": BOB})).status == 200
    report = await usage(gateway)
    today = report["until"]
    assert report["since"] == today[:8] + "01"
    # alice: 3 + 10 + 3 input, 2 + 4 + 2 output; at $3, $15, $0.30 and $3.75 per million
    alice_cost = (16 * 3 + 8 * 15 + 1000 * 0.30 + 200 * 3.75) / 1e6
    assert report["data"] == [
        row(today, "alice", requests=3, input_tokens=16, output_tokens=8, cache_read_input_tokens=1000,
            cache_creation_input_tokens=200, cost_usd=round(alice_cost, 8)),
        row(today, "bob", "claude-haiku-4-5", requests=1, input_tokens=3, output_tokens=2,
            cost_usd=round((3 * 1 + 2 * 5) / 1e6, 8)),
    ]
    assert report["budgets"] == []
    only_bob = await usage(gateway, "?key=bob")
    assert [r["key"] for r in only_bob["data"]] == ["bob"]
    metrics = await (await gateway.get("/metrics", headers=AS_ADMIN)).text()
    assert 'translator_key_requests_total{key="alice"} 3.0' in metrics
    assert 'translator_key_tokens_total{key="alice",kind="cache_read"} 1000.0' in metrics
    assert 'translator_key_tokens_total{key="bob",kind="output"} 2.0' in metrics
    assert f'translator_key_cost_usd_total{{key="alice"}} {alice_cost!r}' in metrics


async def test_a_stream_cut_short_still_records_what_it_used(gateway, fake_upstream: FakeUpstream) -> None:
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                                  "usage": {"input_tokens": 40, "output_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "o"}}
    fake_upstream.events([start, block, delta])  # and the connection ends: no message_stop
    resp = await gateway.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers={"x-api-key": ALICE})
    assert resp.status == 200
    assert b"ended before message_stop" in await resp.read()
    report = await usage(gateway)
    assert report["data"] == [row(report["until"], "alice", requests=1, input_tokens=40, output_tokens=1,
                                  cost_usd=round((40 * 3 + 15) / 1e6, 8))]


async def test_a_client_that_goes_away_mid_stream_is_charged_what_it_used(gateway, fake_upstream) -> None:
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                                  "usage": {"input_tokens": 40, "output_tokens": 1}}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "o"}}
    head = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in (start, block, delta))
    fake_upstream.sse(head + b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", chunk_size=len(head),
                      delay=30)
    resp = await gateway.post("/v1/messages", json={**CLAUDE, "stream": True}, headers={"x-api-key": ALICE})
    assert resp.status == 200
    seen = b""
    async with asyncio.timeout(5):
        while b"text_delta" not in seen:
            seen += await resp.content.readany()
    resp.close()  # the client leaves mid-stream
    async with asyncio.timeout(5):
        while not (report := await usage(gateway))["data"]:
            await asyncio.sleep(0.02)
    assert report["data"] == [row(report["until"], "alice", requests=1, input_tokens=40, output_tokens=1,
                                  cost_usd=round((40 * 3 + 15) / 1e6, 8))]


@pytest.mark.parametrize("query,param", [("?since=yesterday", "since"), ("?until=2026-13-01", "until"),
                                         ("?since=2026-12-08&until=2026-12-07", "since")])
async def test_a_bad_range_is_a_400_naming_it(gateway, query: str, param: str) -> None:
    resp = await gateway.get(f"/v1/usage{query}", headers=AS_ADMIN)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param


async def test_an_open_proxy_reports_usage_under_no_key(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    assert (await proxy.post("/v1/messages", json=CLAUDE)).status == 200
    report = await usage(proxy)
    assert report["data"] == [row(report["until"], "-", requests=1, input_tokens=3, output_tokens=2,
                                  cost_usd=round(39 / 1e6, 8))]


# ---- budgets --------------------------------------------------------------------------------------------------


async def test_past_its_token_budget_a_key_is_refused_in_each_routes_shape(make_proxy, fake_upstream) -> None:
    keys = [{"name": "alice", "hash": hash_key(ALICE), "budget_tokens": 5, "budget_period": "day"}, OPS]
    proxy = await make_proxy(keys=keys, upstream={"api_key": "sk-upstream-secret"})
    fake_upstream.json(MESSAGE)  # 3 + 2 tokens: the whole budget
    auth = {"x-api-key": ALICE}
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    renews = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat() + "T00:00:00Z"
    message = f"key 'alice' used its daily budget of 5 tokens (used 5); it renews at {renews}"
    openai_error = {"error": {"message": message, "type": "insufficient_quota", "param": None,
                              "code": "insufficient_quota"}}
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/responses", RESPONSES)):
        refused = await proxy.post(path, json=body, headers=auth)
        assert refused.status == 429
        assert refused.headers["x-should-retry"] == "false"
        assert "Retry-After" not in refused.headers
        assert await refused.json() == openai_error
    refused = await proxy.post("/v1/messages", json=CLAUDE, headers=auth)
    assert refused.status == 400
    assert refused.headers["x-should-retry"] == "false"
    assert await refused.json() == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    assert len(fake_upstream.requests) == 1
    report = await usage(proxy)
    assert report["budgets"] == [{"key": "alice", "period": "day", "budget_tokens": 5, "budget_usd": None,
                                  "used_tokens": 5, "used_usd": round(39 / 1e6, 6), "renews_at": renews}]
    assert [r["requests"] for r in report["data"]] == [1]  # refused requests are not usage
    metrics = await (await proxy.get("/metrics", headers=AS_ADMIN)).text()
    assert 'translator_rate_limited_total{key="alice",limit="budget"} 3.0' in metrics


async def test_a_usd_budget_counts_by_the_configured_prices(make_proxy, fake_upstream: FakeUpstream) -> None:
    keys = [{"name": "alice", "hash": hash_key(ALICE), "budget_usd": 1.0}, OPS]
    prices = [{"model": "claude-sonnet-*", "input": 100_000, "output": 100_000}]  # $0.10 a token
    proxy = await make_proxy(keys=keys, prices=prices, upstream={"api_key": "sk-upstream-secret"})
    for _ in range(2):
        fake_upstream.json(MESSAGE)  # $0.50 each
    auth = {"x-api-key": ALICE}
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=auth)).status == 200
    assert (await proxy.post("/v1/messages", json=CLAUDE, headers=auth)).status == 200
    refused = await proxy.post("/v1/messages", json=CLAUDE, headers=auth)
    assert refused.status == 400
    assert (await refused.json())["error"]["message"].startswith(
        "key 'alice' used its monthly budget of $1.00 (used $1.0000); it renews at ")
    assert (await usage(proxy))["budgets"][0]["used_usd"] == 1.0


async def test_replicas_share_usage_and_budgets_through_redis(aiohttp_client, fake_upstream, redis_url) -> None:
    from translator.config import Settings
    from translator.server import create_app

    base = str(fake_upstream.server.make_url("")).rstrip("/")
    keys = [{"name": "alice", "hash": hash_key(ALICE), "budget_tokens": 10}, OPS]
    settings = Settings.model_validate({"keys": keys, "redis": {"url": redis_url}, "upstream": {"base_url": base}})
    replica_a = await aiohttp_client(create_app(settings))
    replica_b = await aiohttp_client(create_app(settings))
    for _ in range(2):
        fake_upstream.json(MESSAGE)
    auth = {"x-api-key": ALICE}
    assert (await replica_a.post("/v1/messages", json=CLAUDE, headers=auth)).status == 200
    assert (await replica_b.post("/v1/chat/completions", json=CHAT, headers=auth)).status == 200
    for _ in range(200):  # a request's usage is written just after its answer (not holding it): wait for it
        if sum(r["requests"] for r in (await usage(replica_a))["data"]) == 2:
            break
        await asyncio.sleep(0.01)
    refused = await replica_a.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "insufficient_quota"
    report = await usage(replica_b)
    assert report["data"] == [row(report["until"], "alice", requests=2, input_tokens=6, output_tokens=4,
                                  cost_usd=round(78 / 1e6, 8))]
