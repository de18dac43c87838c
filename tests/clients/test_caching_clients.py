"""Automatic prompt caching as OpenAI clients see it: the real ``openai`` SDK and LangChain's ``ChatOpenAI``,
through the proxy, against the caching fake upstream (``bench/caching_upstream.py``): a conversation with a
long system prompt writes the cache from its second turn (the first is a single request whose prefix nothing
shares yet: not worth a write) and reports ``cached_tokens`` from then on, rising with the history."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient, TestServer
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from bench.caching_upstream import CachingUpstream
from tests.conftest import ProxyServer
from translator.config import Settings
from translator.server import create_app, runner_kwargs

SONNET = "claude-sonnet-4-5"
LONG = "You are a careful assistant. Follow the house rules to the letter. " * 140
QUESTIONS = ["What is a prefix?", "And a suffix?", "And an infix?", "And a circumfix?"]


@pytest.fixture
async def proxied(
    aiohttp_server: Callable[..., Awaitable[TestServer]], aiohttp_client: Callable[..., Awaitable[TestClient]]
) -> tuple[CachingUpstream, str]:
    fake = CachingUpstream()
    server = await aiohttp_server(fake.app())
    settings = Settings.model_validate({"upstream": {"base_url": str(server.make_url("")).rstrip("/")}})
    proxy = await aiohttp_client(ProxyServer(create_app(settings), runner_kwargs(settings)))
    return fake, str(proxy.make_url("/v1"))


def _check(cached: list[int], fake: CachingUpstream) -> None:
    assert cached == [u["cache_read_input_tokens"] for u in fake.usages]  # exactly what the upstream billed
    assert cached[0] == cached[1] == 0  # the first turn writes nothing, the second writes the whole prompt
    assert 0 < cached[2] < cached[3]  # then each turn reads what the one before wrote


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_sdk_cached_tokens_rise(proxied: tuple[CachingUpstream, str], stream: bool) -> None:
    fake, base_url = proxied
    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=20)
    messages: list[Any] = [{"role": "system", "content": LONG}]
    cached, written = [], []
    try:
        for question in QUESTIONS:
            messages.append({"role": "user", "content": question})
            if stream:
                chunks = [c async for c in await client.chat.completions.create(
                    model=SONNET, messages=messages, stream=True, stream_options={"include_usage": True})]
                usage, answer = chunks[-1].usage, "".join(c.choices[0].delta.content or "" for c in chunks[:-1])
            else:
                completion = await client.chat.completions.create(model=SONNET, messages=messages)
                usage, answer = completion.usage, completion.choices[0].message.content
            assert usage is not None and usage.prompt_tokens_details is not None
            cached.append(usage.prompt_tokens_details.cached_tokens)
            written.append(usage.prompt_tokens_details.cache_write_tokens)
            messages.append({"role": "assistant", "content": answer})
    finally:
        await client.close()
    _check(cached, fake)
    assert written == [u["cache_creation_input_tokens"] for u in fake.usages]
    assert written[0] == 0 < written[1]


async def test_langchain_cached_tokens_rise(proxied: tuple[CachingUpstream, str]) -> None:
    fake, base_url = proxied
    llm = ChatOpenAI(model=SONNET, base_url=base_url, api_key="sk-test", max_retries=0, timeout=20)
    history: list[Any] = [SystemMessage(LONG)]
    cached = []
    for question in QUESTIONS:
        history.append(HumanMessage(question))
        reply = await asyncio.to_thread(llm.invoke, history)
        assert isinstance(reply, AIMessage) and reply.usage_metadata is not None
        cached.append(reply.usage_metadata.get("input_token_details", {}).get("cache_read", 0))
        history.append(reply)
    _check(cached, fake)
