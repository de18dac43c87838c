"""Property tests for the pure layer on generated input: what clients and upstreams could send, valid, nearly
valid (random mutations: wrong types, missing fields, nested nulls, unknown parts, odd unicode, huge numbers)
and arbitrary.

- ``convert_request`` returns a body ``orjson`` can send, or raises ``InvalidRequest``; nothing else.
- ``convert_response`` converts every valid Claude message; on anything else it raises only
  ``TranslatorError`` subclasses.
- ``StreamConverter`` on valid streams never raises; on well-formed events in any order only
  ``StreamProtocolError``; on events with random fields (the same).
- ``SSEDecoder`` never raises on arbitrary bytes, and finds the same events however the bytes are split.

The strategies are shared with tests/integration/test_fuzz_server.py. Inputs that hit a bug reported by this
suite were fixed; each keeps a regression test;
drop them when the fixes land.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.test_response import _texts_apart_from_server_tools
from translator.convert import ModelProfile, StreamConverter, StreamProtocolError, convert_request, convert_response
from translator.convert.tables import REASONING_BUDGET
from translator.errors import InvalidRequest, TranslatorError
from translator.sse import SSEDecoder

# Hypothesis warns when it builds the (large) repr of these strategies for its statistics: noise.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FUZZ = settings(
    max_examples=250, deadline=None, database=None, report_multiple_bugs=False,
    derandomize=os.environ.get("CI") == "true",  # CI replays one fixed set; local runs keep exploring
    suppress_health_check=[HealthCheck.too_slow],
)

# --- JSON values, as orjson.loads can produce them (64-bit ints, finite floats, no lone surrogates) ---

INTS = st.integers(-(2**63), 2**64 - 1) | st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**64 - 1, -(2**63)])
ODD_TEXT = st.sampled_from(
    ["", " ", "\x00", "\u202e\u0645\u0631\u062d\u0628\u0627", "\ufeff", "\U0001f916" * 3, "a\r\nb", "data: x\n\n",
     "event: error", "null", "{}", "\u0301\u0301", "\uffff", "\U0010ffff", "x" * 300]
)
TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | ODD_TEXT
SCALARS = st.none() | st.booleans() | INTS | st.floats(allow_nan=False, allow_infinity=False) | TEXT
JSON = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(TEXT, kids, max_size=3), max_leaves=8
)


@st.composite
def mutation(draw: st.DrawFn, value: Any, top: bool = False) -> Any:
    """One random change somewhere inside ``value``: a value of another type, a null, a key dropped or added.
    ``top``: the change is inside (a request body stays an object: the routes answer 400 to anything else)."""
    if top and value in ({}, []):
        return {draw(TEXT): draw(JSON)} if isinstance(value, dict) else [draw(JSON)]
    if isinstance(value, dict) and value and (top or draw(st.integers(0, 3))):
        return _mutated_object(draw, value)
    if isinstance(value, list) and value and (top or draw(st.integers(0, 3))):
        return _mutated_array(draw, value)
    return draw(JSON)


def _mutated_object(draw: st.DrawFn, value: dict[str, Any]) -> dict[str, Any]:
    out = dict(value)
    key = draw(st.sampled_from(list(value)))
    action = draw(st.sampled_from(("descend", "descend", "descend", "delete", "null", "replace", "add")))
    if action == "descend":
        out[key] = draw(mutation(value[key]))
    elif action == "delete":
        del out[key]
    elif action == "null":
        out[key] = None
    elif action == "replace":
        out[key] = draw(JSON)
    else:
        out[draw(TEXT)] = draw(JSON)
    return out


def _mutated_array(draw: st.DrawFn, value: list[Any]) -> list[Any]:
    out = list(value)
    i = draw(st.integers(0, len(value) - 1))
    action = draw(st.sampled_from(("descend", "descend", "delete", "null", "append")))
    if action == "descend":
        out[i] = draw(mutation(value[i]))
    elif action == "delete":
        del out[i]
    elif action == "null":
        out[i] = None
    else:
        out.append(draw(JSON))
    return out


@st.composite
def mutated(draw: st.DrawFn, strategy: st.SearchStrategy[Any], most: int = 3) -> Any:
    value = draw(strategy)
    for _ in range(draw(st.integers(1, most))):
        value = draw(mutation(value, top=True))
    return value


def opt(**fields: st.SearchStrategy[Any]) -> dict[str, st.SearchStrategy[Any]]:
    return fields


# --- OpenAI Chat Completions requests ---

DATA_URLS = st.sampled_from([
    "data:image/png;base64,iVBORw0KGgo=", "data:image/jpg;base64,/9j/", "data:image/svg+xml;base64,PHN2Zz4=",
    "data:;base64,", "data:image/png,notbase64", "data:text/plain;base64,aGVsbG8=", "data:text/plain;base64,%%%",
    "data:text/plain;base64,w6k=", "data:text/plain;base64,\u00e9\u00e9", "data:application/pdf;base64,JVBERi0=",
    "https://example.com/a.png", "http://x", "ftp://example.com/a.png", "file:///etc/passwd", "",
])
PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT},
                          optional=opt(cache_control=st.just({"type": "ephemeral"}))),
    st.fixed_dictionaries({"type": st.just("image_url"),
                           "image_url": st.fixed_dictionaries({"url": DATA_URLS},
                                                              optional=opt(detail=st.sampled_from(["auto", "low"])))}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": DATA_URLS}),
    st.fixed_dictionaries({"type": st.just("file"),
                           "file": st.fixed_dictionaries({}, optional=opt(file_data=DATA_URLS | TEXT,
                                                                          filename=TEXT, file_id=TEXT))}),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": st.fixed_dictionaries(
        {"data": TEXT, "format": st.sampled_from(["wav", "mp3"])})}),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": TEXT}),
    st.fixed_dictionaries({"type": TEXT}, optional=opt(text=TEXT)),
)
CONTENT = st.none() | TEXT | st.lists(PART, max_size=3)
ARGUMENTS = st.sampled_from(["", "{}", '{"a": 1}', "[1]", "{", "null", '"x"']) | JSON.map(
    lambda v: orjson.dumps(v).decode()
)
TOOL_CALL = st.fixed_dictionaries({
    "id": TEXT, "type": st.just("function"),
    "function": st.fixed_dictionaries({"name": TEXT}, optional=opt(arguments=ARGUMENTS)),
})
THINKING_BLOCK = st.fixed_dictionaries({"type": st.just("thinking"), "thinking": TEXT, "signature": TEXT}) | \
    st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": TEXT})
MESSAGE = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "developer"]), "content": CONTENT}),
    st.fixed_dictionaries({"role": st.just("user"), "content": CONTENT}, optional=opt(name=TEXT)),
    st.fixed_dictionaries({"role": st.just("assistant")}, optional=opt(
        content=CONTENT, tool_calls=st.lists(TOOL_CALL, max_size=2), refusal=TEXT,
        function_call=st.fixed_dictionaries({"name": TEXT}, optional=opt(arguments=ARGUMENTS)),
        thinking_blocks=st.lists(THINKING_BLOCK, max_size=2))),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": TEXT, "content": CONTENT}),
    st.fixed_dictionaries({"role": st.just("function"), "name": TEXT, "content": CONTENT}),
)
SCHEMA: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.just({}), st.just({"type": "object", "properties": {"a": {"type": "string"}}}), JSON
)
FUNCTION = st.fixed_dictionaries({"name": TEXT}, optional=opt(description=TEXT, parameters=SCHEMA,
                                                               strict=st.booleans()))
NUMBER = INTS | st.floats(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
REQUEST_FIELDS = opt(
    max_tokens=INTS | st.integers(1, 9000), max_completion_tokens=INTS | st.integers(1, 9000),
    temperature=NUMBER, top_p=NUMBER, top_k=INTS,
    stop=TEXT | st.lists(TEXT, max_size=3), stream=st.booleans(),
    stream_options=st.fixed_dictionaries({}, optional=opt(include_usage=st.booleans())),
    tools=st.lists(st.fixed_dictionaries({"type": st.sampled_from(["function", "function", "custom"]),
                                          "function": FUNCTION}), max_size=2),
    functions=st.lists(FUNCTION, max_size=2),
    tool_choice=st.sampled_from(["auto", "none", "required", "any"])
    | st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries({"name": TEXT})}),
    function_call=st.sampled_from(["auto", "none"]) | st.fixed_dictionaries({"name": TEXT}),
    parallel_tool_calls=st.booleans(), user=TEXT,
    reasoning_effort=st.sampled_from([*REASONING_BUDGET, "max", "", "HIGH"]),
    thinking=st.fixed_dictionaries({"type": st.sampled_from(["enabled", "disabled", "adaptive"])},
                                   optional=opt(budget_tokens=INTS)),
    response_format=st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "xml"}])
    | st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": st.fixed_dictionaries(
        {"schema": SCHEMA}, optional=opt(name=TEXT, description=TEXT, strict=st.booleans()))}),
    n=st.integers(-1, 10), web_search_options=st.fixed_dictionaries({}, optional=opt(
        user_location=st.fixed_dictionaries({"type": st.just("approximate"),
                                             "approximate": st.dictionaries(TEXT, TEXT, max_size=2)}))),
    logprobs=st.booleans(), top_logprobs=st.integers(0, 5), audio=st.none() | st.just({"voice": "x"}),
    modalities=st.lists(st.sampled_from(["text", "audio"]), max_size=2),
    seed=INTS, metadata=JSON, frequency_penalty=NUMBER, service_tier=TEXT,
)
ODD_OPENAI_REQUEST = st.fixed_dictionaries(  # every field present is a likely troublemaker
    {"model": st.just("claude-sonnet-4-5") | TEXT, "messages": st.lists(MESSAGE, min_size=1, max_size=4)},
    optional=REQUEST_FIELDS,
)

# Valid requests (what real clients send), for mutations to start from.
ID = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)
VALID_PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries(
        {"url": st.sampled_from(["data:image/png;base64,iVBORw0KGgo=", "https://example.com/a.png"])})}),
    st.fixed_dictionaries({"type": st.just("file"), "file": st.fixed_dictionaries({"file_data": st.sampled_from(
        ["data:application/pdf;base64,JVBERi0=", "data:text/plain;base64,aGVsbG8="])})}),
)
VALID_CONTENT = TEXT | st.lists(VALID_PART, min_size=1, max_size=3)


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    """System text, then user turns, each maybe answered with tool calls and their results."""
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": draw(st.sampled_from(["system", "developer"])), "content": draw(TEXT)})
    for turn in range(draw(st.integers(1, 3))):
        msgs.append({"role": "user", "content": draw(VALID_CONTENT)})
        shape = draw(st.sampled_from(["none", "text", "tools", "legacy"]))
        if shape == "text":
            msgs.append({"role": "assistant", "content": draw(TEXT)})
        elif shape == "tools":
            ids = [f"call_{turn}_{i}" for i in range(draw(st.integers(1, 2)))]
            calls = [{"id": i, "type": "function", "function": {"name": draw(ID), "arguments": draw(
                st.sampled_from(["", "{}", '{"q": "x"}']))}} for i in ids]
            msgs.append({"role": "assistant", "content": draw(st.none() | TEXT), "tool_calls": calls})
            msgs += [{"role": "tool", "tool_call_id": i, "content": draw(VALID_CONTENT)} for i in ids]
        elif shape == "legacy":
            name = draw(ID)
            msgs.append({"role": "assistant", "content": None, "function_call": {"name": name, "arguments": "{}"}})
            msgs.append({"role": "function", "name": name, "content": draw(TEXT)})
    return msgs


VALID_FUNCTION = st.fixed_dictionaries({"name": ID}, optional=opt(
    description=TEXT, parameters=st.just({"type": "object", "properties": {"q": {"type": "string"}}}),
    strict=st.booleans()))
VALID_FIELDS = opt(
    max_tokens=st.integers(1, 2**31) | INTS.filter(lambda n: n >= 1), max_completion_tokens=st.integers(1, 2**31),
    temperature=st.floats(0, 2), top_p=st.floats(0, 1), top_k=st.integers(1, 500),
    stop=TEXT | st.lists(TEXT, max_size=4), stream=st.booleans(),
    stream_options=st.fixed_dictionaries({"include_usage": st.booleans()}),
    tools=st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": VALID_FUNCTION}), max_size=3),
    functions=st.lists(VALID_FUNCTION, max_size=2),
    tool_choice=st.sampled_from(["auto", "none", "required"])
    | st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries({"name": ID})}),
    parallel_tool_calls=st.booleans(), user=TEXT, reasoning_effort=st.sampled_from(list(REASONING_BUDGET)),
    thinking=st.fixed_dictionaries({"type": st.just("enabled"), "budget_tokens": st.integers(1024, 65536) | INTS})
    | st.just({"type": "disabled"}) | st.just({"type": "adaptive"}),
    response_format=st.sampled_from([{"type": "text"}, {"type": "json_object"},
                                     {"type": "json_schema", "json_schema": {"name": "r", "schema": {
                                         "type": "object", "properties": {"a": {"type": "string"}}}}}]),
    n=st.integers(1, 8), web_search_options=st.just({}) | st.just(
        {"user_location": {"type": "approximate", "approximate": {"city": "Paris"}}}),
    logprobs=st.just(False), top_logprobs=st.just(0), modalities=st.just(["text"]),
    seed=INTS, metadata=st.dictionaries(ID, TEXT, max_size=2), frequency_penalty=st.floats(-2, 2),
    store=st.booleans(), service_tier=st.just("auto"),
)
MODEL = st.sampled_from(["claude-sonnet-4-5", "claude-3-haiku-20240307", "gpt-4o", "claude-opus-4-6"])
OPENAI_REQUEST = st.fixed_dictionaries({"model": MODEL, "messages": conversation()}, optional=VALID_FIELDS)
ANY_OPENAI_REQUEST = st.one_of(
    OPENAI_REQUEST, OPENAI_REQUEST, mutated(OPENAI_REQUEST), mutated(OPENAI_REQUEST), ODD_OPENAI_REQUEST,
    st.dictionaries(TEXT, JSON, max_size=5),
)

# --- Claude Messages requests (the Claude route checks little and relays the rest) ---

CLAUDE_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/png"), "data": TEXT})}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": TEXT, "content": TEXT}),
    st.fixed_dictionaries({"type": TEXT}),
)
CLAUDE_REQUEST = st.fixed_dictionaries(
    {"model": MODEL | TEXT, "max_tokens": st.integers(1, 4096) | INTS,
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                                 "content": TEXT | st.lists(CLAUDE_BLOCK, max_size=2)}),
                          max_size=3)},
    optional=opt(system=TEXT | st.lists(CLAUDE_BLOCK, max_size=2), stream=st.booleans(), temperature=NUMBER,
                 metadata=st.fixed_dictionaries({}, optional=opt(user_id=TEXT | INTS)), tools=JSON,
                 thinking=JSON, stop_sequences=st.lists(TEXT, max_size=2)),
)
ANY_CLAUDE_REQUEST = st.one_of(
    CLAUDE_REQUEST, CLAUDE_REQUEST, mutated(CLAUDE_REQUEST), st.dictionaries(TEXT, JSON, max_size=5)
)

# --- Claude responses and stream events ---

STOP_REASONS = st.sampled_from(["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                                "model_context_window_exceeded", "something_new"]) | st.none()
USAGE = st.fixed_dictionaries(
    {"input_tokens": st.integers(0, 2**40), "output_tokens": st.integers(0, 2**40)},
    optional=opt(cache_read_input_tokens=st.none() | st.integers(0, 2**40),
                 cache_creation_input_tokens=st.none() | st.integers(0, 2**40),
                 output_tokens_details=st.fixed_dictionaries({"thinking_tokens": st.integers(0, 2**20)}),
                 service_tier=st.just("standard")),
)
RESPONSE_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}, optional=opt(citations=st.none() | st.just([]))),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": TEXT, "name": TEXT | st.just("json_response"),
                           "input": st.dictionaries(TEXT, JSON, max_size=3)}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": TEXT, "signature": TEXT}),
    st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": TEXT}),
    st.fixed_dictionaries({"type": st.just("server_tool_use"), "id": TEXT, "name": st.just("web_search"),
                           "input": st.dictionaries(TEXT, TEXT, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("web_search_tool_result"), "tool_use_id": TEXT, "content": JSON}),
    st.fixed_dictionaries({"type": st.sampled_from(["container_upload", "mcp_tool_use", "future_block"])}),
)
CLAUDE_MESSAGE = st.fixed_dictionaries({
    "id": TEXT, "type": st.just("message"), "role": st.just("assistant"), "model": TEXT,
    "content": st.lists(RESPONSE_BLOCK, max_size=4), "stop_reason": STOP_REASONS,
    "stop_sequence": st.none() | TEXT, "usage": USAGE,
})
JSON_TOOL = st.none() | st.just("json_response")


@st.composite
def valid_stream(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A well-formed Claude event sequence: message_start, blocks (start, deltas, stop), message_delta,
    message_stop, with pings anywhere."""
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {
        **draw(CLAUDE_MESSAGE), "content": [], "stop_reason": None}}]
    for index in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["text", "tool_use", "thinking", "redacted_thinking", "server_tool_use",
                                     "future_block"]))
        start: dict[str, Any] = {"type": kind}
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            start["text"] = ""
            deltas = [{"type": "text_delta", "text": t} for t in draw(st.lists(TEXT, max_size=3))]
            deltas += draw(st.lists(st.just({"type": "citations_delta", "citation": {"type": "x"}}), max_size=1))
        elif kind in ("tool_use", "server_tool_use"):
            start |= {"id": draw(TEXT), "name": draw(TEXT | st.just("json_response")), "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": t} for t in draw(st.lists(TEXT, max_size=3))]
        elif kind == "thinking":
            start |= {"thinking": "", "signature": ""}
            deltas = [{"type": "thinking_delta", "thinking": t} for t in draw(st.lists(TEXT, max_size=2))]
            deltas.append({"type": "signature_delta", "signature": draw(TEXT)})
        elif kind == "redacted_thinking":
            start["data"] = draw(TEXT)
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        events += [{"type": "content_block_delta", "index": index, "delta": d} for d in deltas]
        events.append({"type": "content_block_stop", "index": index})
    events.append({"type": "message_delta", "delta": {"stop_reason": draw(STOP_REASONS), "stop_sequence": None},
                   "usage": {"output_tokens": draw(st.integers(0, 2**31))}})
    events.append({"type": "message_stop"})
    for _ in range(draw(st.integers(0, 2))):
        events.insert(draw(st.integers(1, len(events) - 1)), {"type": "ping"})
    return events


EVENT_TYPES = ["message_start", "content_block_start", "content_block_delta", "content_block_stop",
               "message_delta", "message_stop", "ping", "error", "future_event"]
# Events as the protocol shapes them, in any order (and sometimes repeated, or from another stream).
WELL_FORMED_EVENT = st.one_of(
    valid_stream().flatmap(lambda events: st.sampled_from(events)),
    st.fixed_dictionaries({"type": st.just("error"), "error": st.fixed_dictionaries(
        {"type": st.sampled_from(["overloaded_error", "api_error", "new_error"]), "message": TEXT})}),
    st.fixed_dictionaries({"type": st.just("future_event")}, optional=opt(data=JSON)),
)
# Valid event types with random fields.
RANDOM_EVENT = st.builds(lambda kind, fields: {**fields, "type": kind},
                         st.sampled_from(EVENT_TYPES), st.dictionaries(TEXT | st.sampled_from(
                             ["index", "delta", "message", "content_block", "usage", "error"]), JSON, max_size=4))
ANY_EVENT = st.one_of(WELL_FORMED_EVENT, mutated(WELL_FORMED_EVENT), RANDOM_EVENT, st.dictionaries(TEXT, JSON))


# --- convert_request ---


@FUZZ
@given(req=ANY_OPENAI_REQUEST, strict=st.sampled_from([False, False, False, True]), structured=st.booleans())
@example(req={"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]},
         strict=False, structured=False)
def test_convert_request_returns_a_sendable_body_or_raises_invalid_request(
    req: dict[str, Any], strict: bool, structured: bool
) -> None:
    try:
        conv = convert_request(req, model="claude-x", profile=ModelProfile(structured_output=structured),
                               strict=strict)
    except InvalidRequest as e:
        assert isinstance(e.message, str) and e.message
        assert e.param is None or isinstance(e.param, str)
        return
    orjson.dumps(conv.body)  # the route sends it as JSON: it must encode
    assert conv.body["model"] == "claude-x"
    assert isinstance(conv.body["messages"], list) and conv.body["messages"]
    assert all(turn["role"] in ("user", "assistant") and turn["content"] for turn in conv.body["messages"])
    assert 1 <= conv.n <= 8


def _convert(req: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidRequest):
        orjson.dumps(convert_request(req, model="claude-x", profile=ModelProfile()).body)


HI = [{"role": "user", "content": "hi"}]


# Regressions the fuzzer found: each was a 500 before.


def _rejected(req: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        convert_request(req, model="claude-x", profile=ModelProfile())
    return caught.value


@pytest.mark.parametrize("effort", [[], {}, ["high"]])
def test_unhashable_reasoning_effort_is_a_400(effort: Any) -> None:
    assert _rejected({"messages": HI, "reasoning_effort": effort}).param == "reasoning_effort"


def test_non_ascii_text_file_data_is_a_400() -> None:
    part = {"type": "file", "file": {"file_data": "data:text/plain;base64,\u00e9\u00e9"}}
    err = _rejected({"messages": [{"role": "user", "content": [part]}]})
    assert err.param == "messages[0].content[0].file.file_data"


@pytest.mark.parametrize("budget", [2**64 - 1, 2**31, 0, -5])
def test_thinking_budget_out_of_range_is_a_400(budget: int) -> None:
    err = _rejected({"messages": HI, "thinking": {"type": "enabled", "budget_tokens": budget}})
    assert err.param == "thinking.budget_tokens"


# --- convert_response ---


@FUZZ
@given(msg=CLAUDE_MESSAGE, json_tool=JSON_TOOL)
def test_every_valid_claude_message_converts(msg: dict[str, Any], json_tool: str | None) -> None:
    out = convert_response(msg, created=0, model="claude-x", json_tool=json_tool)
    orjson.dumps(out)
    (choice,) = out["choices"]
    assert choice["finish_reason"] in ("stop", "length", "tool_calls", "content_filter")
    assert choice["message"]["role"] == "assistant"
    texts = _texts_apart_from_server_tools(msg["content"])
    if texts and json_tool is None:
        assert choice["message"]["content"] == "".join(texts)


@FUZZ
@given(msg=st.one_of(mutated(CLAUDE_MESSAGE), st.dictionaries(TEXT, JSON, max_size=5)), json_tool=JSON_TOOL)
@example(msg={"type": "message", "content": "Hello", "usage": "none"}, json_tool=None)
# token counts past orjson's 64 bits (once summed), found by this test: they count as 0, never a 500
@example(msg={"type": "message", "role": "assistant", "content": [], "id": "", "model": "",
              "usage": {"input_tokens": 2**64 - 1, "output_tokens": 1}}, json_tool=None)
@example(msg={"type": "message", "role": "assistant", "content": [], "id": "", "model": "",
              "usage": {"input_tokens": 1.8446744073709552e19, "output_tokens": 0}}, json_tool=None)
def test_any_dict_converts_or_raises_a_translator_error(msg: dict[str, Any], json_tool: str | None) -> None:
    try:
        out = convert_response(msg, created=0, model="claude-x", json_tool=json_tool)
    except TranslatorError:
        return
    orjson.dumps(out)


# --- StreamConverter ---


def _feed_all(events: list[dict[str, Any]], include_usage: bool, json_tool: str | None) -> list[dict[str, Any]]:
    conv = StreamConverter(created=0, model="claude-x", include_usage=include_usage, json_tool=json_tool)
    chunks: list[dict[str, Any]] = []
    try:
        for event in events:
            chunks += conv.feed(event)
        chunks += conv.finish()
    except StreamProtocolError:
        pass
    orjson.dumps(chunks)  # each is written as an SSE data line
    for chunk in chunks:
        assert ("error" in chunk) != ("choices" in chunk)
    return chunks


@FUZZ
@given(events=valid_stream(), include_usage=st.booleans(), json_tool=JSON_TOOL)
def test_a_valid_stream_converts_completely(
    events: list[dict[str, Any]], include_usage: bool, json_tool: str | None
) -> None:
    conv = StreamConverter(created=0, model="claude-x", include_usage=include_usage, json_tool=json_tool)
    chunks = [c for e in events for c in conv.feed(e)]
    assert conv.done
    assert conv.finish() == []
    assert not any("error" in c for c in chunks)
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] in ("stop", "length", "tool_calls", "content_filter")
    assert all(f is None for f in finishes[:-1])
    assert bool(include_usage) == (chunks[-1]["choices"] == [])


@FUZZ
@given(events=st.lists(WELL_FORMED_EVENT, max_size=12), include_usage=st.booleans(), json_tool=JSON_TOOL)
def test_well_formed_events_in_any_order_raise_only_stream_protocol_errors(
    events: list[dict[str, Any]], include_usage: bool, json_tool: str | None
) -> None:
    _feed_all(events, include_usage, json_tool)


@FUZZ
@given(events=st.lists(ANY_EVENT, max_size=10), include_usage=st.booleans(), json_tool=JSON_TOOL)
@example(events=[{"type": "message_start", "message": {}},
                 {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}},
                 {"type": "content_block_delta", "index": 0, "delta": "Hel"}], include_usage=False, json_tool=None)
def test_any_events_raise_only_stream_protocol_errors(
    events: list[dict[str, Any]], include_usage: bool, json_tool: str | None
) -> None:
    _feed_all(events, include_usage, json_tool)


# --- the SSE decoder ---


def _decode(pieces: list[bytes]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)]
    events += decoder.flush()
    return [(e.event, e.data) for e in events]


SSE_LINE = st.one_of(
    st.sampled_from([b"event: message_start", b"event:ping", b"data: {}", b"data:", b"data", b": comment", b"",
                     b"id: 1", b"retry: 10", b"event: error", b"data: [DONE]", b"\xef\xbb\xbfdata: x"]),
    st.builds(lambda v: b"data: " + v, st.binary(max_size=8)),
)
SSE_BYTES = st.builds(
    lambda bom, lines, seps: (b"\xef\xbb\xbf" if bom else b"") + b"".join(
        line + sep for line, sep in zip(lines, seps, strict=False)),
    st.booleans(), st.lists(SSE_LINE, max_size=12), st.lists(st.sampled_from([b"\n", b"\r", b"\r\n"]), min_size=12,
                                                              max_size=12),
)


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), SSE_BYTES).flatmap(lambda d: st.tuples(st.just(d), split(d))))
def test_the_sse_decoder_never_raises_and_ignores_how_bytes_are_split(data: tuple[bytes, list[bytes]]) -> None:
    whole, pieces = data
    assert _decode(pieces) == _decode([whole])
    assert _decode([bytes([b]) for b in whole]) == _decode([whole])
