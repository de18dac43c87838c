"""A key past its budget, as the real SDKs see it: an error they raise at once and never retry, even with
retries on (the openai SDKs retry any 429 unless told not to by ``x-should-retry: false``)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.gateway.keys import hash_key

KEY = "sk-tr-budget-sdk-0123456789abcdef"
ADMIN = "sk-tr-budget-sdk-admin-0123456789abcdef"
CLIENT_KEYS.update({KEY, ADMIN})
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 2}}


@pytest.fixture
async def spent_proxy(make_proxy, fake_upstream: FakeUpstream):
    keys = [{"name": "alice", "hash": hash_key(KEY), "budget_tokens": 5},
            {"name": "ops", "hash": hash_key(ADMIN), "models": [], "admin": True}]
    proxy = await make_proxy(keys=keys, upstream={"api_key": "sk-upstream-secret"})
    fake_upstream.json(MESSAGE)
    first = await proxy.post("/v1/messages", json={"model": "claude-x", "max_tokens": 5,
                                                   "messages": [{"role": "user", "content": "hi"}]},
                             headers={"x-api-key": KEY})
    assert first.status == 200  # the whole budget
    return proxy


async def budget_refusals(proxy) -> str:
    metrics = await (await proxy.get("/metrics", headers={"x-api-key": ADMIN})).text()
    return next(line for line in metrics.splitlines() if line.startswith('translator_rate_limited_total{key="alice"'))


async def test_openai_sdk_raises_insufficient_quota_without_retrying(spent_proxy) -> None:
    client = openai.AsyncOpenAI(base_url=str(spent_proxy.make_url("/v1")), api_key=KEY, max_retries=3, timeout=20)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert caught.value.status_code == 429
    assert caught.value.code == "insufficient_quota"
    assert caught.value.type == "insufficient_quota"
    assert await budget_refusals(spent_proxy) == 'translator_rate_limited_total{key="alice",limit="budget"} 1.0'


async def test_anthropic_sdk_raises_bad_request_without_retrying(spent_proxy) -> None:
    client = anthropic.AsyncAnthropic(base_url=str(spent_proxy.make_url("")), api_key=KEY, max_retries=3, timeout=20)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    await client.close()
    assert caught.value.status_code == 400
    assert caught.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": caught.value.body["error"]["message"]}}
    assert caught.value.body["error"]["message"].startswith("key 'alice' used its monthly budget of 5 tokens")
    assert await budget_refusals(spent_proxy) == 'translator_rate_limited_total{key="alice",limit="budget"} 1.0'
