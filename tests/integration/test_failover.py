"""Several upstreams: failover before the first byte reaches the client, never after; cool-down;
stickiness by conversation."""

from __future__ import annotations

import functools
import socket
import time

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.fakes import FakeUpstream
from translator.config import Settings
from translator.router import UpstreamPool
from translator.server import create_app, runtime

MESSAGE = {"id": "msg_ok", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "healthy"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 1, "output_tokens": 1}}
START = {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}}
EVENTS = [
    START,
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "healthy"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
CHAT = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]}
CLAUDE = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
async def fakes(aiohttp_server):
    async def make(n: int) -> list[FakeUpstream]:
        out = []
        for _ in range(n):
            fake = FakeUpstream()
            fake.server = await aiohttp_server(fake.app)
            out.append(fake)
        return out

    return make


async def _proxy(aiohttp_client, upstreams: list[dict], **sections) -> TestClient:
    named = [{"name": f"u{i}", **u} for i, u in enumerate(upstreams)]
    settings = Settings.model_validate({"upstreams": named, **sections})
    return await aiohttp_client(create_app(settings))


def _url(fake: FakeUpstream) -> str:
    return str(fake.server.make_url("")).rstrip("/")


# A fixed order (weights make the plan random): each upstream outweighs the next a million to one, so
# u0 is tried first (a plan that misses the order is a one-in-a-million event, not a flaky test).
def _ordered(*urls: str) -> list[dict]:
    return [{"base_url": url, "weight": 1e6 ** (len(urls) - i)} for i, url in enumerate(urls)]


async def test_refused_then_529_then_healthy(aiohttp_client, fakes) -> None:
    busy, healthy = await fakes(2)
    busy.json({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529)
    healthy.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, _ordered(_closed_port_url(), _url(busy), _url(healthy)))
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "healthy"
    assert len(busy.requests) == 1
    assert len(healthy.requests) == 1


@pytest.mark.parametrize("route,body", [("/v1/chat/completions", {**CHAT, "stream": True}),
                                        ("/v1/messages", {**CLAUDE, "stream": True})])
async def test_overloaded_error_as_first_stream_event_is_retried(aiohttp_client, fakes, route, body) -> None:
    flaky, healthy = await fakes(2)
    flaky.events([START, OVERLOADED])
    healthy.events(EVENTS)
    proxy = await _proxy(aiohttp_client, _ordered(_url(flaky), _url(healthy)))
    resp = await proxy.post(route, json=body)
    assert resp.status == 200
    raw = await resp.read()
    assert b"healthy" in raw
    assert b"overloaded" not in raw
    assert len(flaky.requests) == 1 and len(healthy.requests) == 1


async def test_no_retry_after_the_first_byte(aiohttp_client, fakes) -> None:
    failing, healthy = await fakes(2)
    failing.events([*EVENTS[:3], OVERLOADED])  # content went out, then the upstream failed
    proxy = await _proxy(aiohttp_client, _ordered(_url(failing), _url(healthy)))
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    lines = [x[6:] for x in (await resp.read()).split(b"\n") if x.startswith(b"data: ")]
    assert orjson.loads(lines[-1]) == {"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                                 "code": "overloaded"}}
    assert healthy.requests == []


async def test_attempts_are_bounded_and_the_last_error_is_answered(aiohttp_client, fakes) -> None:
    a, b = await fakes(2)
    for fake in (a, b):
        for _ in range(3):
            fake.json({"type": "error", "error": {"type": "api_error", "message": "boom"}}, status=500)
    proxy = await _proxy(aiohttp_client, _ordered(_url(a), _url(b)), routing={"max_attempts": 3})
    resp = await proxy.post("/v1/messages", json=CLAUDE)
    assert resp.status == 500
    assert await resp.json() == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert len(a.requests) + len(b.requests) == 3


async def test_client_errors_are_not_retried(aiohttp_client, fakes) -> None:
    a, b = await fakes(2)
    a.json({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}, status=400)
    proxy = await _proxy(aiohttp_client, _ordered(_url(a), _url(b)))
    resp = await proxy.post("/v1/messages", json=CLAUDE)
    assert resp.status == 400
    assert b.requests == []


async def test_single_upstream_honours_retry_after(aiohttp_client, fakes) -> None:
    (only,) = await fakes(1)
    only.json({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, status=429,
              headers={"retry-after": "0.2"})
    only.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, [{"base_url": _url(only)}])
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    assert len(only.requests) == 2


async def test_retry_after_beyond_the_budget_is_answered_with_429(aiohttp_client, fakes) -> None:
    (only,) = await fakes(1)
    only.json({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, status=429,
              headers={"retry-after": "60"})
    proxy = await _proxy(aiohttp_client, [{"base_url": _url(only)}], routing={"max_retry_seconds": 5})
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "60"
    assert (await resp.json())["error"]["type"] == "rate_limit_error"
    assert len(only.requests) == 1


async def test_failing_upstream_cools_down_and_is_probed_back(aiohttp_client, fakes) -> None:
    bad, good = await fakes(2)
    # bad has nothing scripted: it answers every request with a 500
    for _ in range(10):
        good.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, _ordered(_url(bad), _url(good)),
                         routing={"failures_before_cooldown": 2, "cooldown_seconds": 60})
    for _ in range(4):
        assert (await proxy.post("/v1/chat/completions", json=CHAT)).status == 200
    # two failures took the bad upstream out; the last two requests went straight to the good one
    assert len(bad.requests) == 2
    assert len(good.requests) == 4


async def test_a_conversation_sticks_to_its_upstream(aiohttp_client, fakes) -> None:
    a, b = await fakes(2)
    for fake in (a, b):
        for _ in range(20):
            fake.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, [{"base_url": _url(a)}, {"base_url": _url(b)}])
    for _ in range(10):
        assert (await proxy.post("/v1/chat/completions", json={**CHAT, "user": "conv-1"})).status == 200
    assert sorted([len(a.requests), len(b.requests)]) == [0, 10]
    for _ in range(10):
        headers = {"x-session-id": "conv-2"}
        assert (await proxy.post("/v1/messages", json=CLAUDE, headers=headers)).status == 200
    counts = sorted([len(a.requests), len(b.requests)])
    assert counts in ([0, 20], [10, 10])  # conv-2 also stuck to one upstream, whichever it was


async def test_a_cooled_upstream_is_probed_back_in(aiohttp_client, fakes, monkeypatch) -> None:
    # The pool's time is a clock of the test's own (UpstreamPool's clock=), so that the cool-down is not over
    # before the second request however long the test process is paused, and is over for the third at once.
    clock = Clock()
    monkeypatch.setattr(runtime, "UpstreamPool", functools.partial(UpstreamPool, clock=clock))
    flaky, good = await fakes(2)
    flaky.json({"type": "error", "error": {"type": "api_error", "message": "boom"}}, status=500)
    for _ in range(5):
        flaky.json(MESSAGE)
        good.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, _ordered(_url(flaky), _url(good)),
                         routing={"failures_before_cooldown": 1, "cooldown_seconds": 30})
    assert (await proxy.post("/v1/chat/completions", json=CHAT)).status == 200  # flaky fails, good answers
    assert (await proxy.post("/v1/chat/completions", json=CHAT)).status == 200  # flaky is out: good only
    assert (len(flaky.requests), len(good.requests)) == (1, 2)
    metrics = await (await proxy.get("/metrics")).text()
    assert 'translator_upstream_healthy{upstream="u0"} 0.0' in metrics
    assert 'translator_upstream_attempts_total{outcome="retryable_error",upstream="u0"} 1.0' in metrics
    clock.now += 29.9
    assert (await proxy.post("/v1/chat/completions", json=CHAT)).status == 200  # still cooling: good only
    assert (len(flaky.requests), len(good.requests)) == (1, 3)
    clock.now += 0.2
    assert (await proxy.post("/v1/chat/completions", json=CHAT)).status == 200  # the probe goes to flaky
    assert (len(flaky.requests), len(good.requests)) == (2, 3)
    metrics = await (await proxy.get("/metrics")).text()
    assert 'translator_upstream_healthy{upstream="u0"} 1.0' in metrics


async def test_a_429_to_a_clients_own_key_does_not_cool_the_upstream_for_others(aiohttp_client, fakes) -> None:
    a, b = await fakes(2)
    a.json({"type": "error", "error": {"type": "rate_limit_error", "message": "your key"}}, status=429,
           headers={"retry-after": "60"})
    for _ in range(3):
        a.json(MESSAGE)
        b.json(MESSAGE)
    proxy = await _proxy(aiohttp_client, _ordered(_url(a), _url(b)), routing={"failures_before_cooldown": 1})
    headers = {"x-api-key": "sk-ant-client-one"}
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200  # went to b
    metrics = await (await proxy.get("/metrics")).text()
    assert 'translator_upstream_healthy{upstream="u0"} 1.0' in metrics
    assert (await proxy.post("/v1/chat/completions", json=CHAT, headers=headers)).status == 200
    assert len(a.requests) == 2  # u0 still first in line for the next client


async def test_models_are_listed_from_every_upstream_and_a_failing_one_is_left_out(aiohttp_client, fakes) -> None:
    a, b, c = await fakes(3)
    model = {"type": "model", "display_name": "M", "created_at": "2025-01-01T00:00:00Z"}
    a.json({"data": [{**model, "id": "claude-a"}, {**model, "id": "claude-shared"}], "has_more": False})
    b.json({"data": [{**model, "id": "claude-shared"}, {**model, "id": "claude-b"}, {**model, "id": "other"}]})
    c.raw(502, b"<html>down</html>")
    upstreams = [{"base_url": _url(a), "api_key": "k"}, {"base_url": _url(b), "api_key": "k", "models": ["claude-*"]},
                 {"base_url": _url(c), "api_key": "k"}]
    proxy = await _proxy(aiohttp_client, upstreams)
    body = await (await proxy.get("/v1/models", headers={"anthropic-version": "2023-06-01"})).json()
    assert [m["id"] for m in body["data"]] == ["claude-a", "claude-shared", "claude-b"]  # "other": b does not serve it
    assert (body["first_id"], body["last_id"]) == ("claude-a", "claude-b")


async def test_a_request_that_ran_out_of_attempts_logs_where_it_went(aiohttp_client, fakes, server_log) -> None:
    import orjson

    a, b = await fakes(2)
    for fake in (a, b):
        for _ in range(2):
            fake.json({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, status=529)
    proxy = await _proxy(aiohttp_client, _ordered(_url(a), _url(b)),
                         routing={"max_attempts": 3, "max_retry_seconds": 5})
    started = time.monotonic()
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 503  # 529 as OpenAI clients know it
    # u0, u1, then u0 again: not at once, but after a backoff (0.25 s doubled for the third attempt)
    assert time.monotonic() - started >= 0.5
    assert [len(a.requests), len(b.requests)] == [2, 1]
    lines = [orjson.loads(x) for x in server_log().splitlines() if x.startswith("{")]
    line = next(x for x in lines if x.get("event") == "request")
    assert (line["upstream"], line["attempts"], line["status"]) == ("u0", 3, 503)
    metrics = await (await proxy.get("/metrics")).text()
    assert 'translator_requests_total{model="claude-x",route="openai",status="503",upstream="u0"} 1.0' in metrics
