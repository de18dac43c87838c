"""A turn Claude paused (pause_turn, a web-search loop that ran long), resumed by the OpenAI-shape routes through
the real server against the fake upstream: the recorded paused round (tests/fixtures/claude, see SOURCES.md),
then a round of ours; the client gets one answer, the upstream the paused turn back as the last assistant
message, and the usage is the rounds'. The Claude route passes pause_turn on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fakes import FakeUpstream, Reply

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude"
PAUSED_STREAM = (FIXTURES / "streams" / "claude_stream_pause_turn_web_search__pydantic-ai.sse").read_bytes()
PAUSED = json.loads((FIXTURES / "responses" / "claude_response_pause_turn_web_search__pydantic-ai.json").read_text())
ASK = "Run fifteen web searches about San Francisco today."
CHAT = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": ASK}], "web_search_options": {}}
RESPONSES = {"model": "claude-sonnet-4-5", "input": ASK, "tools": [{"type": "web_search"}], "store": False}
FINAL_TEXT = "All fifteen searches are done: sunny, light traffic."
FINAL = {"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
         "content": [{"type": "text", "text": FINAL_TEXT}], "stop_reason": "end_turn", "stop_sequence": None,
         "usage": {"input_tokens": 1000, "output_tokens": 20}}


def stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: {")]


def final_round() -> list[dict[str, Any]]:
    start = {**FINAL, "content": [], "stop_reason": None, "usage": {"input_tokens": 1000, "output_tokens": 1}}
    return [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": FINAL_TEXT[:9]}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": FINAL_TEXT[9:]}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 20}},
        {"type": "message_stop"},
    ]


def paused_stream_turn() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The recorded paused round's blocks (texts whole), and its usage."""
    events = stream_events(PAUSED_STREAM)
    blocks: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "content_block_start":
            blocks[e["index"]] = dict(e["content_block"])
        elif e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta":
            blocks[e["index"]]["text"] += e["delta"]["text"]
    usage = {**events[0]["message"]["usage"], **next(e for e in events if e["type"] == "message_delta")["usage"]}
    return [blocks[i] for i in sorted(blocks)], usage


def assert_resumed_request(fake_upstream: FakeUpstream, paused_content: list[dict[str, Any]]) -> None:
    first, second = (r.json for r in fake_upstream.requests)
    assert second == {**first, "messages": [*first["messages"], {"role": "assistant", "content": paused_content}]}
    assert first["tools"] == [{"type": "web_search_20250305", "name": "web_search"}]


async def test_chat_resumes_a_paused_turn(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(PAUSED)
    fake_upstream.json(FINAL)
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 200
    body = await resp.json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"].endswith("\n\n" + FINAL_TEXT)  # a paragraph of its own after the searches
    assert choice["message"]["content"].startswith("I'll run these searches for you one at a time. Let me begin:")
    assert body["usage"]["completion_tokens"] == PAUSED["usage"]["output_tokens"] + 20
    assert body["usage"]["prompt_tokens"] == PAUSED["usage"]["input_tokens"] + 1000
    assert_resumed_request(fake_upstream, PAUSED["content"])


async def test_a_turn_still_paused_after_eight_requests_ends_as_it_is(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.default = Reply(200, orjson.dumps(PAUSED))
    resp = await proxy.post("/v1/chat/completions", json=CHAT)
    body = await resp.json()
    assert (resp.status, body["choices"][0]["finish_reason"], len(fake_upstream.requests)) == (200, "stop", 8)
    assert body["usage"]["completion_tokens"] == 8 * PAUSED["usage"]["output_tokens"]
    # each round sends every round's blocks before it back
    assert [len(r.json["messages"]) for r in fake_upstream.requests] == [1] + [2] * 7
    assert fake_upstream.requests[-1].json["messages"][-1]["content"] == PAUSED["content"] * 7


async def test_chat_stream_resumes_a_paused_turn(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(PAUSED_STREAM)
    fake_upstream.events(final_round())
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True,
                                                          "stream_options": {"include_usage": True}})
    assert resp.status == 200
    lines = [line[6:] for line in (await resp.read()).split(b"\n") if line.startswith(b"data: ")]
    assert lines[-1] == b"[DONE]"
    chunks = [orjson.loads(x) for x in lines[:-1]]
    deltas = [c["choices"][0] for c in chunks if c["choices"]]
    assert [d for d in deltas if d["finish_reason"]] == [{"index": 0, "delta": {}, "logprobs": None,
                                                          "finish_reason": "stop"}]
    assert sum("role" in d["delta"] for d in deltas) == 1
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    content = "".join(d["delta"].get("content") or "" for d in deltas)
    assert content.endswith("\n\n" + FINAL_TEXT)
    blocks, usage = paused_stream_turn()
    assert chunks[-1]["usage"]["completion_tokens"] == usage["output_tokens"] + 20
    assert chunks[-1]["usage"]["prompt_tokens"] == usage["input_tokens"] + 1000
    first, second = (r.json for r in fake_upstream.requests)
    sent_back = second["messages"][-1]
    assert second["messages"][:-1] == first["messages"] and sent_back["role"] == "assistant"
    assert [b["type"] for b in sent_back["content"]] == [b["type"] for b in blocks]
    assert [b.get("text") for b in sent_back["content"]] == [b.get("text") for b in blocks]
    assert sent_back["content"][-1]["type"] == "server_tool_use" and sent_back["content"][-1]["input"]["query"]


async def test_responses_resumes_a_paused_turn(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.json(PAUSED)
    fake_upstream.json(FINAL)
    resp = await proxy.post("/v1/responses", json=RESPONSES)
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "completed"
    [message] = [item for item in body["output"] if item["type"] == "message"]
    assert message["content"][0]["text"].endswith("\n\n" + FINAL_TEXT)
    assert body["usage"]["output_tokens"] == PAUSED["usage"]["output_tokens"] + 20
    assert_resumed_request(fake_upstream, PAUSED["content"])


async def test_responses_stream_resumes_a_paused_turn(proxy, fake_upstream: FakeUpstream) -> None:
    fake_upstream.sse(PAUSED_STREAM)
    fake_upstream.events(final_round())
    resp = await proxy.post("/v1/responses", json={**RESPONSES, "stream": True})
    assert resp.status == 200
    events = stream_events(await resp.read())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("response.created") == 1
    assert events[-1]["type"] == "response.completed"
    final = events[-1]["response"]
    [message] = [item for item in final["output"] if item["type"] == "message"]
    assert message["content"][0]["text"].endswith("\n\n" + FINAL_TEXT)
    _, usage = paused_stream_turn()
    assert final["usage"]["output_tokens"] == usage["output_tokens"] + 20
    assert len(fake_upstream.requests) == 2


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events)


async def test_a_later_round_that_stalls_times_out(make_proxy, fake_upstream: FakeUpstream) -> None:
    """The idle timeout watches every round, also once the next round's opening (its first content event, the
    pool's to wait for) took longer: a round that goes quiet ends in the timeout error."""
    proxy = await make_proxy(upstream={"stream_idle_timeout": 0.3})
    fake_upstream.sse(PAUSED_STREAM)
    rounds = final_round()  # its start, 0.8 s to its first content event, 0.8 s to the rest
    chunks = [sse(rounds[0]), sse(*rounds[1:3]), sse(*rounds[3:])]
    fake_upstream.replies.append(Reply(200, b"", "text/event-stream", chunks=chunks, delay=0.8))
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    lines = [line[6:] for line in (await resp.read()).split(b"\n") if line.startswith(b"data: ")]
    assert orjson.loads(lines[-1])["error"]["message"] == "upstream stream sent no event for 0.3 s"


async def test_a_broken_event_in_a_server_tool_stream_is_an_error_chunk_after_the_rest(
    proxy, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.sse(sse(*final_round()[:3]) + b"event: content_block_delta\ndata: {broken\n\n")
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    chunks = [orjson.loads(line[6:]) for line in (await resp.read()).split(b"\n") if line.startswith(b"data: {")]
    assert chunks[1]["choices"][0]["delta"] == {"content": FINAL_TEXT[:9]}
    assert chunks[-1]["error"]["message"].startswith("upstream stream event is not JSON")


async def test_an_upstream_failure_in_a_later_round_ends_the_stream_in_an_error(
    make_proxy, fake_upstream: FakeUpstream, server_log
) -> None:
    proxy = await make_proxy(routing={"max_attempts": 1})
    fake_upstream.sse(PAUSED_STREAM)
    fake_upstream.json({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                       status=529)
    resp = await proxy.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert resp.status == 200
    lines = [line[6:] for line in (await resp.read()).split(b"\n") if line.startswith(b"data: ")]
    last = orjson.loads(lines[-1])
    assert last == {"error": {"message": "Overloaded", "type": "server_error", "param": None, "code": "overloaded"}}
    assert b"[DONE]" not in lines and len(fake_upstream.requests) == 2
    # the paused round was spent: its usage is the request's
    _, usage = paused_stream_turn()
    line = [orjson.loads(x) for x in server_log().splitlines() if '"request"' in x][-1]
    assert line["usage"]["completion_tokens"] == usage["output_tokens"]
    assert line["usage"]["prompt_tokens"] == usage["input_tokens"]


@pytest.mark.parametrize("stream", [False, True])
async def test_the_claude_route_passes_pause_turn_on(proxy, fake_upstream: FakeUpstream, stream: bool) -> None:
    if stream:
        fake_upstream.sse(PAUSED_STREAM)
    else:
        fake_upstream.json(PAUSED)
    resp = await proxy.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
                                                  "messages": [{"role": "user", "content": ASK}]})
    assert resp.status == 200
    raw = await resp.read()
    assert (raw == PAUSED_STREAM) if stream else (orjson.loads(raw)["stop_reason"] == "pause_turn")
    assert len(fake_upstream.requests) == 1
