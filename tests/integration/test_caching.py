"""Automatic prompt caching end to end: the real proxy in front of the caching fake upstream
(``bench/caching_upstream.py``, Claude's caching rules), on the chat, Responses and Claude routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bench.caching_upstream import CachingUpstream, count_tokens
from tests.conftest import ProxyServer
from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
from translator.config import Settings
from translator.server import create_app, runner_kwargs
from translator.server.caching import EXTENDED_TTL_BETA

SONNET = "claude-sonnet-4-5"
CHAT = "/v1/chat/completions"
LONG = "All work and no play makes a dull prompt. " * 150  # about 1,650 tokens to the fake, 1,900 estimated
MARK = {"type": "ephemeral"}
MakeProxy = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> CachingUpstream:
    fake = CachingUpstream()
    fake.server = await aiohttp_server(fake.app())  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def make_proxy(aiohttp_client: Callable[..., Awaitable[TestClient]], upstream: CachingUpstream) -> MakeProxy:
    async def make(**sections: Any) -> TestClient:
        base_url = str(upstream.server.make_url("")).rstrip("/")  # type: ignore[attr-defined]
        settings = Settings.model_validate({"upstream": {"base_url": base_url}, **sections})
        return await aiohttp_client(ProxyServer(create_app(settings), runner_kwargs(settings)))

    return make


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def sent(upstream: CachingUpstream, index: int = -1) -> dict[str, Any]:
    return upstream.seen[index][0]


def conversation(*turns: str) -> list[dict[str, Any]]:
    """A system prompt, then user and assistant turns alternating."""
    roles = ["user", "assistant"]
    return [{"role": "system", "content": LONG}] + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


# --- the chat route ---


async def test_a_conversation_gets_breakpoints_and_reports_them(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": conversation("Hi", "Hello.", "Go on"),
                                        "prompt_cache_key": "conv-1", "prompt_cache_retention": "in_memory"})
    assert resp.status == 200
    assert sent(upstream)["system"] == [text(LONG, cache_control=MARK)]
    assert sent(upstream)["messages"] == [
        {"role": "user", "content": [text("Hi")]},
        {"role": "assistant", "content": [text("Hello.")]},
        {"role": "user", "content": [text("Go on", cache_control=MARK)]},
    ]
    assert resp.headers["x-translator-adjustments"] == (
        "prompt cache breakpoint on system[0] (the end of tools and system); "
        "prompt cache breakpoint on messages[2].content[0] (the conversation's last block)")
    assert "x-translator-ignored" not in resp.headers  # prompt_cache_key and _retention are mapped
    assert "anthropic-beta" not in upstream.seen[-1][1]


@pytest.mark.parametrize("stream", [False, True])
async def test_cached_tokens_rise_from_the_second_turn_exactly(
    make_proxy: MakeProxy, upstream: Any, stream: bool
) -> None:
    """Three turns of one conversation: the first is below nothing (no assistant turn yet, prompt unseen),
    the second writes, the third reads what the second wrote; the client's usage is the fake's, exactly."""
    proxy = await make_proxy()
    history: list[dict[str, Any]] = [{"role": "system", "content": LONG}]
    reported = []
    for question in ("First?", "Second?", "Third?"):
        history.append({"role": "user", "content": question})
        body = {"model": SONNET, "messages": history, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        resp = await proxy.post(CHAT, json=body)
        usage = await _usage(resp, stream)
        reported.append(usage)
        history.append({"role": "assistant", "content": "Noted."})
    billed = upstream.usages
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in reported] == [
        b["cache_read_input_tokens"] for b in billed]
    assert [u["prompt_tokens_details"]["cache_write_tokens"] for u in reported] == [
        b["cache_creation_input_tokens"] for b in billed]
    assert [u["prompt_tokens"] for u in reported] == [
        b["input_tokens"] + b["cache_read_input_tokens"] + b["cache_creation_input_tokens"] for b in billed]
    assert billed[0]["cache_read_input_tokens"] == billed[0]["cache_creation_input_tokens"] == 0
    assert billed[1]["cache_read_input_tokens"] == 0 < billed[1]["cache_creation_input_tokens"]
    assert billed[2]["cache_read_input_tokens"] == reported[1]["prompt_tokens"]  # all of turn two, read
    assert billed[2]["input_tokens"] == 0


async def _usage(resp: Any, stream: bool) -> dict[str, Any]:
    assert resp.status == 200
    if not stream:
        return dict((await resp.json())["usage"])
    lines = [line for line in (await resp.read()).split(b"\n") if line.startswith(b"data: {")]
    return dict(orjson.loads(lines[-1][6:])["usage"])


async def test_a_shared_system_prompt_is_cached_from_its_second_sighting(
    make_proxy: MakeProxy, upstream: Any
) -> None:
    proxy = await make_proxy()
    for question in ("Is it red?", "Is it blue?", "Is it green?"):
        resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [
            {"role": "system", "content": LONG}, {"role": "user", "content": question}]})
        assert resp.status == 200
    assert "cache_control" not in str(sent(upstream, 0))  # seen once: not worth a write
    assert sent(upstream, 1)["system"] == [text(LONG, cache_control=MARK)]
    assert sent(upstream, 1)["messages"] == [{"role": "user", "content": [text("Is it blue?")]}]
    system_tokens = count_tokens(text(LONG))
    assert [(u["cache_creation_input_tokens"], u["cache_read_input_tokens"]) for u in upstream.usages] == [
        (0, 0), (system_tokens, 0), (0, system_tokens)]


async def test_below_the_minimum_nothing_changes(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"}]})
    assert resp.status == 200
    assert "cache_control" not in str(sent(upstream))
    assert "x-translator-adjustments" not in resp.headers


async def test_the_clients_own_breakpoints_are_left_alone(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    mine = {"role": "user", "content": [{"type": "text", "text": "Mine", "cache_control": MARK}]}
    messages = [*conversation("Hi", "Hello."), mine]
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": messages})
    assert resp.status == 200
    assert sent(upstream)["system"] == [text(LONG)]
    assert sent(upstream)["messages"][-1] == {"role": "user", "content": [text("Mine", cache_control=MARK)]}
    assert "x-translator-adjustments" not in resp.headers


async def test_n_choices_carry_the_same_breakpoints(make_proxy: MakeProxy, upstream: Any) -> None:
    """n = 2: one decision, the same body for both upstream requests (the prompt counted as seen once)."""
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": SONNET, "n": 2, "messages": conversation("Hi", "Hello.", "More")})
    assert resp.status == 200
    assert len(upstream.seen) == 2
    assert sent(upstream, 0) == sent(upstream, 1)
    assert sent(upstream, 0)["system"] == [text(LONG, cache_control=MARK)]
    assert sent(upstream, 0)["messages"][-1] == {"role": "user", "content": [text("More", cache_control=MARK)]}
    single = {"model": SONNET, "n": 2, "messages": [{"role": "system", "content": LONG + "!"},
                                                     {"role": "user", "content": "Q"}]}
    await proxy.post(CHAT, json=single)
    assert "cache_control" not in str(sent(upstream, 2)) + str(sent(upstream, 3))  # unseen before: n is no reuse
    await proxy.post(CHAT, json={**single, "n": 1})
    assert sent(upstream)["system"] == [text(LONG + "!", cache_control=MARK)]


@pytest.mark.parametrize("sections", [
    {"caching": {"auto": False}},
    {"models": {"profiles": {"claude-sonnet-*": {"prompt_caching": False}}}},
], ids=["auto off", "profile off"])
async def test_turned_off(make_proxy: MakeProxy, upstream: Any, sections: dict[str, Any]) -> None:
    proxy = await make_proxy(**sections)
    resp = await proxy.post(CHAT, json={"model": SONNET, "messages": conversation("Hi", "Hello.", "More")})
    assert resp.status == 200
    assert "cache_control" not in str(sent(upstream))


async def test_retention_24h_asks_for_the_one_hour_ttl(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": SONNET, "prompt_cache_retention": "24h",
                                        "messages": conversation("Hi", "Hello.", "More")}, headers={
                                            "anthropic-beta": "some-beta"})
    assert resp.status == 200
    assert sent(upstream)["system"] == [text(LONG, cache_control={"type": "ephemeral", "ttl": "1h"})]
    assert upstream.seen[-1][1]["anthropic-beta"] == f"some-beta,{EXTENDED_TTL_BETA}"
    assert upstream.usages[-1]["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert resp.headers["x-translator-adjustments"].endswith("(the conversation's last block), ttl 1h")


async def test_retention_24h_on_a_model_without_the_one_hour_ttl(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": "claude-3-7-sonnet-20250219", "prompt_cache_retention": "24h",
                                        "messages": conversation("Hi", "Hello.", "More")})
    assert resp.status == 200
    assert sent(upstream)["system"] == [text(LONG, cache_control=MARK)]
    assert "anthropic-beta" not in upstream.seen[-1][1]
    assert resp.headers["x-translator-adjustments"].startswith(
        "prompt_cache_retention 24h: the model takes only the 5-minute cache TTL; ")


async def test_a_wrong_retention_is_a_400(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post(CHAT, json={"model": SONNET, "prompt_cache_retention": "forever",
                                        "messages": [{"role": "user", "content": "Hi"}]})
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "prompt_cache_retention"
    assert upstream.seen == []


async def test_replicas_share_the_memory_of_prefixes_in_redis(
    make_proxy: MakeProxy, upstream: Any, redis_url: str
) -> None:
    one, two = await make_proxy(redis={"url": redis_url}), await make_proxy(redis={"url": redis_url})
    single = {"model": SONNET, "messages": [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]}
    assert (await one.post(CHAT, json=single)).status == 200
    assert (await two.post(CHAT, json=single)).status == 200
    assert "cache_control" not in str(sent(upstream, 0))
    assert sent(upstream, 1)["system"] == [text(LONG, cache_control=MARK)]  # the other replica saw it


# --- the Responses route ---


async def test_responses_conversation_is_cached(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    items = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "More"}]
    resp = await proxy.post("/v1/responses", json={"model": SONNET, "instructions": LONG, "input": items,
                                                   "store": False, "prompt_cache_key": "c1"})
    assert resp.status == 200
    assert sent(upstream)["system"] == [text(LONG, cache_control=MARK)]
    assert sent(upstream)["messages"][-1] == {"role": "user", "content": [text("More", cache_control=MARK)]}
    assert "x-translator-ignored" not in resp.headers
    resp = await proxy.post("/v1/responses", json={"model": SONNET, "instructions": LONG, "store": False,
                                                   "input": [*items, {"role": "assistant", "content": "Noted."},
                                                             {"role": "user", "content": "Again"}]})
    usage = (await resp.json())["usage"]
    assert usage["input_tokens_details"]["cached_tokens"] == upstream.usages[-1]["cache_read_input_tokens"] > 0


# --- the Claude route ---


CLAUDE_BODY = {"model": SONNET, "max_tokens": 100, "system": LONG, "messages": [
    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "More"}]}


async def test_claude_route_is_left_alone_by_default(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy()
    resp = await proxy.post("/v1/messages", json=CLAUDE_BODY)
    assert resp.status == 200
    assert sent(upstream) == CLAUDE_BODY


async def test_claude_route_when_turned_on(make_proxy: MakeProxy, upstream: Any) -> None:
    proxy = await make_proxy(caching={"claude_route": True})
    resp = await proxy.post("/v1/messages", json=CLAUDE_BODY)
    assert resp.status == 200
    assert sent(upstream) == {**CLAUDE_BODY, "system": [text(LONG, cache_control=MARK)], "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [text("More", cache_control=MARK)]}]}
    assert resp.headers["x-translator-adjustments"].startswith("prompt cache breakpoint on system[0]")
    own = {**CLAUDE_BODY, "cache_control": MARK}  # top-level automatic caching: the client's own
    assert (await proxy.post("/v1/messages", json=own)).status == 200
    assert sent(upstream) == own


async def test_prompt_cache_key_keeps_a_conversation_on_one_upstream(
    aiohttp_client: Callable[..., Awaitable[TestClient]], aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """prompt_cache_key names the conversation for stickiness, before user: 16 requests of one key and 16
    different users all reach one upstream (spread by weight alone, that is a 1-in-30,000 event)."""
    fakes = [CachingUpstream(), CachingUpstream()]
    urls = [str((await aiohttp_server(fake.app())).make_url("")).rstrip("/") for fake in fakes]
    settings = Settings.model_validate({"upstreams": [{"name": "a", "base_url": urls[0]},
                                                      {"name": "b", "base_url": urls[1]}]})
    proxy = await aiohttp_client(ProxyServer(create_app(settings), runner_kwargs(settings)))
    for i in range(16):
        body = {"model": SONNET, "prompt_cache_key": "conv-7", "user": f"user-{i}",
                "messages": [{"role": "user", "content": "Hi"}]}
        assert (await proxy.post(CHAT, json=body)).status == 200
    assert sorted(len(fake.seen) for fake in fakes) == [0, 16]
