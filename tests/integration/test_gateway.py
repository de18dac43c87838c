"""Client keys, model permissions and per-key limits, on both routes, through the real server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import orjson
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream, Reply
from tests.integration.test_limits import handled
from translator.gateway.keys import hash_key

ALICE = "sk-tr-alice-0123456789abcdef"
BOB = "sk-tr-bob-0123456789abcdef"
CAROL = "sk-tr-carol-0123456789abcdef"
ADMIN = "sk-tr-admin-0123456789abcdef"
CLIENT_KEYS.update({ALICE, BOB, CAROL, ADMIN})
KEYS = [
    {"name": "alice", "hash": hash_key(ALICE), "models": ["claude-*"], "rpm": 2},
    {"name": "bob", "hash": hash_key(BOB), "models": ["gpt-4o"], "concurrency": 1},
    {"name": "ops", "hash": hash_key(ADMIN), "models": [], "admin": True},
]
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 2}}
CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
async def gateway(make_proxy):
    return await make_proxy(keys=KEYS, upstream={"api_key": "sk-upstream-secret"},
                            models={"aliases": {"gpt-4o": "claude-x"}})


@pytest.mark.parametrize("headers,message", [
    ({}, "missing API key"),
    ({"Authorization": "Bearer sk-tr-wrong"}, "invalid API key"),
    ({"x-api-key": "sk-tr-wrong"}, "invalid API key"),
])
async def test_401_in_each_routes_shape(gateway, fake_upstream: FakeUpstream, headers, message) -> None:
    resp = await gateway.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"].startswith(message)
    resp = await gateway.post("/v1/messages", json=CLAUDE, headers=headers)
    assert resp.status == 401
    body = await resp.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    assert fake_upstream.requests == []


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens"])
async def test_401_comes_before_the_body_is_read(gateway, fake_upstream: FakeUpstream, path: str) -> None:
    # A caller without a key gets no validation feedback, and costs no parsing (as Anthropic answers).
    for body in (b"notjson", b'{"model": "claude-x"}'):
        resp = await gateway.post(path, data=body, headers={"Content-Type": "application/json"})
        assert resp.status == 401
        assert "authentication_error" in await resp.text()
    assert fake_upstream.requests == []


async def test_a_key_in_either_auth_header_is_ours(gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    headers = {"x-api-key": "sk-ant-api03-left-in-the-environment", "Authorization": f"Bearer {ALICE}"}
    resp = await gateway.post("/v1/messages", json=CLAUDE, headers=headers)
    assert resp.status == 200
    assert fake_upstream.last.headers["x-api-key"] == "sk-upstream-secret"


async def test_403_when_the_key_may_not_use_the_model(gateway, fake_upstream: FakeUpstream) -> None:
    resp = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "claude-x"},
                              headers={"Authorization": f"Bearer {BOB}"})
    assert resp.status == 403
    assert await resp.json() == {"error": {"message": "key 'bob' may not use model 'claude-x'",
                                           "type": "permission_error", "param": None, "code": None}}
    resp = await gateway.post("/v1/messages", json={**CLAUDE, "model": "claude-y"}, headers={"x-api-key": BOB})
    assert resp.status == 403
    assert await resp.json() == {"type": "error", "error": {"type": "permission_error",
                                                            "message": "key 'bob' may not use model 'claude-y'"}}
    assert fake_upstream.requests == []


async def test_allowed_alias_goes_upstream_with_our_key_not_the_clients(gateway, fake_upstream) -> None:
    fake_upstream.json(MESSAGE)
    resp = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"},
                              headers={"Authorization": f"Bearer {BOB}"})
    assert resp.status == 200
    sent = fake_upstream.last.headers
    assert sent["x-api-key"] == "sk-upstream-secret"
    assert BOB not in str(sent)


async def test_client_keys_never_go_upstream_even_without_an_upstream_key(make_proxy, fake_upstream) -> None:
    proxy = await make_proxy(keys=KEYS)
    fake_upstream.json(MESSAGE)
    resp = await proxy.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})
    assert resp.status == 200
    assert "x-api-key" not in fake_upstream.last.headers
    assert "Authorization" not in fake_upstream.last.headers


async def test_requests_per_minute_at_the_boundary(gateway, fake_upstream: FakeUpstream) -> None:
    for _ in range(2):
        fake_upstream.json(MESSAGE)
    auth = {"Authorization": f"Bearer {ALICE}"}
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    second = await gateway.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})
    assert second.status == 200
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    third = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert third.status == 429
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    body = await third.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"] == "rate limit: 2 requests per minute for key 'alice'"
    fourth = await gateway.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})
    assert fourth.status == 429
    assert (await fourth.json())["error"]["type"] == "rate_limit_error"
    assert len(fake_upstream.requests) == 2


async def test_concurrency_limit_holds_for_a_whole_stream(
    gateway, fake_upstream: FakeUpstream, server_log: Callable[[], str]
) -> None:
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}
    block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    head = b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in (start, block))
    release = asyncio.Event()  # the stream stays under way (its message_stop unsent) until the refusal is seen
    fake_upstream.sse(head + b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", chunk_size=len(head),
                      release=release)
    auth = {"Authorization": f"Bearer {BOB}"}
    streaming = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o", "stream": True},
                                   headers=auth)
    assert streaming.status == 200
    second = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=auth)
    assert second.status == 429
    assert (await second.json())["error"]["message"] == "rate limit: 1 concurrent requests for key 'bob'"
    release.set()
    await streaming.read()
    await handled(server_log, "/v1/chat/completions", 200)  # the stream's handler is done: its lease is back
    fake_upstream.json(MESSAGE)
    third = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o"}, headers=auth)
    assert third.status == 200


async def test_models_list_needs_a_key_too(gateway) -> None:
    resp = await gateway.get("/v1/models")
    assert resp.status == 401


async def test_metrics_count_requests_tokens_and_refusals(gateway, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(MESSAGE)
    await gateway.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": ALICE})
    await gateway.post("/v1/chat/completions", json=CHAT)
    assert (await gateway.get("/metrics")).status == 401  # key names and traffic are not for anyone
    refused = await gateway.get("/metrics", headers={"x-api-key": ALICE})  # nor for any client key
    assert refused.status == 403
    assert await refused.json() == {"error": {"message": "key 'alice' is not an admin key ([[keys]] admin = true)",
                                              "type": "permission_error", "param": None, "code": None}}
    text = await (await gateway.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})).text()
    assert 'translator_requests_total{model="claude-x",route="openai",status="200",upstream="default"} 1.0' in text
    # a 401 is answered before the body is read: its metrics name no model
    assert 'translator_requests_total{model="",route="openai",status="401",upstream=""} 1.0' in text
    assert 'translator_tokens_total{kind="input",model="claude-x",route="openai"} 3.0' in text
    assert 'translator_tokens_total{kind="output",model="claude-x",route="openai"} 2.0' in text
    assert 'translator_upstream_healthy{upstream="default"} 1.0' in text
    assert 'translator_key_requests_total{key="alice"} 1.0' in text
    assert 'translator_key_tokens_total{key="alice",kind="input"} 3.0' in text
    assert 'translator_key_tokens_total{key="alice",kind="output"} 2.0' in text


async def test_the_log_names_the_key_and_never_shows_it(gateway, fake_upstream, server_log) -> None:
    fake_upstream.json(MESSAGE)
    await gateway.post("/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {ALICE}"})
    lines = [orjson.loads(x) for x in server_log().splitlines() if x.startswith("{")]
    request = next(x for x in lines if x.get("event") == "request" and x.get("status") == 200)
    assert request["key"] == "alice"
    assert request["upstream"] == "default"
    assert request["usage"]["prompt_tokens"] == 3
    assert ALICE not in server_log()
    assert "sk-upstream-secret" not in server_log()


async def test_each_request_has_an_id_of_its_own_in_the_log(proxy, fake_upstream, server_log) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(MESSAGE))
    for _ in range(20):
        await proxy.post("/v1/chat/completions", json=CHAT)
    ids = [x["request_id"] for x in map(orjson.loads, server_log().splitlines()) if x.get("event") == "request"]
    assert len(ids) == len(set(ids)) == 20
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


async def test_limits_are_shared_by_replicas_through_redis(aiohttp_client, fake_upstream, redis_url) -> None:
    from translator.config import Settings
    from translator.server import create_app

    base = str(fake_upstream.server.make_url("")).rstrip("/")
    settings = Settings.model_validate({"keys": KEYS, "redis": {"url": redis_url}, "upstream": {"base_url": base}})
    replica_a = await aiohttp_client(create_app(settings))
    replica_b = await aiohttp_client(create_app(settings))
    for _ in range(2):
        fake_upstream.json(MESSAGE)
    auth = {"x-api-key": ALICE}
    assert (await replica_a.post("/v1/messages", json=CLAUDE, headers=auth)).status == 200
    assert (await replica_b.post("/v1/messages", json=CLAUDE, headers=auth)).status == 200
    refused = await replica_a.post("/v1/chat/completions", json=CHAT, headers=auth)
    assert refused.status == 429
    assert (await refused.json())["error"]["message"] == "rate limit: 2 requests per minute for key 'alice'"


async def test_stickiness_is_shared_by_replicas_through_redis(aiohttp_client, aiohttp_server, redis_url) -> None:
    from translator.config import Settings
    from translator.server import create_app

    fakes = []
    for _ in range(2):
        fake = FakeUpstream()
        fake.server = await aiohttp_server(fake.app)
        for _ in range(10):
            fake.json(MESSAGE)
        fakes.append(fake)
    upstreams = [{"name": f"u{i}", "base_url": str(f.server.make_url("")).rstrip("/")} for i, f in enumerate(fakes)]
    settings = Settings.model_validate({"upstreams": upstreams, "redis": {"url": redis_url}})
    replicas = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    for i in range(8):
        resp = await replicas[i % 2].post("/v1/messages", json={**CLAUDE, "metadata": {"user_id": "conv-9"}})
        assert resp.status == 200
    assert sorted(len(f.requests) for f in fakes) == [0, 8]


async def test_streamed_choices_count_against_the_token_limit(make_proxy, fake_upstream: FakeUpstream) -> None:
    keys = [{"name": "carol", "hash": hash_key(CAROL), "tpm": 20}]
    proxy = await make_proxy(keys=keys, upstream={"api_key": "sk-upstream-secret"})
    start = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None,
                                                  "usage": {"input_tokens": 10, "output_tokens": 1}}}
    events = [start, {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
              {"type": "message_stop"}]
    for _ in range(4):
        fake_upstream.events(events)
    auth = {"x-api-key": CAROL}
    first = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True, "n": 2}, headers=auth)
    assert first.status == 200
    await first.read()
    second = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True, "n": 2}, headers=auth)
    assert second.status == 429  # 2 x (10 + 5) tokens already used this minute
    assert (await second.json())["error"]["message"] == "rate limit: 20 tokens per minute for key 'carol'"


async def test_odd_usage_from_the_upstream_breaks_nothing(make_proxy, fake_upstream: FakeUpstream) -> None:
    keys = [{"name": "carol", "hash": hash_key(CAROL), "concurrency": 1}]
    proxy = await make_proxy(keys=keys, upstream={"api_key": "sk-upstream-secret"})
    for _ in range(2):
        fake_upstream.json({**MESSAGE, "usage": {"input_tokens": "n/a", "output_tokens": None}})
    for _ in range(2):  # the lease of the first is released: the second is not refused
        resp = await proxy.post("/v1/messages", json=CLAUDE, headers={"x-api-key": CAROL})
        assert resp.status == 200


STREAM = [
    {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
    {"type": "message_stop"},
]


@pytest.mark.parametrize(("path", "body"), [("/v1/chat/completions", CHAT), ("/v1/messages", CLAUDE)],
                         ids=["openai", "claude"])
async def test_rate_limit_headers_come_with_streams_and_with_errors(gateway, fake_upstream: FakeUpstream, path: str,
                                                                   body: dict) -> None:
    auth = {"x-api-key": ALICE}
    fake_upstream.events(STREAM)
    streamed = await gateway.post(path, json={**body, "stream": True}, headers=auth)
    assert streamed.status == 200 and streamed.content_type == "text/event-stream"
    assert (streamed.headers["x-ratelimit-limit-requests"], streamed.headers["x-ratelimit-remaining-requests"]) == (
        "2", "1")
    await streamed.read()
    fake_upstream.json({"type": "error", "error": {"type": "invalid_request_error", "message": "no"}}, status=400)
    failed = await gateway.post(path, json=body, headers=auth)
    assert failed.status == 400
    assert failed.headers["x-ratelimit-remaining-requests"] == "0"
