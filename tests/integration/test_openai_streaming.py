"""Stream lifecycle on the OpenAI route: chunks flow as events arrive, failures end the stream with an
error chunk (never a clean stop), and a client that leaves cancels the upstream request."""

from __future__ import annotations

import asyncio
import re

import orjson

from tests.fakes import FakeUpstream

START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                              "model": "claude-x", "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 3, "output_tokens": 1}}}
TEXT_START = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}


def _delta(text: str) -> dict:
    return {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}


def _sse(*events: dict) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


REQUEST = {"model": "claude-x", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _data_lines(raw: bytes) -> list[bytes]:
    return [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]


async def test_first_chunk_arrives_while_upstream_holds_the_rest(proxy, fake_upstream: FakeUpstream) -> None:
    head = _sse(START, TEXT_START, _delta("Hel"))
    fake_upstream.sse(head + _sse(_delta("lo")), chunk_size=len(head), delay=30)
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    assert resp.status == 200
    seen = b""
    async with asyncio.timeout(5):
        while b'"content":"Hel"' not in seen:
            seen += await resp.content.readany()
    first = orjson.loads(_data_lines(seen)[0])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    # The client leaves: the upstream request must be cancelled, not left running (and billing).
    resp.close()
    async with asyncio.timeout(5):
        while fake_upstream.cancelled == 0:
            await asyncio.sleep(0.02)
    assert fake_upstream.cancelled == 1


async def test_stream_cut_before_message_stop_ends_in_an_error_chunk(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(_sse(START, TEXT_START, _delta("partial")))
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    assert b"[DONE]" not in lines
    assert orjson.loads(lines[-1]) == {"error": {"message": "upstream stream ended before message_stop",
                                                 "type": "server_error", "param": None, "code": None}}
    assert all(orjson.loads(x)["choices"][0]["finish_reason"] is None for x in lines[:-1])


async def test_error_event_mid_stream_becomes_the_last_chunk(proxy, fake_upstream: FakeUpstream) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_upstream.sse(_sse(START, TEXT_START, _delta("a"), error))
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    assert orjson.loads(lines[-1]) == {"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                                 "code": "overloaded"}}
    assert b"[DONE]" not in lines


async def test_bytes_that_are_not_sse_are_a_502_before_anything_is_sent(make_proxy, fake_upstream) -> None:
    proxy = await make_proxy(routing={"max_attempts": 1})
    fake_upstream.sse(b"<html>bad gateway</html>\n\n")
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    assert resp.status == 502
    assert await resp.json() == {"error": {"message": "upstream stream ended before its first event",
                                           "type": "server_error", "param": None, "code": None}}


async def test_event_data_that_is_not_json_gives_an_error_chunk(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(_sse(START) + b"event: content_block_start\ndata: {not json\n\n")
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    err = orjson.loads(lines[-1])["error"]
    assert err["type"] == "server_error"
    assert err["message"].startswith("upstream stream event is not JSON")


async def test_non_json_success_body_is_a_502(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.raw(200, b"<html>oops</html>", content_type="application/json")
    resp = await proxy.post("/v1/chat/completions", json={**REQUEST, "stream": False})
    assert resp.status == 502
    assert await resp.json() == {"error": {"message": "upstream answered 200 with a body that is not JSON",
                                           "type": "server_error", "param": None, "code": None}}


async def test_upstream_timeout_is_a_504(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"read_timeout": 0.3}, routing={"max_attempts": 1})
    fake_upstream.sse(_sse(START) + b"", chunk_size=1, delay=1.0)  # one byte, then silence
    resp = await proxy.post("/v1/chat/completions", json={**REQUEST, "stream": False})
    assert resp.status == 504
    body = await resp.json()
    assert body["error"]["type"] == "timeout_error"


async def test_a_stream_that_stalls_between_events_times_out(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"stream_idle_timeout": 0.3})
    head = _sse(START, TEXT_START, _delta("Hel"))
    fake_upstream.sse(head + _sse(_delta("lo")), chunk_size=len(head), delay=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    assert loop.time() - started < 0.3 + 3  # the stream ended at the idle timeout, not after the 30 s stall
    assert orjson.loads(lines[-1]) == {"error": {"message": "upstream stream sent no event for 0.3 s",
                                                 "type": "timeout_error", "param": None, "code": "timeout"}}


async def test_a_byte_drip_does_not_defeat_the_idle_timeout(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(upstream={"stream_idle_timeout": 0.5})
    head = _sse(START, TEXT_START)
    fake_upstream.sse(head + _sse(_delta("x" * 200)), chunk_size=len(head), delay=0)
    fake_upstream.replies[-1].chunks = [head] + [bytes([b]) for b in _sse(_delta("x" * 200))]
    fake_upstream.replies[-1].delay = 0.05
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    assert orjson.loads(lines[-1])["error"]["type"] == "timeout_error"


async def test_comments_and_blank_lines_are_not_events_for_the_idle_timeout(make_proxy, fake_upstream) -> None:
    # A gateway stuck but sending keep-alive comments holds no request (and no slot) past the idle timeout.
    proxy = await make_proxy(upstream={"stream_idle_timeout": 0.3})
    head = _sse(START, TEXT_START)
    fake_upstream.sse(head, chunk_size=len(head), delay=0)
    fake_upstream.replies[-1].chunks = [head] + [b": keep-alive\n\n", b"\n\n", b"id: 7\nretry: 10\n\n"] * 10
    fake_upstream.replies[-1].delay = 0.05
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    lines = _data_lines(await resp.read())
    assert orjson.loads(lines[-1])["error"] == {
        "message": "upstream stream sent no event for 0.3 s", "type": "timeout_error", "param": None, "code": "timeout"}


async def test_claude_route_stall_between_events_ends_in_an_error_event(make_proxy, fake_upstream) -> None:
    proxy = await make_proxy(upstream={"stream_idle_timeout": 0.3})
    head = _sse(START, TEXT_START, _delta("Hel"))
    fake_upstream.sse(head + _sse(_delta("lo")), chunk_size=len(head), delay=5)
    resp = await proxy.post("/v1/messages", json={**REQUEST, "max_tokens": 5})
    raw = await resp.read()
    assert raw.startswith(head)
    assert raw.endswith(b'event: error\ndata: {"type":"error","error":{"type":"timeout_error",'
                        b'"message":"upstream stream sent no event for 0.3 s"}}\n\n')


# --- stream_options.include_usage: "usage": null on every chunk but the usage chunk ---

CACHED_START = {**START, "message": {**START["message"], "usage": {
    "input_tokens": 3, "cache_creation_input_tokens": 20, "cache_read_input_tokens": 7, "output_tokens": 1}}}
FINISHED = [{"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 2}},
            {"type": "message_stop"}]
HEAD = {"id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "model": "claude-x"}


def _choice(delta: dict, finish: str | None = None, index: int = 0) -> list[dict]:
    return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]


def _chunks(raw: bytes) -> list[dict]:
    lines = _data_lines(raw)
    assert lines[-1] == b"[DONE]"
    chunks = [orjson.loads(x) for x in lines[:-1]]
    for c in chunks:
        assert isinstance(c.pop("created"), int)
    return chunks


async def test_include_usage_gives_null_usage_then_the_usage_chunk(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(_sse(CACHED_START, TEXT_START, _delta("Hi"), *FINISHED))
    resp = await proxy.post("/v1/chat/completions", json={**REQUEST, "stream_options": {"include_usage": True}})
    assert resp.status == 200
    assert _chunks(await resp.read()) == [
        {**HEAD, "choices": _choice({"role": "assistant", "content": ""}), "usage": None},
        {**HEAD, "choices": _choice({"content": "Hi"}), "usage": None},
        {**HEAD, "choices": _choice({}, "stop"), "usage": None},
        {**HEAD, "choices": [], "usage": {
            "prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32,
            "prompt_tokens_details": {"cached_tokens": 7, "cache_write_tokens": 20},
            "cache_read_input_tokens": 7, "cache_creation_input_tokens": 20}},
    ]


async def test_without_include_usage_no_chunk_has_usage(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(_sse(CACHED_START, TEXT_START, _delta("Hi"), *FINISHED))
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    assert _chunks(await resp.read()) == [
        {**HEAD, "choices": _choice({"role": "assistant", "content": ""})},
        {**HEAD, "choices": _choice({"content": "Hi"})},
        {**HEAD, "choices": _choice({}, "stop")},
    ]


async def test_include_usage_error_chunk_has_no_usage(proxy, fake_upstream: FakeUpstream) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_upstream.sse(_sse(START, TEXT_START, _delta("a"), error))
    resp = await proxy.post("/v1/chat/completions", json={**REQUEST, "stream_options": {"include_usage": True}})
    lines = [orjson.loads(x) for x in _data_lines(await resp.read())]
    assert [c["usage"] for c in lines[:-1]] == [None, None]
    assert lines[-1] == {"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                   "code": "overloaded"}}


async def test_include_usage_n2_gives_null_usage_on_every_choice_chunk(proxy, fake_upstream: FakeUpstream) -> None:
    """n > 1: each choice's chunks carry ``"usage": null`` too; one usage chunk, the two summed, comes last."""
    for text in ("a", "b"):
        fake_upstream.sse(_sse(CACHED_START, TEXT_START, _delta(text), *FINISHED))
    req = {**REQUEST, "n": 2, "stream_options": {"include_usage": True}}
    resp = await proxy.post("/v1/chat/completions", json=req)
    assert resp.status == 200
    *choice_chunks, usage_chunk = _chunks(await resp.read())
    assert len(choice_chunks) == 6
    assert all(c.keys() == {"id", "object", "model", "choices", "usage"} for c in choice_chunks)
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in choice_chunks)
    assert usage_chunk == {**HEAD, "id": usage_chunk["id"], "choices": [], "usage": {
        "prompt_tokens": 60, "completion_tokens": 4, "total_tokens": 64,
        "prompt_tokens_details": {"cached_tokens": 14, "cache_write_tokens": 40},
        "cache_read_input_tokens": 14, "cache_creation_input_tokens": 40}}
    assert {c["id"] for c in choice_chunks} == {usage_chunk["id"]}


async def test_the_upstream_request_id_reaches_the_client_as_request_id(proxy, fake_upstream: FakeUpstream) -> None:
    stop = [{"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
            {"type": "message_stop"}]
    fake_upstream.sse(_sse(START, TEXT_START, _delta("hi"), *stop), headers={"request-id": "req_011Stream"})
    resp = await proxy.post("/v1/chat/completions", json=REQUEST)
    assert resp.status == 200
    assert resp.headers["request-id"] == "req_011Stream"
    assert re.fullmatch("[0-9a-f]{16}", resp.headers["x-request-id"])  # ours
    assert (await resp.read()).endswith(b"data: [DONE]\n\n")
