"""Reloading the config in a running server (``reload_app``, what SIGHUP runs): keys, models, upstreams and
routing change in one step, requests in flight finish on the settings they started with, and a config that
does not validate is refused with the old one kept. ``test_workers.py`` sends the real signal to real
processes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.config import Settings
from translator.gateway.keys import hash_key
from translator.server import create_app
from translator.server.app import reload_app
from translator.server.state import METRICS, RUNTIME

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "from A"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 1, "output_tokens": 1}}


def _events(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
        {"type": "message_stop"},
    ]


KEY_A, KEY_B = "sk-tr-reload-test-key-alice", "sk-tr-reload-test-key-bob"
CLIENT_KEYS.update({KEY_A, KEY_B})


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


class HeldStream:
    """An upstream whose one stream sends its first content, then waits for ``release`` to send the rest."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.models: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self._stream)

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.models.append((await request.json())["model"])
        events = _events("from A")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_sse(events[:3]))
        await self.release.wait()
        await response.write(_sse(events[3:]))
        await response.write_eof()
        return response


@pytest.fixture
async def two_fakes(aiohttp_server: Any) -> list[FakeUpstream]:
    fakes = []
    for _ in range(2):
        fake = FakeUpstream()
        fake.server = await aiohttp_server(fake.app)
        fakes.append(fake)
    return fakes


def _url(fake: FakeUpstream) -> str:
    return str(fake.server.make_url("")).rstrip("/")


def _settings(fake: FakeUpstream, *, alias: str, keys: list[tuple[str, str]], **sections: Any) -> Settings:
    return Settings.model_validate({
        "upstreams": [{"name": f"up-{alias}", "base_url": _url(fake)}],
        "models": {"aliases": {"fast": alias}},
        "keys": [{"name": name, "hash": hash_key(key)} for name, key in keys],
        **sections,
    })


def _chat(model: str = "fast", *, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _counted(client: TestClient, result: str) -> float | None:
    return client.server.app[METRICS].registry.get_sample_value("translator_config_reloads_total", {"result": result})


async def test_a_reload_swaps_keys_models_and_upstreams_and_in_flight_requests_finish_on_the_old_ones(
    aiohttp_client: Any, aiohttp_server: Any, two_fakes: list[FakeUpstream], server_log: Any
) -> None:
    held = HeldStream()
    held_url = str((await aiohttp_server(held.app)).make_url("")).rstrip("/")
    _, b = two_fakes
    old = Settings.model_validate({"upstreams": [{"name": "up-claude-a", "base_url": held_url}],
                                   "models": {"aliases": {"fast": "claude-a"}},
                                   "keys": [{"name": "alice", "hash": hash_key(KEY_A)}]})
    new = _settings(b, alias="claude-b", keys=[("bob", KEY_B)])
    client = await aiohttp_client(create_app(old))
    app = client.server.app
    in_flight = await client.post("/v1/chat/completions", json=_chat(stream=True), headers=_auth(KEY_A))
    assert in_flight.status == 200
    first = app[RUNTIME].current

    assert await reload_app(app, lambda: new) is True

    assert app[RUNTIME].current is not first
    b.json({**MESSAGE, "content": [{"type": "text", "text": "from B"}]})
    after = await client.post("/v1/chat/completions", json=_chat(), headers=_auth(KEY_B))
    assert after.status == 200
    assert (await after.json())["choices"][0]["message"]["content"] == "from B"
    assert b.last.json["model"] == "claude-b"  # the new alias, to the new upstream
    refused = await client.post("/v1/chat/completions", json=_chat(), headers=_auth(KEY_A))
    assert refused.status == 401  # alice's key went with the old config
    old_session = first.pool.upstreams[0]._session
    assert old_session is not None and not old_session.closed  # its request is still streaming on it

    held.release.set()
    body = await in_flight.read()
    assert b'"content":"from A"' in body and body.endswith(b"data: [DONE]\n\n")  # finished, on the old upstream
    assert held.models == ["claude-a"]
    await asyncio.gather(*app[RUNTIME].retiring)
    assert old_session.closed  # closed once its last request ended
    assert _counted(client, "applied") == 1
    logged = [orjson.loads(line) for line in server_log().splitlines() if '"config reloaded"' in line]
    assert [(x["upstreams"], x["keys"]) for x in logged] == [(["up-claude-b"], 1)]


async def test_a_config_that_does_not_validate_is_refused_and_the_old_one_stays(
    aiohttp_client: Any, two_fakes: list[FakeUpstream], server_log: Any
) -> None:
    a, _ = two_fakes
    client = await aiohttp_client(create_app(_settings(a, alias="claude-a", keys=[("alice", KEY_A)])))
    app = client.server.app
    first = app[RUNTIME].current

    def broken() -> Settings:
        return Settings.model_validate({"keys": [{"name": "alice", "hash": "not-a-hash"}]})

    def unreadable() -> Settings:
        raise FileNotFoundError(2, "No such file or directory")

    assert await reload_app(app, broken) is False
    assert await reload_app(app, unreadable) is False

    assert app[RUNTIME].current is first
    a.json(MESSAGE)
    still = await client.post("/v1/chat/completions", json=_chat(), headers=_auth(KEY_A))
    assert still.status == 200 and a.last.json["model"] == "claude-a"
    assert _counted(client, "refused") == 2
    assert _counted(client, "applied") is None
    refusals = [orjson.loads(line) for line in server_log().splitlines() if "config reload refused" in line]
    assert [(x["level"], x["error"]) for x in refusals] == [
        ("error", "keys[0].hash: not 'sha256:' and 64 hex digits (`translator keys create` prints one)"),
        ("error", "[Errno 2] No such file or directory"),
    ]


async def test_sections_read_at_start_need_a_restart_and_keep_their_running_values(
    aiohttp_client: Any, two_fakes: list[FakeUpstream], server_log: Any
) -> None:
    a, _ = two_fakes
    old = _settings(a, alias="claude-a", keys=[("alice", KEY_A)])
    client = await aiohttp_client(create_app(old))
    app = client.server.app
    new = _settings(a, alias="claude-a2", keys=[("alice", KEY_A)], server={"port": 9999, "strict": True},
                    redis={"url": "redis://127.0.0.1:1/0"})

    assert await reload_app(app, lambda: new) is True

    running = app[RUNTIME].current.settings
    assert (running.server, running.redis) == (old.server, old.redis)
    assert running.models.aliases == {"fast": "claude-a2"}  # the rest applies
    warned = [orjson.loads(line) for line in server_log().splitlines() if "needs a restart" in line]
    assert [(x["level"], x["section"]) for x in warned] == [("warning", "server"), ("warning", "redis")]


async def test_with_several_workers_a_reload_adding_limits_without_redis_is_refused(
    aiohttp_client: Any, two_fakes: list[FakeUpstream], server_log: Any
) -> None:
    a, _ = two_fakes
    client = await aiohttp_client(create_app(_settings(a, alias="claude-a", keys=[("alice", KEY_A)]), workers=2))
    app = client.server.app
    limited = Settings.model_validate({
        "upstreams": [{"name": "up", "base_url": _url(a)}],
        "keys": [{"name": "alice", "hash": hash_key(KEY_A), "rpm": 5}],
    })
    assert await reload_app(app, lambda: limited) is False
    assert _counted(client, "refused") == 1
    assert "set [redis] url to share the limits between workers, or run one worker" in server_log()


async def test_new_limits_apply_to_the_counts_already_made(
    aiohttp_client: Any, two_fakes: list[FakeUpstream]
) -> None:
    """The limiter outlives a reload: a key's requests so far still count against its new limit."""
    a, _ = two_fakes
    keys = [{"name": "alice", "hash": hash_key(KEY_A), "rpm": 10}]
    base = {"upstreams": [{"name": "up", "base_url": _url(a)}]}
    client = await aiohttp_client(create_app(Settings.model_validate({**base, "keys": keys})))
    for _ in range(2):
        a.json(MESSAGE)
        assert (await client.post("/v1/chat/completions", json=_chat(), headers=_auth(KEY_A))).status == 200
    tighter = Settings.model_validate({**base, "keys": [{**keys[0], "rpm": 2}]})
    assert await reload_app(client.server.app, lambda: tighter) is True
    third = await client.post("/v1/chat/completions", json=_chat(), headers=_auth(KEY_A))
    assert third.status == 429
    assert third.headers["x-ratelimit-limit-requests"] == "2"


async def test_a_reload_that_would_open_a_public_proxy_is_refused(
    aiohttp_client: Any, two_fakes: list[FakeUpstream], server_log: Any
) -> None:
    """At start no client keys on a public address is refused; a reload removing the last key is too (else it
    would open the proxy, /metrics and /v1/usage to anyone who reaches the port)."""
    a, _ = two_fakes
    public = {"server": {"host": "0.0.0.0"}}
    client = await aiohttp_client(create_app(_settings(a, alias="claude-a", keys=[("alice", KEY_A)], **public)))
    app = client.server.app
    first = app[RUNTIME].current

    assert await reload_app(app, lambda: _settings(a, alias="claude-a", keys=[], **public)) is False

    assert app[RUNTIME].current is first
    assert (await client.post("/v1/chat/completions", json=_chat())).status == 401
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/v1/usage")).status == 401
    assert _counted(client, "refused") == 1
    assert "refusing to bind 0.0.0.0 with no client keys configured" in server_log()
    # The running [server] section decides (a reload cannot change it): on loopback, no keys is allowed.
    local = create_app(_settings(a, alias="claude-a", keys=[("alice", KEY_A)]))
    local_client = await aiohttp_client(local)
    assert await reload_app(local_client.server.app, lambda: _settings(a, alias="claude-a", keys=[], **public))


class GatedUpstream:
    """An upstream whose requests wait for ``release``, then answer 429 (the pool marks it unhealthy)."""

    def __init__(self) -> None:
        self.arrived, self.release = asyncio.Event(), asyncio.Event()
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self._busy)

    async def _busy(self, request: web.Request) -> web.Response:
        self.arrived.set()
        await self.release.wait()
        return web.json_response({"type": "error", "error": {"type": "rate_limit_error", "message": "busy"}},
                                 status=429, headers={"retry-after": "30"})


@pytest.mark.parametrize(("old_name", "after"), [("removed", None), ("kept", 1.0)])
async def test_a_replaced_runtimes_requests_do_not_rewrite_the_upstream_health_gauge(
    aiohttp_client: Any, aiohttp_server: Any, two_fakes: list[FakeUpstream], old_name: str, after: float | None
) -> None:
    """A request in flight across a reload fails on the old runtime's upstream. Its report neither brings back
    the series of an upstream the reload removed (it goes once the old runtime's last request has ended) nor
    overwrites that of one the new runtime also has (whose health is the new pool's)."""
    gated = GatedUpstream()
    gated_url = str((await aiohttp_server(gated.app)).make_url("")).rstrip("/")
    _, b = two_fakes
    routing = {"max_attempts": 1}
    old = Settings.model_validate({"upstreams": [{"name": old_name, "base_url": gated_url}], "routing": routing})
    new = Settings.model_validate({"upstreams": [{"name": "kept", "base_url": _url(b)}], "routing": routing})
    client = await aiohttp_client(create_app(old))
    app = client.server.app
    first = app[RUNTIME].current

    def healthy(name: str) -> float | None:
        return app[METRICS].registry.get_sample_value("translator_upstream_healthy", {"upstream": name})

    pending = asyncio.ensure_future(client.post("/v1/chat/completions", json=_chat("claude-x")))
    await gated.arrived.wait()
    assert await reload_app(app, lambda: new) is True
    assert healthy("kept") == 1
    gated.release.set()
    assert (await pending).status == 429  # reported unhealthy by the old pool
    await asyncio.gather(*app[RUNTIME].retiring)

    assert healthy(old_name) == after
    assert healthy("kept") == 1
    first.health(old_name, False)  # a report after retirement: nothing comes back
    assert healthy(old_name) == after


async def test_a_model_list_in_flight_across_a_reload_is_not_cached_for_the_new_upstreams(
    aiohttp_client: Any, aiohttp_server: Any
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def old_models(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"data": [{"id": "claude-old", "type": "model"}]})

    async def new_models(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "claude-new", "type": "model"}]})

    def settings(handler: Any, url: Any) -> Settings:
        return Settings.model_validate({"upstreams": [{"name": handler.__name__, "base_url": url, "api_key": "k"}]})

    urls = []
    for handler in (old_models, new_models):
        upstream = web.Application()
        upstream.router.add_get("/v1/models", handler)
        urls.append(str((await aiohttp_server(upstream)).make_url("")).rstrip("/"))
    client = await aiohttp_client(create_app(settings(old_models, urls[0])))
    app = client.server.app
    pending = asyncio.ensure_future(client.get("/v1/models"))
    await arrived.wait()

    assert await reload_app(app, lambda: settings(new_models, urls[1])) is True
    release.set()
    assert [m["id"] for m in (await (await pending).json())["data"]] == ["claude-old"]  # on the old runtime

    listed = await (await client.get("/v1/models")).json()
    assert [m["id"] for m in listed["data"]] == ["claude-new"]  # not the old list, cached after the swap
