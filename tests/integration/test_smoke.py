from __future__ import annotations

from tests.fakes import FakeUpstream


async def test_healthz(proxy) -> None:
    resp = await proxy.get("/healthz")
    assert resp.status == 200


async def test_chat_completion_roundtrip(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 2},
    })
    resp = await proxy.post("/v1/chat/completions", json={"model": "claude-sonnet-4-5",
                                                          "messages": [{"role": "user", "content": "Hello"}]})
    assert resp.status == 200
    body = await resp.json()
    assert body["choices"][0]["message"]["content"] == "Hi!"
    assert fake_upstream.last.json == {"model": "claude-sonnet-4-5", "max_tokens": 8192,
                                       "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]}
