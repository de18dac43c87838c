"""convert.pause: a turn Claude paused (pause_turn), its rounds joined, driven by the recorded web-search stream
that paused after ten searches (tests/fixtures/claude/streams, see SOURCES.md) and a second round of ours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from translator.convert.fastpath import TextRun
from translator.convert.pause import MAX_ROUNDS, PauseJoiner, joined, resumable, resumed_body, summed_usage
from translator.errors import UpstreamProtocolError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude"
PAUSED_STREAM = FIXTURES / "streams" / "claude_stream_pause_turn_web_search__pydantic-ai.sse"
PAUSED_MESSAGE = FIXTURES / "responses" / "claude_response_pause_turn_web_search__pydantic-ai.json"


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in path.read_text().splitlines() if line.startswith("data: ")]


def second_round(text: str = "All fifteen searches are done.") -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "msg_2", "type": "message", "role": "assistant", "model": "m",
                                              "content": [], "stop_reason": None,
                                              "usage": {"input_tokens": 500, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 20, "server_tool_use": {"web_search_requests": 2}}},
        {"type": "message_stop"},
    ]


def test_the_paused_rounds_stream_as_one() -> None:
    first = events(PAUSED_STREAM)
    joiner = PauseJoiner()
    out = [e for event in first[:-2] for e in joiner.feed(event)]
    assert joiner.usage is None  # (not paused: the stream's own usage says it all)
    out += [e for event in first[-2:] for e in joiner.feed(event)]
    # the paused round's end is held back, everything else goes on as it came (the same objects)
    assert [e["type"] for e in out] == [e["type"] for e in first if e["type"] not in ("message_delta", "message_stop")]
    assert all(a is b for a, b in zip(out, [e for e in first if e["type"] not in ("message_delta", "message_stop")],
                                      strict=True))
    assert joiner.paused
    content = joiner.content
    starts = [e["content_block"] for e in first if e["type"] == "content_block_start"]
    assert [b["type"] for b in content] == [b["type"] for b in starts]
    # every block whole: texts and thinking from their deltas, tool inputs parsed, results as they came
    deltas: dict[int, list[dict[str, Any]]] = {}
    for e in first:
        if e["type"] == "content_block_delta":
            deltas.setdefault(e["index"], []).append(e["delta"])
    for i, block in enumerate(content):
        said = deltas.get(i, [])
        if block["type"] == "text":
            assert block["text"] == "".join(d["text"] for d in said) and block["text"]
        if block["type"] == "thinking":
            assert block["thinking"] == "".join(d["thinking"] for d in said if d["type"] == "thinking_delta")
            assert block["signature"] == [d["signature"] for d in said if d["type"] == "signature_delta"][-1]
        if block["type"] == "server_tool_use":
            assert block["input"] == json.loads("".join(d["partial_json"] for d in said)) and block["input"]["query"]
        if block["type"] == "web_search_tool_result":
            assert block == starts[i]
    assert content[-1]["type"] == "server_tool_use"  # where it paused

    joiner.next_round()
    rest = [e for event in second_round() for e in joiner.feed(event)]
    offset = len(starts)
    assert [(e["type"], e.get("index")) for e in rest] == [
        ("content_block_start", offset), ("content_block_delta", offset), ("content_block_stop", offset),
        ("message_delta", None), ("message_stop", None)]
    paused_usage = {**first[0]["message"]["usage"], **next(e for e in first if e["type"] == "message_delta")["usage"]}
    assert joiner.usage == rest[3]["usage"]
    assert rest[3]["usage"] == summed_usage([paused_usage, {"input_tokens": 500, "output_tokens": 20,
                                                            "server_tool_use": {"web_search_requests": 2}}])
    assert rest[3]["usage"]["input_tokens"] == paused_usage["input_tokens"] + 500
    assert rest[3]["usage"]["server_tool_use"] == {"web_search_requests": 12, "web_fetch_requests": 0}
    assert joiner.content[-1] == {"type": "text", "text": "All fifteen searches are done."}
    assert not joiner.paused


def test_runs_of_text_deltas_are_moved_and_kept() -> None:
    joiner = PauseJoiner()
    for event in second_round()[:2]:
        joiner.feed(event)
    assert joiner.feed_run(TextRun(0, ["a", "b"], 0, 0)) == TextRun(0, ["a", "b"], 0, 0)
    joiner.feed({"type": "content_block_stop", "index": 0})
    joiner.feed({"type": "message_delta", "delta": {"stop_reason": "pause_turn"}, "usage": {"output_tokens": 3}})
    joiner.next_round()
    joiner.feed({"type": "message_start", "message": {"usage": {"input_tokens": 1}}})
    joiner.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    assert joiner.feed_run(TextRun(0, ["c"], 0, 0)) == TextRun(1, ["c"], 0, 0)
    assert joiner.content == [{"type": "text", "text": "ab"}, {"type": "text", "text": "c"}]


def test_a_turn_still_paused_after_the_last_round_ends_as_it_is() -> None:
    joiner = PauseJoiner()
    pause = {"type": "message_delta", "delta": {"stop_reason": "pause_turn"}, "usage": {"output_tokens": 1}}
    for _ in range(MAX_ROUNDS - 1):
        assert joiner.feed(pause) == [] and joiner.paused
        joiner.next_round()
    assert joiner.feed(pause)[0]["delta"]["stop_reason"] == "pause_turn"
    assert not joiner.paused


def test_a_broken_tool_input_is_the_upstreams_fault() -> None:
    joiner = PauseJoiner()
    joiner.feed({"type": "content_block_start", "index": 0,
                 "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}})
    joiner.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{"}})
    with pytest.raises(UpstreamProtocolError):
        joiner.feed({"type": "content_block_stop", "index": 0})


def test_messages_joined_and_the_next_request() -> None:
    paused = json.loads(PAUSED_MESSAGE.read_text())
    final = {"id": "msg_2", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
             "stop_sequence": None, "content": [{"type": "text", "text": "Done."}],
             "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation": {"ephemeral_5m_input_tokens": 2}}}
    one = joined([paused, final])
    assert (one["id"], one["stop_reason"], one["content"]) == (paused["id"], "end_turn", [*paused["content"],
                                                                                        *final["content"]])
    assert one["usage"]["input_tokens"] == paused["usage"]["input_tokens"] + 10
    assert one["usage"]["cache_creation"] == {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 2}
    assert one["usage"]["service_tier"] == "standard"
    assert joined([final]) == final
    body = {"model": "m", "messages": [{"role": "user", "content": "Search."}], "tools": [
        {"type": "web_search_20250305", "name": "web_search"}]}
    assert resumable(body) and not resumable({"tools": [{"name": "f", "input_schema": {}}]}) and not resumable({})
    assert resumed_body(body, paused["content"])["messages"] == [
        {"role": "user", "content": "Search."}, {"role": "assistant", "content": paused["content"]}]
    assert body["messages"] == [{"role": "user", "content": "Search."}]  # (not changed)
