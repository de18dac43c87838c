"""``translator.convert.responses_response`` and ``responses_stream``: Claude answers as OpenAI Responses
objects and stream events.

- Every recorded Claude stream (tests/fixtures/claude/streams, see tests/fixtures/SOURCES.md), fed event by
  event: sequence numbers contiguous, each item's events in the spec's order, every ``output_item.done`` equal
  to the final response's item, and the streamed response equal to ``response_from_message`` of the same answer.
- Exact event sequences for small answers: text, a tool call, thinking then a tool call, a refusal, a max_tokens
  stop, an error event.
- The openai SDK's own types take every event and response we make, and its stream accumulator
  (``ResponseStreamState``) ends with the response we send.
- OpenAI's own recordings (tests/fixtures/responses, see its SOURCES.md) pass the same order check, and our
  events and objects have their shapes (the differences listed, each with its reason).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.unit.test_stream import fold_claude
from translator.convert.reasoning import decode_block, encode_block
from translator.convert.responses_response import (
    ECHO_DEFAULTS,
    REFUSAL,
    item_id,
    request_echo,
    response_from_message,
    response_of,
)
from translator.convert.responses_stream import ResponsesStreamConverter
from translator.convert.stream import StreamProtocolError
from translator.errors import InvalidRequest, RateLimited, TranslatorError, UpstreamTimeout
from translator.sse import SSEDecoder

FIXTURES = Path(__file__).parent.parent / "fixtures"
CLAUDE_STREAMS = sorted((FIXTURES / "claude" / "streams").iterdir())
CLAUDE_RESPONSES = sorted((FIXTURES / "claude" / "responses").iterdir())
OPENAI_STREAMS = sorted((FIXTURES / "responses" / "streams").iterdir())
OPENAI_RESPONSES = sorted((FIXTURES / "responses" / "responses").iterdir())
OPENAI_REQUESTS = FIXTURES / "responses" / "requests"
# Its last event lacks the blank line after it: the relay still reads it (flush(unterminated=True)), as here.
UNTERMINATED = "claude_stream_tool_use_input_truncated_by_max_tokens__anthropic-sdk-python.sse"

RESPONSE_ID = "resp_0123abc"
CREATED = 1700000000
MODEL = "requested-model"
ECHO = request_echo({})
EVENT = TypeAdapter(ResponseStreamEvent)

Event = dict[str, Any]


def sse_events(path: Path) -> list[Event]:
    """A recording's event payloads as the relay reads them: ``.sse`` through the SSE decoder (a last event
    without its blank line included), vercel/ai's ``.chunks.jsonl`` line by line."""
    data = path.read_bytes()
    if path.name.endswith(".chunks.jsonl"):
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    decoder = SSEDecoder()
    return [event.json() for event in decoder.feed(data) + decoder.flush(unterminated=True)]


def convert(
    events: Iterable[Event], *, json_tool: str | None = None, echo: dict[str, Any] = ECHO, finish: bool = True
) -> tuple[list[Event], ResponsesStreamConverter]:
    """The events a Claude stream becomes; each checked for order and against the openai SDK's types."""
    conv = ResponsesStreamConverter(response_id=RESPONSE_ID, created_at=CREATED, model=MODEL, echo=echo,
                                    json_tool=json_tool)
    out = [e for event in events for e in conv.feed(event)]
    if finish:
        out += conv.finish()
    if conv.done:
        check_stream(out, exact_text=json_tool is None, exact_arguments=False)
        check_with_sdk(out)
    return out, conv


def from_message(message: dict[str, Any], **kw: Any) -> dict[str, Any]:
    kw.setdefault("echo", ECHO)
    return dict(response_from_message(message, response_id=RESPONSE_ID, created_at=CREATED, model=MODEL, **kw))


# --- the order of a stream's events (one grammar for ours and OpenAI's recordings) ---

TOKENS = {
    "response.output_item.added": "<",
    "response.output_item.done": ">",
    "response.content_part.added": "P",
    "response.content_part.done": "C",
    "response.output_text.delta": "d",
    "response.output_text.annotation.added": "a",
    "response.output_text.done": "T",
    "response.refusal.delta": "r",
    "response.refusal.done": "R",
    "response.reasoning_summary_part.added": "S",
    "response.reasoning_summary_text.delta": "s",
    "response.reasoning_summary_text.done": "U",
    "response.reasoning_summary_part.done": "V",
    "response.function_call_arguments.delta": "f",
    "response.function_call_arguments.done": "F",
    "response.web_search_call.in_progress": "w",
    "response.web_search_call.searching": "w",
    "response.web_search_call.completed": "w",
}
ITEM_GRAMMAR = {
    "message": re.compile(r"<(P[da]*TC|Pr*RC)+>"),
    "reasoning": re.compile(r"<(Ss*UV)*>"),
    "function_call": re.compile(r"<f*F>"),
    "web_search_call": re.compile(r"<w*>"),  # (OpenAI's only: Claude's server tools make no item)
}
TERMINAL = {"response.completed", "response.incomplete", "response.failed"}


def check_stream(
    events: list[Event], *, exact_text: bool = True, exact_arguments: bool = True
) -> list[list[Event]]:
    """The spec's order: created, in_progress, the items one after another (each by its grammar), then one
    terminal event (``response.failed`` after an ``error``). Returns each item's events.

    ``exact_text``, ``exact_arguments``: every done text, every done arguments string is its deltas joined
    (else: the same JSON value, as for the compact JSON our tool input and JSON-tool text end in)."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in TERMINAL and not TERMINAL & set(kinds[:-1])
    failed = kinds[-1] == "response.failed"
    body = events[2:-2] if failed else events[2:-1]
    if failed:
        assert kinds[-2] == "error"
    items: list[list[Event]] = []
    for event in body:
        if event["type"] == "response.output_item.added":
            items.append([event])
        else:
            assert items, f"{event['type']} before any output_item.added"
            items[-1].append(event)
    for index, item_events in enumerate(items):
        if failed and index == len(items) - 1 and item_events[-1]["type"] != "response.output_item.done":
            continue  # the item the error cut short
        check_item(index, item_events, exact_text=exact_text, exact_arguments=exact_arguments)
    return items


def check_item(index: int, events: list[Event], *, exact_text: bool, exact_arguments: bool) -> None:
    added, done = events[0], events[-1]
    kind = added["item"]["type"]
    tokens = "".join(TOKENS[e["type"]] for e in events)
    assert ITEM_GRAMMAR[kind].fullmatch(tokens), f"item {index} ({kind}): {tokens}"
    assert added["output_index"] == index and all(e["output_index"] == index for e in events)
    assert done["item"]["id"] == added["item"]["id"] and done["item"]["type"] == kind
    assert all(e["item_id"] == added["item"]["id"] for e in events if "item_id" in e)
    item = done["item"]
    if kind == "message":
        check_parts(events, item["content"], exact=exact_text)
    elif kind == "reasoning":
        check_summary(events, item["summary"])
    elif kind == "function_call":
        arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
        [args_done] = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert args_done["arguments"] == item["arguments"]
        assert same_text(arguments, item["arguments"], exact=exact_arguments)
        assert added["item"]["arguments"] == "" and added["item"]["call_id"] == item["call_id"]


def check_parts(events: list[Event], content: list[dict[str, Any]], *, exact: bool) -> None:
    """Each content part: added at the next content_index, its deltas (and annotations), done as the item has it."""
    parts = [e for e in events if e["type"] == "response.content_part.done"]
    assert [p["part"] for p in parts] == content
    for number, part in enumerate(content):
        mine = [e for e in events if e.get("content_index") == number]
        assert mine[0]["type"] == "response.content_part.added"
        if part["type"] == "output_text":
            text = "".join(e["delta"] for e in mine if e["type"] == "response.output_text.delta")
            [text_done] = [e for e in mine if e["type"] == "response.output_text.done"]
            assert text_done["text"] == part["text"] and same_text(text, part["text"], exact=exact)
            annotations = [e for e in mine if e["type"] == "response.output_text.annotation.added"]
            assert [a["annotation"] for a in annotations] == part["annotations"]
            assert [a["annotation_index"] for a in annotations] == list(range(len(annotations)))
        else:
            refusal = "".join(e["delta"] for e in mine if e["type"] == "response.refusal.delta")
            assert refusal == part["refusal"]


def check_summary(events: list[Event], summary: list[dict[str, Any]]) -> None:
    parts = [e for e in events if e["type"] == "response.reasoning_summary_part.done"]
    assert [p["part"] for p in parts] == summary
    assert [p["summary_index"] for p in parts] == list(range(len(parts)))
    for number, part in enumerate(summary):
        deltas = [e["delta"] for e in events if e["type"].endswith("text.delta") and e["summary_index"] == number]
        assert "".join(deltas) == part["text"]


def same_text(streamed: str, done: str, *, exact: bool) -> bool:
    """Equal; or, not ``exact``, the same JSON value, or (JSON within text) the same but for whitespace."""
    if exact or streamed == done:
        return streamed == done
    try:
        return bool(orjson.loads(streamed) == orjson.loads(done))
    except orjson.JSONDecodeError:
        return re.sub(r"\s", "", streamed) == re.sub(r"\s", "", done)


# --- the openai SDK: its types, and its stream accumulator ---


def check_with_sdk(events: list[Event]) -> None:
    """Every event is one of the SDK's ResponseStreamEvent types; its accumulator (what ``responses.stream()``
    runs) takes them all, and ends with our response."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    emitted: list[Any] = []
    for event in events:
        parsed = EVENT.validate_python(event)
        assert parsed.type == event["type"]
        emitted += state.handle_event(parsed)
    ours = events[-1]["response"]
    Response.model_validate(ours)
    [last] = [e for e in emitted if e.type in TERMINAL]
    assert without_parsed(last.response.to_dict()) == ours


def without_parsed(value: Any) -> Any:
    """The SDK's parsed response without the keys its parsing adds (``parsed``, ``parsed_arguments``)."""
    if isinstance(value, dict):
        return {k: without_parsed(v) for k, v in value.items() if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [without_parsed(v) for v in value]
    return value


# --- every recorded Claude stream ---


def _first_tool(path: Path) -> str | None:
    names = [e["content_block"]["name"] for e in sse_events(path)
             if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"]
    return names[0] if names else None


CASES = [(p, None) for p in CLAUDE_STREAMS] + [
    (p, name) for p in CLAUDE_STREAMS if (name := _first_tool(p)) and p.name != UNTERMINATED
]


def test_fixture_sets_are_complete() -> None:
    assert (len(CLAUDE_STREAMS), len(CLAUDE_RESPONSES), len(OPENAI_STREAMS), len(OPENAI_RESPONSES)) == (24, 17, 8, 6)


@pytest.mark.parametrize(("path", "json_tool"), CASES, ids=[f"{p.name}-{j or 'tools'}" for p, j in CASES])
def test_recorded_stream_matches_the_whole_message(path: Path, json_tool: str | None) -> None:
    """The events are in order (``convert`` checks), every output_item.done holds the final response's item,
    and the final response is ``response_from_message`` of the message the stream describes."""
    events = sse_events(path)
    out, conv = convert(events, json_tool=json_tool)
    final = out[-1]["response"]
    assert not conv.failed and conv.response == final
    assert [e["item"] for e in out if e["type"] == "response.output_item.done"] == final["output"]
    message, raw_inputs = fold_claude(events)
    if path.name == UNTERMINATED:  # the input cut by max_tokens streams as it came; no message can hold it
        [call] = [item for item in final["output"] if item["type"] == "function_call"]
        assert call["arguments"] == raw_inputs[call["call_id"]] and call["status"] == "incomplete"
        call["arguments"] = "{}"
    assert final == from_message(message, json_tool=json_tool)


ITEM_OF_BLOCK = {"thinking": "reasoning", "redacted_thinking": "reasoning", "tool_use": "function_call",
                 "text": "message"}


@pytest.mark.parametrize("path", CLAUDE_STREAMS, ids=[p.name for p in CLAUDE_STREAMS])
def test_item_kinds_follow_the_blocks(path: Path) -> None:
    """A reasoning item per thinking block, a function_call per tool_use, a message per run of text blocks
    (server tools between them do not split it; an empty text block opens none)."""
    events = sse_events(path)
    message, _ = fold_claude(events)
    expected: list[str] = []
    for block in message["content"]:
        kind = ITEM_OF_BLOCK.get(block["type"])
        if kind == "message" and (not block["text"] or expected[-1:] == ["message"]):
            continue
        if kind is not None:
            expected.append(kind)
    out, _ = convert(events)
    assert [item["type"] for item in out[-1]["response"]["output"]] == expected


@pytest.mark.parametrize("path", CLAUDE_STREAMS, ids=[p.name for p in CLAUDE_STREAMS])
def test_random_splits_of_the_bytes_give_the_same_events(path: Path) -> None:
    if path.name.endswith(".chunks.jsonl"):
        return  # no SSE framing to split
    data = path.read_bytes()
    rng = random.Random(path.name)
    cuts = sorted(rng.sample(range(1, len(data)), min(40, len(data) - 1)))
    decoder = SSEDecoder()
    events = []
    for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):
        events += [e.json() for e in decoder.feed(data[a:b])]
    events += [e.json() for e in decoder.flush(unterminated=True)]
    assert convert(events)[0] == convert(sse_events(path))[0]


@pytest.mark.parametrize("path", CLAUDE_RESPONSES, ids=[p.name for p in CLAUDE_RESPONSES])
def test_recorded_responses_are_valid_response_objects(path: Path) -> None:
    message = orjson.loads(path.read_bytes())
    response = from_message(message)
    Response.model_validate(response)
    assert [item["id"] for item in response["output"]] == [
        item_id(item["type"], RESPONSE_ID, i) for i, item in enumerate(response["output"])
    ]
    for item in response["output"]:
        if item["type"] == "reasoning":
            assert decode_block(item["encrypted_content"]) in [
                {k: b[k] for k in ("type", "thinking", "signature", "data") if k in b} for b in message["content"]
            ]


# --- exact sequences ---

USAGE_START = {"input_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1}


def message_start(**usage: int) -> Event:
    return {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {**USAGE_START, **usage}}}


def block_start(index: int, block: dict[str, Any]) -> Event:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, **delta: Any) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> Event:
    return {"type": "content_block_stop", "index": index}


def message_delta(stop_reason: str, output_tokens: int, **usage: Any) -> Event:
    return {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens, **usage}}


MESSAGE_STOP: Event = {"type": "message_stop"}


def text_events(*pieces: str, stop_reason: str = "end_turn") -> list[Event]:
    return [message_start(), block_start(0, {"type": "text", "text": ""}),
            *[block_delta(0, type="text_delta", text=p) for p in pieces], block_stop(0),
            message_delta(stop_reason, 5), MESSAGE_STOP]


def usage(inp: int, out: int, cached: int = 0, written: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": inp + out}


def response(
    status: str, output: list[Any], usage: dict[str, Any] | None, *, incomplete: str | None = None,
    error: dict[str, Any] | None = None, model: str = "claude-test",
) -> dict[str, Any]:
    """A whole response object, written out: every key OpenAI sends that has a meaning here."""
    return {
        "id": RESPONSE_ID, "object": "response", "created_at": CREATED, "status": status, "background": False,
        "error": error, "incomplete_details": {"reason": incomplete} if incomplete else None, "instructions": None,
        "max_output_tokens": None, "max_tool_calls": None, "model": model, "output": output,
        "parallel_tool_calls": True, "previous_response_id": None, "prompt_cache_key": None,
        "reasoning": {"effort": None, "summary": None}, "safety_identifier": None, "service_tier": "default",
        "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": usage, "user": None, "metadata": {},
    }


def ev(n: int, kind: str, **fields: Any) -> Event:
    return {"type": kind, "sequence_number": n, **fields}


def opening(model: str = "claude-test") -> list[Event]:
    return [ev(0, "response.created", response=response("in_progress", [], None, model=model)),
            ev(1, "response.in_progress", response=response("in_progress", [], None, model=model))]


MSG = "msg_0123abc_0"
AT0 = {"item_id": MSG, "output_index": 0, "content_index": 0}


def message(status: str, *parts: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {"id": f"msg_0123abc_{index}", "type": "message", "status": status, "content": list(parts),
            "role": "assistant"}


def text_part(text: str, annotations: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "annotations": annotations or [], "logprobs": [], "text": text}


def refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def test_exact_text() -> None:
    out, conv = convert(text_events("Hello", " world"))
    item = message("completed", text_part("Hello world"))
    assert out == [
        *opening(),
        ev(2, "response.output_item.added", output_index=0, item=message("in_progress")),
        ev(3, "response.content_part.added", **AT0, part=text_part("")),
        ev(4, "response.output_text.delta", **AT0, delta="Hello", logprobs=[]),
        ev(5, "response.output_text.delta", **AT0, delta=" world", logprobs=[]),
        ev(6, "response.output_text.done", **AT0, text="Hello world", logprobs=[]),
        ev(7, "response.content_part.done", **AT0, part=text_part("Hello world")),
        ev(8, "response.output_item.done", output_index=0, item=item),
        ev(9, "response.completed", response=response("completed", [item], usage(10, 5))),
    ]
    assert conv.done and not conv.failed and conv.stop_reason == "end_turn"
    assert conv.claude_usage == {**USAGE_START, "output_tokens": 5}


def test_exact_tool_call() -> None:
    """Argument fragments stream as Claude spaced them; the done event and the item hold the compact JSON."""
    events = [message_start(),
              block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}),
              block_delta(0, type="input_json_delta", partial_json=""),
              block_delta(0, type="input_json_delta", partial_json='{"city": '),
              block_delta(0, type="input_json_delta", partial_json='"Paris"}'),
              block_stop(0), message_delta("tool_use", 12), MESSAGE_STOP]
    out, _ = convert(events)
    call = {"id": "fc_0123abc_0", "type": "function_call", "status": "completed", "arguments": '{"city":"Paris"}',
            "call_id": "toolu_1", "name": "get_weather"}
    at = {"item_id": "fc_0123abc_0", "output_index": 0}
    assert out == [
        *opening(),
        ev(2, "response.output_item.added", output_index=0, item={**call, "status": "in_progress", "arguments": ""}),
        ev(3, "response.function_call_arguments.delta", **at, delta='{"city": '),
        ev(4, "response.function_call_arguments.delta", **at, delta='"Paris"}'),
        ev(5, "response.function_call_arguments.done", item_id="fc_0123abc_0", name="get_weather", output_index=0,
           arguments='{"city":"Paris"}'),
        ev(6, "response.output_item.done", output_index=0, item=call),
        ev(7, "response.completed", response=response("completed", [call], usage(10, 12))),
    ]


def test_exact_thinking_then_tool_call() -> None:
    """The reasoning item's encrypted_content (the signed block) comes with output_item.done; a tool called
    without arguments gets "{}" as its one fragment."""
    events = [message_start(), block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
              block_delta(0, type="thinking_delta", thinking="Let me"),
              block_delta(0, type="thinking_delta", thinking=" check."),
              block_delta(0, type="signature_delta", signature="c2ln"), block_stop(0),
              block_start(1, {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}), block_stop(1),
              message_delta("tool_use", 20, output_tokens_details={"thinking_tokens": 7}), MESSAGE_STOP]
    out, _ = convert(events)
    thinking = {"type": "thinking", "thinking": "Let me check.", "signature": "c2ln"}
    reasoning = {"id": "rs_0123abc_0", "type": "reasoning",
                 "summary": [{"type": "summary_text", "text": "Let me check."}],
                 "encrypted_content": encode_block(thinking)}
    call = {"id": "fc_0123abc_1", "type": "function_call", "status": "completed", "arguments": "{}",
            "call_id": "toolu_2", "name": "now"}
    rs = {"item_id": "rs_0123abc_0", "output_index": 0, "summary_index": 0}
    assert out == [
        *opening(),
        ev(2, "response.output_item.added", output_index=0,
           item={"id": "rs_0123abc_0", "type": "reasoning", "summary": []}),
        ev(3, "response.reasoning_summary_part.added", **rs, part={"type": "summary_text", "text": ""}),
        ev(4, "response.reasoning_summary_text.delta", **rs, delta="Let me"),
        ev(5, "response.reasoning_summary_text.delta", **rs, delta=" check."),
        ev(6, "response.reasoning_summary_text.done", **rs, text="Let me check."),
        ev(7, "response.reasoning_summary_part.done", **rs, part={"type": "summary_text", "text": "Let me check."}),
        ev(8, "response.output_item.done", output_index=0, item=reasoning),
        ev(9, "response.output_item.added", output_index=1, item={**call, "status": "in_progress", "arguments": ""}),
        ev(10, "response.function_call_arguments.delta", item_id="fc_0123abc_1", output_index=1, delta="{}"),
        ev(11, "response.function_call_arguments.done", item_id="fc_0123abc_1", name="now", output_index=1,
           arguments="{}"),
        ev(12, "response.output_item.done", output_index=1, item=call),
        ev(13, "response.completed", response=response("completed", [reasoning, call], usage(10, 20, reasoning=7))),
    ]
    assert decode_block(reasoning["encrypted_content"]) == thinking


def test_exact_refusal_after_text() -> None:
    """Claude's refusal stop ends a message already begun: the text stays (it went out), a refusal part follows."""
    out, conv = convert(text_events("I can", stop_reason="refusal"))
    item = message("completed", text_part("I can"), refusal_part(REFUSAL))
    at1 = {**AT0, "content_index": 1}
    assert out == [
        *opening(),
        ev(2, "response.output_item.added", output_index=0, item=message("in_progress")),
        ev(3, "response.content_part.added", **AT0, part=text_part("")),
        ev(4, "response.output_text.delta", **AT0, delta="I can", logprobs=[]),
        ev(5, "response.output_text.done", **AT0, text="I can", logprobs=[]),
        ev(6, "response.content_part.done", **AT0, part=text_part("I can")),
        ev(7, "response.content_part.added", **at1, part=refusal_part("")),
        ev(8, "response.refusal.delta", **at1, delta=REFUSAL),
        ev(9, "response.refusal.done", **at1, refusal=REFUSAL),
        ev(10, "response.content_part.done", **at1, part=refusal_part(REFUSAL)),
        ev(11, "response.output_item.done", output_index=0, item=item),
        ev(12, "response.completed", response=response("completed", [item], usage(10, 5))),
    ]
    assert conv.stop_reason == "refusal"


def test_exact_refusal_before_any_output() -> None:
    out, _ = convert([message_start(), message_delta("refusal", 0), MESSAGE_STOP])
    item = message("completed", refusal_part(REFUSAL))
    assert [e["type"] for e in out[2:]] == [
        "response.output_item.added", "response.content_part.added", "response.refusal.delta", "response.refusal.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]
    assert out[-1]["response"]["output"] == [item]
    assert from_message({**message_start()["message"], "stop_reason": "refusal"})["output"] == [item]


def test_exact_max_tokens_is_incomplete() -> None:
    """A length stop: the item being written and the response are incomplete (response.incomplete, not
    completed), as OpenAI ends a stream cut by max_output_tokens."""
    out, conv = convert(text_events("One, two", stop_reason="max_tokens"))
    item = message("incomplete", text_part("One, two"))
    assert out[-2:] == [
        ev(7, "response.output_item.done", output_index=0, item=item),
        ev(8, "response.incomplete", response=response("incomplete", [item], usage(10, 5),
                                                        incomplete="max_output_tokens")),
    ]
    assert conv.done and not conv.failed


def test_exact_error_event() -> None:
    """An error event mid-stream: OpenAI's ``error`` event (flat, as the spec has it, and nested, as the API
    sends it), then response.failed with the items finished so far (none: the message was cut)."""
    events = [*text_events("Hi")[:3], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]
    out, conv = convert(events)
    error = {"code": "server_error", "message": "Overloaded"}
    assert out[-2:] == [
        ev(5, "error", code="server_error", message="Overloaded", param=None,
           error={"type": "server_error", "code": "server_error", "message": "Overloaded", "param": None}),
        ev(6, "response.failed", response=response("failed", [], usage(10, 1), error=error)),
    ]
    assert conv.done and conv.failed and conv.error_type == "overloaded_error"
    assert conv.response == out[-1]["response"]
    with pytest.raises(StreamProtocolError):
        conv.feed(MESSAGE_STOP)


def test_error_before_message_start_still_opens_the_response() -> None:
    """The SDKs' accumulators need response.created first; the model is the requested one."""
    out, conv = convert([{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}])
    error = {"code": "rate_limit_exceeded", "message": "slow down"}
    assert out == [
        *opening(MODEL),
        ev(2, "error", code="rate_limit_exceeded", message="slow down", param=None,
           error={"type": "rate_limit_error", "code": "rate_limit_exceeded", "message": "slow down", "param": None}),
        ev(3, "response.failed", response=response("failed", [], None, error=error, model=MODEL)),
    ]
    assert conv.error_type == "rate_limit_error"


def test_finish_without_message_stop_fails_with_the_items_so_far() -> None:
    events = text_events("Hi")[:-1]  # everything up to message_delta: the message is finished, the response not
    out, conv = convert(events)
    item = message("completed", text_part("Hi"))
    assert out[-1] == ev(9, "response.failed", response=response(
        "failed", [item], usage(10, 5), error={"code": "server_error",
                                               "message": "upstream stream ended before message_stop"}))
    assert conv.failed and conv.error_type == "api_error"
    assert conv.finish() == [] and conv.fail(UpstreamTimeout("late")) == []


@pytest.mark.parametrize(
    ("err", "code", "oa_type", "claude_type"),
    [
        (UpstreamTimeout("no event for 60 s"), "server_error", "timeout_error", "timeout_error"),
        (RateLimited("slow down", retry_after=1.0), "rate_limit_exceeded", "rate_limit_error", "rate_limit_error"),
        (InvalidRequest("bad", param="input"), "invalid_prompt", "invalid_request_error", "invalid_request_error"),
        (TranslatorError("boom"), "server_error", "server_error", "api_error"),
    ],
)
def test_fail_maps_the_error(err: TranslatorError, code: str, oa_type: str, claude_type: str) -> None:
    out, conv = convert(text_events("Hi")[:3], finish=False)
    out += conv.fail(err)
    check_stream(out)
    check_with_sdk(out)
    assert out[-2]["error"] == {"type": oa_type, "code": code, "message": err.message, "param": err.param}
    assert out[-1]["response"]["error"] == {"code": code, "message": err.message}
    assert conv.failed and conv.error_type == claude_type


@pytest.mark.parametrize(
    ("claude_type", "code"),
    [("invalid_request_error", "invalid_prompt"), ("request_too_large", "invalid_prompt"),
     ("rate_limit_error", "rate_limit_exceeded"), ("overloaded_error", "server_error"), ("api_error", "server_error"),
     ("authentication_error", "server_error"), ("something_new", "server_error")],
)
def test_error_codes_stay_in_the_spec_enum(claude_type: str, code: str) -> None:
    out, _ = convert([message_start(), {"type": "error", "error": {"type": claude_type, "message": "m"}}])
    assert out[-1]["response"]["error"]["code"] == code


def test_exact_json_tool_is_message_text() -> None:
    """Structured output through a forced tool: its input is the message's text, streamed as written, done as
    the compact JSON the non-streamed response holds."""
    events = [message_start(), block_start(0, {"type": "tool_use", "id": "toolu_j", "name": "answer", "input": {}}),
              block_delta(0, type="input_json_delta", partial_json='{"n": '),
              block_delta(0, type="input_json_delta", partial_json="1}"),
              block_stop(0), message_delta("tool_use", 9), MESSAGE_STOP]
    out, _ = convert(events, json_tool="answer")
    item = message("completed", text_part('{"n":1}'))
    assert [(e["type"], e.get("delta", e.get("text"))) for e in out[2:-1]] == [
        ("response.output_item.added", None), ("response.content_part.added", None),
        ("response.output_text.delta", '{"n": '), ("response.output_text.delta", "1}"),
        ("response.output_text.done", '{"n":1}'), ("response.content_part.done", None),
        ("response.output_item.done", None),
    ]
    assert out[-1] == ev(9, "response.completed", response=response("completed", [item], usage(10, 9)))
    whole = {**message_start()["message"], "stop_reason": "tool_use",
             "content": [{"type": "tool_use", "id": "toolu_j", "name": "answer", "input": {"n": 1}}]}
    assert from_message(whole, json_tool="answer")["output"] == [item]


def test_json_tool_without_input_is_an_empty_object() -> None:
    events = [message_start(), block_start(0, {"type": "tool_use", "id": "toolu_j", "name": "answer", "input": {}}),
              block_stop(0), message_delta("tool_use", 3), MESSAGE_STOP]
    out, _ = convert(events, json_tool="answer")
    assert out[-1]["response"]["output"] == [message("completed", text_part("{}"))]


def test_consecutive_text_blocks_make_one_message_with_annotations_over_the_joined_text() -> None:
    """Text blocks around a server tool's blocks: one message, the text after the search a new paragraph."""
    citation = {"type": "web_search_result_location", "url": "https://example.com/a", "title": "A",
                "cited_text": "x", "encrypted_index": "e"}
    events = [message_start(), block_start(0, {"type": "text", "text": ""}),
              block_delta(0, type="text_delta", text="Intro. "), block_stop(0),
              block_start(1, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}),
              block_delta(1, type="input_json_delta", partial_json='{"query": "a"}'), block_stop(1),
              block_start(2, {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}),
              block_stop(2),
              block_start(3, {"type": "text", "text": "", "citations": []}),
              block_delta(3, type="citations_delta", citation=citation),
              block_delta(3, type="text_delta", text="Cited."), block_stop(3),
              message_delta("end_turn", 5), MESSAGE_STOP]
    out, _ = convert(events)
    annotation = {"type": "url_citation", "start_index": 9, "end_index": 15, "url": "https://example.com/a",
                  "title": "A"}  # (after the paragraph break the search makes)
    assert out[-1]["response"]["output"] == [message("completed", text_part("Intro. \n\nCited.", [annotation]))]
    assert [e["delta"] for e in out if e["type"] == "response.output_text.delta"] == ["Intro. ", "\n\n", "Cited."]
    [added] = [e for e in out if e["type"] == "response.output_text.annotation.added"]
    assert added == ev(7, "response.output_text.annotation.added", **AT0, annotation_index=0, annotation=annotation)
    message_, _ = fold_claude(events)
    assert out[-1]["response"] == from_message(message_)


@pytest.mark.parametrize(("stop_reason", "status", "reason"), [
    ("end_turn", "completed", None), ("stop_sequence", "completed", None), ("tool_use", "completed", None),
    ("pause_turn", "completed", None), ("refusal", "completed", None), ("something_new", "completed", None),
    ("max_tokens", "incomplete", "max_output_tokens"),
    ("model_context_window_exceeded", "incomplete", "max_output_tokens"),
])
def test_status_by_stop_reason(stop_reason: str, status: str, reason: str | None) -> None:
    out, _ = convert(text_events("x", stop_reason=stop_reason))
    final = out[-1]["response"]
    assert (out[-1]["type"], final["status"]) == (f"response.{status}", status)
    assert final["incomplete_details"] == ({"reason": reason} if reason else None)
    assert final["output"][0]["status"] == ("incomplete" if reason else "completed")


def test_usage_counts_cache_reads_and_writes_as_input() -> None:
    out, conv = convert([message_start(cache_read_input_tokens=100, cache_creation_input_tokens=20),
                         message_delta("end_turn", 7), MESSAGE_STOP])
    assert out[-1]["response"]["usage"] == usage(130, 7, cached=100, written=20)
    assert conv.claude_usage["cache_read_input_tokens"] == 100


def test_ping_and_unknown_events_produce_nothing() -> None:
    conv = ResponsesStreamConverter(response_id=RESPONSE_ID, created_at=CREATED, model=MODEL, echo=ECHO)
    assert conv.feed({"type": "ping"}) == []
    assert len(conv.feed(message_start())) == 2
    assert conv.feed({"type": "brand_new_event"}) == []
    assert conv.feed(block_start(0, {"type": "brand_new_block"})) == []
    assert conv.feed(block_delta(0, type="brand_new_delta")) == []
    assert conv.feed(block_stop(0)) == []


@pytest.mark.parametrize("event", [block_start(0, {"type": "text", "text": ""}), block_stop(0), MESSAGE_STOP])
def test_events_before_message_start_are_a_protocol_error(event: Event) -> None:
    conv = ResponsesStreamConverter(response_id=RESPONSE_ID, created_at=CREATED, model=MODEL, echo=ECHO)
    with pytest.raises(StreamProtocolError):
        conv.feed(event)


@pytest.mark.parametrize("event", [block_delta(5, type="text_delta", text="x"), block_stop(5),
                                   {"type": "content_block_delta", "index": 0, "delta": "not an object"},
                                   message_start()])
def test_broken_events_are_a_protocol_error(event: Event) -> None:
    conv = ResponsesStreamConverter(response_id=RESPONSE_ID, created_at=CREATED, model=MODEL, echo=ECHO)
    conv.feed(message_start())
    conv.feed(block_start(0, {"type": "text", "text": ""}))
    with pytest.raises(StreamProtocolError):
        conv.feed(event)


def test_item_ids() -> None:
    assert item_id("message", "resp_abc", 0) == "msg_abc_0"
    assert item_id("reasoning", "resp_abc", 1) == "rs_abc_1"
    assert item_id("function_call", "resp_abc", 12) == "fc_abc_12"


# --- the request's echo ---


def test_request_echo_defaults() -> None:
    assert request_echo({"model": "m", "input": "hi"}) == dict(ECHO_DEFAULTS)
    assert request_echo({"temperature": None, "tools": None, "text": None}) == dict(ECHO_DEFAULTS)


def test_request_echo_takes_what_the_request_says() -> None:
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": True}
    echo = request_echo({
        "instructions": "Be brief.", "max_output_tokens": 100, "metadata": {"k": "v"}, "parallel_tool_calls": False,
        "previous_response_id": "resp_prev", "reasoning": {"effort": "high"}, "store": False, "temperature": 0.2,
        "text": {"verbosity": "low"}, "tool_choice": {"type": "function", "name": "f"}, "tools": [tool], "top_p": 0.9,
        "truncation": "auto", "user": "u1", "prompt_cache_key": "k", "safety_identifier": "s", "service_tier": "auto",
    })
    assert echo == {
        "background": False, "instructions": "Be brief.", "max_output_tokens": 100, "max_tool_calls": None,
        "parallel_tool_calls": False, "previous_response_id": "resp_prev", "prompt_cache_key": "k",
        "reasoning": {"effort": "high", "summary": None}, "safety_identifier": "s", "service_tier": "default",
        "store": False, "temperature": 0.2, "text": {"verbosity": "low", "format": {"type": "text"}},
        "tool_choice": {"type": "function", "name": "f"}, "tools": [tool], "top_logprobs": 0, "top_p": 0.9,
        "truncation": "auto", "user": "u1", "metadata": {"k": "v"},
    }
    final = from_message({**message_start()["message"], "stop_reason": "end_turn"}, echo=echo)
    Response.model_validate(final)
    assert {k: final[k] for k in echo} == echo


def test_request_echo_says_what_ran() -> None:
    """Given the Claude request made of it: the temperature clamped, a top_p dropped beside it, the token limit
    lowered, and not stored where the proxy's store is off, as OpenAI reports what it ran."""
    req = {"temperature": 1.5, "top_p": 0.9, "max_output_tokens": 500_000, "store": True}
    echo = request_echo(req, {"model": "m", "temperature": 1.0, "max_tokens": 64000}, stored=False)
    assert {k: echo[k] for k in ("temperature", "top_p", "max_output_tokens", "store")} == {
        "temperature": 1.0, "top_p": 1.0, "max_output_tokens": 64000, "store": False}
    unset = request_echo({}, {"model": "m", "max_tokens": 8192}, stored=True)
    assert {k: unset[k] for k in ("temperature", "top_p", "max_output_tokens", "store")} == {
        "temperature": 1.0, "top_p": 1.0, "max_output_tokens": None, "store": True}


@pytest.mark.parametrize(("asked", "ran"), [
    ("required", "auto"),
    ({"type": "function", "name": "f"}, "auto"),
    ({"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "f"}]},
     {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]}),
    ("auto", "auto"),
])
def test_a_forced_tool_choice_relaxed_under_thinking_is_echoed_as_it_ran(asked: Any, ran: Any) -> None:
    sent = {"model": "m", "max_tokens": 8192, "tool_choice": {"type": "auto"}, "thinking": {"type": "adaptive"}}
    assert request_echo({"tool_choice": asked}, sent)["tool_choice"] == ran
    assert request_echo({"tool_choice": asked}, {**sent, "tool_choice": {"type": "any"}})["tool_choice"] == asked
    assert request_echo({"tool_choice": "none"}, {**sent, "tool_choice": {"type": "none"}})["tool_choice"] == "none"


def test_service_tier_is_the_one_that_served() -> None:
    """As OpenAI reports it: Claude's usage.service_tier once known (standard is OpenAI's default); a tier with
    no OpenAI name leaves the request's."""
    asked = request_echo({"service_tier": "priority"})
    done = {**message_start()["message"], "stop_reason": "end_turn"}
    served = {**done, "usage": {**done["usage"], "service_tier": "standard"}}
    assert from_message(served, echo=asked)["service_tier"] == "default"
    assert from_message({**done, "usage": {**done["usage"], "service_tier": "priority"}})["service_tier"] == "priority"
    assert from_message({**done, "usage": {**done["usage"], "service_tier": "batch"}}, echo=asked)[
        "service_tier"] == "priority"
    start = message_start()
    start["message"]["usage"]["service_tier"] = "standard"
    events, _ = convert([start, message_delta("end_turn", 2), {"type": "message_stop"}], echo=asked)
    assert [e["response"]["service_tier"] for e in events if "response" in e] == ["default"] * 3  # (known at start)


def test_an_item_id_names_its_response() -> None:
    """What an item_reference is resolved by: every kind of id of ours, and nothing else."""
    response_id = "resp_0123456789abcdef0123456789abcdef"
    for kind in ("message", "reasoning", "function_call", "input"):
        assert response_of(item_id(kind, response_id, 7)) == response_id
    assert item_id("input", response_id, 2) == "item_0123456789abcdef0123456789abcdef_2"
    for other in ("msg_1", "call_abc", "msg_0123456789abcdef0123456789abcdef", "x_0123456789abcdef_1", ""):
        assert response_of(other) is None


def test_request_echo_does_not_share_the_defaults() -> None:
    echo = request_echo({})
    echo["tools"].append("x")
    echo["metadata"]["k"] = "v"
    assert request_echo({}) == dict(ECHO_DEFAULTS)


# Fields a recorded OpenAI response echoes from its request the same way: the rest OpenAI fills from what it ran
# (service_tier, the model's own reasoning.effort and top_p defaults: gpt-5.2 reports 0.98), or normalizes (tools
# get "strict", text gets "verbosity" and the schema format's "description": null).
ECHOED_ALIKE = ("instructions", "max_output_tokens", "max_tool_calls", "parallel_tool_calls", "previous_response_id",
                "prompt_cache_key", "safety_identifier", "store", "temperature", "tool_choice", "top_logprobs",
                "truncation", "user", "metadata", "background")


# The requests recorded with OpenAI's answers (the Codex requests beside them were sent to a fake of ours).
RECORDED_REQUESTS = [p for p in sorted(OPENAI_REQUESTS.iterdir())
                     if (FIXTURES / "responses" / "streams" / p.name.replace(".request.json", ".sse")).exists()]


@pytest.mark.parametrize("request_path", RECORDED_REQUESTS, ids=lambda p: p.name)
def test_request_echo_agrees_with_openai_recordings(request_path: Path) -> None:
    stem = request_path.name.removesuffix(".request.json")
    [created] = [e for e in sse_events(FIXTURES / "responses" / "streams" / f"{stem}.sse")
                 if e["type"] == "response.created"]
    recorded, echo = created["response"], request_echo(orjson.loads(request_path.read_bytes()))
    assert {k: echo[k] for k in ECHOED_ALIKE} == {k: recorded[k] for k in ECHOED_ALIKE}
    assert echo["text"]["format"]["type"] == recorded["text"]["format"]["type"]
    assert [t["type"] for t in echo["tools"]] == [t["type"] for t in recorded["tools"]]


# --- OpenAI's own recordings: the same order, the same shapes ---


@pytest.mark.parametrize("path", OPENAI_STREAMS, ids=[p.name for p in OPENAI_STREAMS])
def test_openai_recordings_pass_the_order_check(path: Path) -> None:
    """The grammar ``check_stream`` holds our streams to is OpenAI's: its recordings pass it too. (Not the
    installed SDK's types: it requires usage.input_tokens_details.cache_write_tokens, newer than most of them.)"""
    check_stream(sse_events(path))


def _key_sets(events: Iterable[Event]) -> dict[str, set[frozenset[str]]]:
    """The key sets of each event type, and of the items and parts they carry (by where they are)."""
    keys: dict[str, set[frozenset[str]]] = {}
    for e in events:
        keys.setdefault(e["type"], set()).add(frozenset(e))
        if "item" in e:
            keys.setdefault(f"{e['type']}:{e['item']['type']}", set()).add(frozenset(e["item"]))
        if "part" in e:
            keys.setdefault(f"{e['type']}:{e['part']['type']}", set()).add(frozenset(e["part"]))
        if "response" in e:
            keys.setdefault("response", set()).add(frozenset(e["response"]))
            if e["response"]["usage"]:
                keys.setdefault("usage", set()).add(frozenset(e["response"]["usage"]))
    return keys


# OpenAI's keys we do not send, and ours it does not, each with its reason: everywhere, then by event type.
OPENAI_ONLY = {
    "obfuscation",  # random padding against length side channels: nothing to hide here
    "completed_at", "frequency_penalty", "presence_penalty", "prompt_cache_retention",  # newer, optional
}
DIFFERENCES = {  # kind: (OpenAI's keys we do not send there, ours it does not send there)
    # the block's signature, which encrypted_content carries, is not known before the block's end
    "response.output_item.added:reasoning": ({"encrypted_content"}, set()),
    "response.function_call_arguments.done": (set(), {"name"}),  # the spec requires it; the recordings predate it
    "error": (set(), {"code", "message", "param"}),  # the spec's flat fields, beside the API's nested ``error``
}


def test_our_events_have_openai_shapes() -> None:
    ours = _key_sets(e for path, json_tool in CASES for e in convert(sse_events(path), json_tool=json_tool)[0])
    more = [text_events("x", stop_reason="refusal"), text_events("x", stop_reason="max_tokens"),
            [message_start(), {"type": "error", "error": {"type": "api_error", "message": "m"}}]]
    for events in more:
        for kind, sets in _key_sets(convert(events)[0]).items():
            ours.setdefault(kind, set()).update(sets)
    theirs = _key_sets(e for path in OPENAI_STREAMS for e in sse_events(path))
    assert set(ours) <= set(theirs)  # every event type (and item, part) we send, OpenAI has sent
    for kind, key_sets in ours.items():
        openai_only, ours_only = DIFFERENCES.get(kind, (set(), set()))
        for mine in key_sets:
            assert any(mine - ours_only == recorded - OPENAI_ONLY - openai_only for recorded in theirs[kind]), kind


def test_our_response_object_has_the_keys_of_openai_recordings() -> None:
    recorded = [set(orjson.loads(path.read_bytes())) for path in OPENAI_RESPONSES]
    ours = from_message(orjson.loads(CLAUDE_RESPONSES[0].read_bytes()))
    newer = {"billing", "completed_at", "frequency_penalty", "presence_penalty", "prompt_cache_retention",
             "moderation", "tool_usage"}  # optional, and newer than what a Claude answer can fill
    assert all(keys - newer <= set(ours) for keys in recorded)
    assert set(ours) <= set.union(*recorded)
