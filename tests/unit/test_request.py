"""An OpenAI Chat Completions request -> a Claude Messages request (``convert_request``).

Every case compares the whole ``ConvertedRequest`` (Claude body, n, stream flags, forced JSON tool,
ignored fields, adjustments); every error case the exact status, param and code. Message-level rows
(system hoisting, merging, content parts, tool calls) are in ``test_messages.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import orjson
import pytest

from translator.convert import ConvertedRequest, ModelProfile, convert_request
from translator.errors import InvalidRequest

JSONObject = dict[str, Any]
REQUESTS = Path(__file__).parent.parent / "fixtures" / "openai" / "requests"

MODEL = "claude-sonnet-4-5"
NATIVE = ModelProfile(max_tokens=8192, structured_output=True)  # e.g. claude-sonnet-4-5
PLAIN = ModelProfile(max_tokens=4096, structured_output=False)  # e.g. claude-3-5-haiku

HI = {"role": "user", "content": "Hi"}
HI_TURN = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER_FN = {"name": "get_weather", "description": "Weather for a city.", "parameters": SCHEMA}
WEATHER = {"type": "function", "function": WEATHER_FN}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city.", "input_schema": SCHEMA}
JSON_OBJECT_TOOL = {"name": "json_response", "description": "Respond with JSON matching this schema.",
                    "input_schema": {"type": "object"}}
BESIDE_TOOLS = ("response_format: its JSON tool offered beside the request's tools, tool_choice any (the model has "
                "no native structured output): the JSON tool's call is the answer")
TIME_TOOL = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}


def convert(req: JSONObject, profile: ModelProfile = NATIVE, *, strict: bool = False) -> ConvertedRequest:
    return convert_request({"model": "gpt-4o", "messages": [HI], **req}, model=MODEL, profile=profile, strict=strict)


def claude(**fields: Any) -> JSONObject:
    """The Claude body for the one-message request, plus (or overriding) ``fields``."""
    return {"model": MODEL, "messages": [HI_TURN], "max_tokens": 8192, **fields}


def done(body: JSONObject, **fields: Any) -> ConvertedRequest:
    return ConvertedRequest(body=body, **fields)


SIGNED = {"type": "thinking", "thinking": "Weather first.", "signature": "EqQBCkYIBxgCKkD"}
TOOL_LOOP: list[JSONObject] = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
]
TOOL_LOOP_TURNS: list[JSONObject] = [
    HI_TURN,
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
]

CASES: list[tuple[str, JSONObject, ModelProfile, ConvertedRequest]] = [
    # (id, OpenAI request fields, model profile, expected conversion)
    ("minimal: the profile's max_tokens", {}, NATIVE, done(claude())),
    ("minimal: another profile's max_tokens", {}, PLAIN, done(claude(max_tokens=4096))),
    (
        "system hoisted",
        {"messages": [{"role": "system", "content": "Be brief."}, HI]},
        NATIVE,
        done(claude(system=[{"type": "text", "text": "Be brief."}])),
    ),
    ("max_tokens", {"max_tokens": 100}, NATIVE, done(claude(max_tokens=100))),
    ("max_completion_tokens", {"max_completion_tokens": 200}, NATIVE, done(claude(max_tokens=200))),
    (
        "max_completion_tokens wins over max_tokens",
        {"max_tokens": 100, "max_completion_tokens": 200},
        NATIVE,
        done(claude(max_tokens=200)),
    ),
    ("max_tokens null is absent", {"max_tokens": None}, PLAIN, done(claude(max_tokens=4096))),
    ("stop string", {"stop": "END"}, NATIVE, done(claude(stop_sequences=["END"]))),
    ("stop list", {"stop": ["a", "b"]}, NATIVE, done(claude(stop_sequences=["a", "b"]))),
    ("stop empty list", {"stop": []}, NATIVE, done(claude())),
    (
        "whitespace-only stop entries dropped and reported",
        {"stop": [" ", "x", "\n"]},
        NATIVE,
        done(
            claude(stop_sequences=["x"]),
            adjustments=["whitespace-only stop sequences dropped: [' ', '\\n']"],
        ),
    ),
    (
        "whitespace-only stop string dropped and reported",
        {"stop": "  "},
        NATIVE,
        done(claude(), adjustments=["whitespace-only stop sequences dropped: ['  ']"]),
    ),
    ("temperature in range", {"temperature": 0.5}, NATIVE, done(claude(temperature=0.5))),
    ("temperature 0", {"temperature": 0}, NATIVE, done(claude(temperature=0.0))),
    ("temperature 1", {"temperature": 1}, NATIVE, done(claude(temperature=1.0))),
    (
        "temperature above 1 clamped and reported",
        {"temperature": 1.5},
        NATIVE,
        done(claude(temperature=1.0), adjustments=["temperature 1.5 clamped to 1"]),
    ),
    (
        "temperature 2 clamped and reported",
        {"temperature": 2},
        NATIVE,
        done(claude(temperature=1.0), adjustments=["temperature 2 clamped to 1"]),
    ),
    (
        "negative temperature clamped and reported",
        {"temperature": -0.5},
        NATIVE,
        done(claude(temperature=0.0), adjustments=["temperature -0.5 clamped to 0"]),
    ),
    ("top_p and top_k", {"top_p": 0.9, "top_k": 40}, NATIVE, done(claude(top_p=0.9, top_k=40))),
    ("user -> metadata.user_id", {"user": "user-123"}, NATIVE, done(claude(metadata={"user_id": "user-123"}))),
    ("empty user dropped", {"user": ""}, NATIVE, done(claude())),
    (
        "tools -> input_schema; description optional; parameters default; strict kept on a native model",
        {
            "tools": [
                {"type": "function", "function": {**WEATHER_FN, "strict": True}},
                {"type": "function", "function": {"name": "get_time", "description": ""}},
            ]
        },
        NATIVE,
        done(claude(tools=[{**WEATHER_TOOL, "strict": True}, TIME_TOOL])),
    ),
    (
        "strict dropped and reported on a model without structured outputs",
        {"tools": [{"type": "function", "function": {**WEATHER_FN, "strict": True}}]},
        PLAIN,
        done(
            claude(max_tokens=4096, tools=[WEATHER_TOOL]),
            adjustments=["strict dropped from tools ['get_weather']: the model has no strict tool use"],
        ),
    ),
    (
        "empty parameters object means no parameters",
        {"tools": [{"type": "function", "function": {"name": "get_time", "parameters": {}}}]},
        NATIVE,
        done(claude(tools=[TIME_TOOL])),
    ),
    (
        "legacy functions -> tools, after tools",
        {"tools": [WEATHER], "functions": [{"name": "get_time"}]},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL, TIME_TOOL])),
    ),
    (
        "tool_choice auto",
        {"tools": [WEATHER], "tool_choice": "auto"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "auto"})),
    ),
    (
        "tool_choice none",
        {"tools": [WEATHER], "tool_choice": "none"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "none"})),
    ),
    (
        "tool_choice required -> any",
        {"tools": [WEATHER], "tool_choice": "required"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "any"})),
    ),
    (
        "tool_choice named -> tool",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"})),
    ),
    (
        "legacy function_call auto",
        {"functions": [WEATHER_FN], "function_call": "auto"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True}),
             legacy_functions=True),
    ),
    (
        "legacy function_call none",
        {"functions": [WEATHER_FN], "function_call": "none"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "none"}), legacy_functions=True),
    ),
    (
        "legacy function_call named",
        {"functions": [WEATHER_FN], "function_call": {"name": "get_weather"}},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather",
                                                        "disable_parallel_tool_use": True}), legacy_functions=True),
    ),
    (
        "functions beside tools: the answer in the tools' form; function_call beside tool_choice ignored",
        {"tools": [WEATHER], "functions": [{**WEATHER_FN, "name": "lookup"}], "tool_choice": "required",
         "function_call": "auto"},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL, {**WEATHER_TOOL, "name": "lookup"}], tool_choice={"type": "any"}),
             ignored=["function_call"]),
    ),
    (
        "an earlier answer's refusal is what the model said; reasoning_content beside its thinking_blocks is theirs",
        {"messages": [HI, {"role": "assistant", "content": None, "refusal": "I can't help with that."},
                      {"role": "user", "content": "Why?"},
                      {"role": "assistant", "content": "Because.", "reasoning_content": "Weather first.",
                       "thinking_blocks": [SIGNED]},
                      {"role": "user", "content": "Ok"}]},
        NATIVE,
        done(claude(messages=[
            HI_TURN, {"role": "assistant", "content": [{"type": "text", "text": "I can't help with that."}]},
            {"role": "user", "content": [{"type": "text", "text": "Why?"}]},
            {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "Because."}]},
            {"role": "user", "content": [{"type": "text", "text": "Ok"}]}])),
    ),
    (
        "safety_identifier, user's successor, is the end-user id",
        {"user": "u-1", "safety_identifier": "s-1"},
        NATIVE,
        done(claude(metadata={"user_id": "s-1"})),
    ),
    ("service_tier default asks Claude for standard capacity", {"service_tier": "default"}, NATIVE,
     done(claude(service_tier="standard_only"))),
    ("service_tier auto, priority, fast and scale are Claude's default: nothing sent",
     {"service_tier": "priority"}, NATIVE, done(claude())),
    ("service_tier flex has no Claude counterpart: reported", {"service_tier": "flex"}, NATIVE,
     done(claude(), adjustments=["service_tier flex has no Claude counterpart: run on Claude's default tier (auto)"])),
    (
        "a strict response_format on a model without native structured output: reported",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": True, "schema": SCHEMA}}},
        PLAIN,
        done(claude(max_tokens=4096, tools=[{"name": "a", "description": "Respond with JSON matching this schema.",
                                             "input_schema": SCHEMA}],
                    tool_choice={"type": "tool", "name": "a", "disable_parallel_tool_use": True}),
             json_tool="a", adjustments=["response_format.json_schema.strict dropped: without native structured "
                                         "output the JSON tool's input is not held to the schema"]),
    ),
    (
        "tool_choice without tools dropped and reported",
        {"tool_choice": "required"},
        NATIVE,
        done(claude(), adjustments=["tool_choice dropped: the request has no tools"]),
    ),
    (
        "parallel_tool_calls false -> auto with disable_parallel_tool_use",
        {"tools": [WEATHER], "parallel_tool_calls": False},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True})),
    ),
    (
        "parallel_tool_calls false with required",
        {"tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "any", "disable_parallel_tool_use": True})),
    ),
    (
        "parallel_tool_calls false with a named tool",
        {
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
        },
        NATIVE,
        done(
            claude(
                tools=[WEATHER_TOOL],
                tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
            )
        ),
    ),
    (
        "parallel_tool_calls false with none: Claude's none takes no flag",
        {"tools": [WEATHER], "tool_choice": "none", "parallel_tool_calls": False},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "none"})),
    ),
    (
        "parallel_tool_calls true is Claude's default",
        {"tools": [WEATHER], "parallel_tool_calls": True},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL])),
    ),
    ("parallel_tool_calls false without tools", {"parallel_tool_calls": False}, NATIVE, done(claude())),
    (
        "web_search_options -> web search server tool",
        {"web_search_options": {"user_location": {"type": "approximate", "approximate": {"city": "Paris"}}}},
        NATIVE,
        done(
            claude(
                tools=[
                    {
                        "type": "web_search_20250305",
                        "name": "web_search",
                        "user_location": {"type": "approximate", "city": "Paris"},
                    }
                ]
            )
        ),
    ),
    (
        "reasoning_effort low, no max: budget added to the default max_tokens",
        {"reasoning_effort": "low"},
        NATIVE,
        done(claude(max_tokens=8192 + 2048, thinking={"type": "enabled", "budget_tokens": 2048})),
    ),
    (
        "reasoning_effort xhigh on another profile",
        {"reasoning_effort": "xhigh"},
        PLAIN,
        done(claude(max_tokens=4096 + 32768, thinking={"type": "enabled", "budget_tokens": 32768})),
    ),
    (
        "reasoning_effort medium within max_completion_tokens: budget fits under it",
        {"reasoning_effort": "medium", "max_completion_tokens": 4000},
        NATIVE,
        done(claude(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 3999})),
    ),
    (
        "reasoning_effort high with room for it",
        {"reasoning_effort": "high", "max_tokens": 20000},
        NATIVE,
        done(claude(max_tokens=20000, thinking={"type": "enabled", "budget_tokens": 16384})),
    ),
    (
        "reasoning_effort with no room for thinking is reported, not sent",
        {"reasoning_effort": "high", "max_tokens": 1000},
        NATIVE,
        done(
            claude(max_tokens=1000),
            adjustments=["reasoning_effort ignored: max_tokens 1000 leaves no room for thinking"],
        ),
    ),
    ("reasoning_effort none: thinking stays off", {"reasoning_effort": "none"}, NATIVE, done(claude())),
    (
        "thinking forbids temperature != 1, top_k, top_p < 0.95 and a forced tool",
        {
            "reasoning_effort": "minimal",
            "temperature": 0.2,
            "top_k": 5,
            "top_p": 0.5,
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        },
        NATIVE,
        done(
            claude(
                max_tokens=8192 + 1024,
                thinking={"type": "enabled", "budget_tokens": 1024},
                top_p=0.95,
                tools=[WEATHER_TOOL],
                tool_choice={"type": "auto"},
            ),
            adjustments=[
                "temperature dropped: not allowed with thinking",
                "top_k dropped: not allowed with thinking",
                "top_p 0.5 raised to 0.95: thinking allows 0.95..1",
                "tool_choice tool relaxed to auto: thinking forbids forcing a tool",
            ],
        ),
    ),
    (
        "thinking keeps top_p >= 0.95; temperature 1 beside it, a no-op, goes",
        {"reasoning_effort": "minimal", "temperature": 1, "top_p": 0.97},
        NATIVE,
        done(claude(max_tokens=9216, thinking={"type": "enabled", "budget_tokens": 1024}, top_p=0.97),
             adjustments=["temperature 1 dropped: Claude's default, and refused beside top_p by newer models"]),
    ),
    (
        "temperature and top_p together: top_p goes (newer models refuse both)",
        {"temperature": 0.5, "top_p": 0.9},
        NATIVE,
        done(claude(temperature=0.5),
             adjustments=["top_p 0.9 dropped: newer Claude models refuse it beside temperature"]),
    ),
    (
        "top_p alone is kept",
        {"top_p": 0.9},
        NATIVE,
        done(claude(top_p=0.9)),
    ),
    (
        "a user id over Claude's 256 characters goes as its SHA-256",
        {"user": "u" * 300},
        NATIVE,
        done(claude(metadata={"user_id": hashlib.sha256(b"u" * 300).hexdigest()}),
             adjustments=["user longer than 256 characters sent as its SHA-256 hex digest"]),
    ),
    (
        "a final assistant prefill loses its trailing whitespace",
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure, "}]},
        NATIVE,
        done(claude(messages=[HI_TURN, {"role": "assistant", "content": [{"type": "text", "text": "Sure,"}]}]),
             adjustments=["trailing whitespace trimmed from the final assistant message (a prefill)"]),
    ),
    (
        "an earlier assistant turn keeps its trailing whitespace",
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Sure, "},
                      {"role": "user", "content": "Go"}]},
        NATIVE,
        done(claude(messages=[HI_TURN, {"role": "assistant", "content": [{"type": "text", "text": "Sure, "}]},
                              {"role": "user", "content": [{"type": "text", "text": "Go"}]}])),
    ),
    (
        "thinking off when the last tool calls came back without their thinking_blocks",
        {"reasoning_effort": "low", "messages": TOOL_LOOP},
        NATIVE,
        done(claude(messages=TOOL_LOOP_TURNS), adjustments=[
            "thinking off for this request: the last assistant tool calls came back without their "
            "thinking_blocks, which Claude requires with thinking on"]),
    ),
    (
        "a thinking object is dropped the same way",
        {"thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": TOOL_LOOP},
        NATIVE,
        done(claude(messages=TOOL_LOOP_TURNS), adjustments=[
            "thinking off for this request: the last assistant tool calls came back without their "
            "thinking_blocks, which Claude requires with thinking on"]),
    ),
    (
        "thinking stays on when the tool calls came back with their signed thinking",
        {"reasoning_effort": "low", "messages": [TOOL_LOOP[0], {**TOOL_LOOP[1], "thinking_blocks": [SIGNED]},
                                                 TOOL_LOOP[2]]},
        NATIVE,
        done(claude(max_tokens=10240, thinking={"type": "enabled", "budget_tokens": 2048},
                    messages=[TOOL_LOOP_TURNS[0],
                              {"role": "assistant", "content": [SIGNED, TOOL_LOOP_TURNS[1]["content"][0]]},
                              TOOL_LOOP_TURNS[2]])),
    ),
    (
        "thinking object passed through",
        {"thinking": {"type": "enabled", "budget_tokens": 10000}, "max_tokens": 16000},
        NATIVE,
        done(claude(max_tokens=16000, thinking={"type": "enabled", "budget_tokens": 10000})),
    ),
    (
        "thinking object without max_tokens: the default grows by the budget",
        {"thinking": {"type": "enabled", "budget_tokens": 10000}},
        NATIVE,
        done(claude(max_tokens=8192 + 10000, thinking={"type": "enabled", "budget_tokens": 10000})),
    ),
    (
        "thinking adaptive passed through, constraints applied",
        {"thinking": {"type": "adaptive"}, "tools": [WEATHER], "tool_choice": "required"},
        NATIVE,
        done(
            claude(thinking={"type": "adaptive"}, tools=[WEATHER_TOOL], tool_choice={"type": "auto"}),
            adjustments=["tool_choice any relaxed to auto: thinking forbids forcing a tool"],
        ),
    ),
    (
        "thinking disabled passed through, no constraints",
        {"thinking": {"type": "disabled"}, "temperature": 0.3},
        NATIVE,
        done(claude(thinking={"type": "disabled"}, temperature=0.3)),
    ),
    (
        "thinking object wins over reasoning_effort",
        {"thinking": {"type": "enabled", "budget_tokens": 2000}, "reasoning_effort": "high", "max_tokens": 5000},
        NATIVE,
        done(claude(max_tokens=5000, thinking={"type": "enabled", "budget_tokens": 2000})),
    ),
    (
        "response_format json_schema -> native output_config.format",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": SCHEMA, "strict": True}}},
        NATIVE,
        done(claude(output_config={"format": {"type": "json_schema", "schema": SCHEMA}})),
    ),
    (
        "response_format json_schema without native support -> forced tool named after the schema",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "city", "description": "A city.", "schema": SCHEMA},
            }
        },
        PLAIN,
        done(
            claude(
                max_tokens=4096,
                tools=[{"name": "city", "description": "A city.", "input_schema": SCHEMA}],
                tool_choice={"type": "tool", "name": "city", "disable_parallel_tool_use": True},
            ),
            json_tool="city",
        ),
    ),
    (
        "response_format json_schema without a name -> json_response tool, after the client's tools",
        {
            "tools": [WEATHER],
            "tool_choice": "auto",
            "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
        },
        PLAIN,
        done(
            claude(
                max_tokens=4096,
                tools=[
                    WEATHER_TOOL,
                    {
                        "name": "json_response",
                        "description": "Respond with JSON matching this schema.",
                        "input_schema": SCHEMA,
                    },
                ],
                tool_choice={"type": "any"},
            ),
            json_tool="json_response",
            adjustments=[BESIDE_TOOLS],
        ),
    ),
    (
        "response_format beside tools with parallel_tool_calls false: any, one call at a time",
        {"tools": [WEATHER], "parallel_tool_calls": False, "response_format": {"type": "json_object"}},
        PLAIN,
        done(
            claude(
                max_tokens=4096,
                tools=[WEATHER_TOOL, JSON_OBJECT_TOOL],
                tool_choice={"type": "any", "disable_parallel_tool_use": True},
            ),
            json_tool="json_response",
            adjustments=[BESIDE_TOOLS],
        ),
    ),
    (
        "response_format beside tools ruled out (tool_choice none): the JSON tool forced",
        {"tools": [WEATHER], "tool_choice": "none", "response_format": {"type": "json_object"}},
        PLAIN,
        done(
            claude(
                max_tokens=4096,
                tools=[WEATHER_TOOL, JSON_OBJECT_TOOL],
                tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True},
            ),
            json_tool="json_response",
            adjustments=["tool_choice replaced: response_format forces the JSON tool"],
        ),
    ),
    (
        "response_format beside a tool the request names: that choice kept, the JSON tool offered",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
         "response_format": {"type": "json_object"}},
        PLAIN,
        done(
            claude(
                max_tokens=4096,
                tools=[WEATHER_TOOL, JSON_OBJECT_TOOL],
                tool_choice={"type": "tool", "name": "get_weather"},
            ),
            json_tool="json_response",
            adjustments=["response_format: its JSON tool offered beside the request's tools; the tool_choice "
                         "naming one of them kept (the model has no native structured output)"],
        ),
    ),
    (
        "response_format json_object -> forced tool, also on a native model",
        {"response_format": {"type": "json_object"}},
        NATIVE,
        done(
            claude(
                tools=[
                    {
                        "name": "json_response",
                        "description": "Respond with JSON matching this schema.",
                        "input_schema": {"type": "object"},
                    }
                ],
                tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True},
            ),
            json_tool="json_response",
        ),
    ),
    ("response_format text", {"response_format": {"type": "text"}}, NATIVE, done(claude())),
    ("n 1", {"n": 1}, NATIVE, done(claude())),
    ("n 3: the body is sent 3 times, unchanged", {"n": 3}, NATIVE, done(claude(), n=3)),
    ("stream", {"stream": True}, NATIVE, done(claude(stream=True), stream=True)),
    (
        "stream with include_usage",
        {"stream": True, "stream_options": {"include_usage": True}},
        NATIVE,
        done(claude(stream=True), stream=True, include_usage=True),
    ),
    ("stream false", {"stream": False, "stream_options": {"include_usage": True}}, NATIVE, done(claude())),
    (
        "ignored fields listed, sorted",
        {
            "seed": 7,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.1,
            "logit_bias": {"50256": -100},
            "x_custom": True,
            "store": False,
        },
        NATIVE,
        done(
            claude(),
            ignored=["frequency_penalty", "logit_bias", "presence_penalty", "seed", "store", "x_custom"],
        ),
    ),
    (
        "harmless values of logprobs, top_logprobs, audio and modalities are no-ops",
        {"logprobs": False, "top_logprobs": 0, "audio": None, "modalities": ["text"]},
        NATIVE,
        done(claude()),
    ),
]

PLACE = {"type": "function", "function": {"name": "place", "parameters": SCHEMA}}
CASES += [
    (
        "the JSON tool never takes the name of one of the client's tools",
        {"tools": [PLACE],
         "response_format": {"type": "json_schema", "json_schema": {"name": "place", "schema": SCHEMA}}},
        PLAIN,
        done(claude(max_tokens=4096, tools=[
            {"name": "place", "input_schema": SCHEMA},
            {"name": "json_response", "description": "Respond with JSON matching this schema.", "input_schema": SCHEMA},
        ], tool_choice={"type": "any"}), json_tool="json_response", adjustments=[BESIDE_TOOLS]),
    ),
    (
        "a JSON schema without a root type is an object to the JSON tool",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": {"properties": {}}}}},
        PLAIN,
        done(claude(max_tokens=4096, tools=[
            {"name": "o", "description": "Respond with JSON matching this schema.",
             "input_schema": {"type": "object", "properties": {}}},
        ], tool_choice={"type": "tool", "name": "o", "disable_parallel_tool_use": True}), json_tool="o"),
    ),
    (
        "a non-object root goes to a model with native structured output as is",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "l", "schema": {"type": "array"}}}},
        NATIVE,
        done(claude(output_config={"format": {"type": "json_schema", "schema": {"type": "array"}}})),
    ),
    (
        "native structured output has no place for the schema's description: listed as ignored",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "c", "description": "A city.",
                                                                    "schema": SCHEMA}}},
        NATIVE,
        done(claude(output_config={"format": {"type": "json_schema", "schema": SCHEMA}}),
             ignored=["response_format.json_schema.description"]),
    ),
    (
        "tool parameters without a type get Claude's required type object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": {}}}}}]},
        NATIVE,
        done(claude(tools=[{"name": "f", "input_schema": {"type": "object", "properties": {"a": {}}}}])),
    ),
]

ADAPTIVE = ModelProfile(max_tokens=8192, structured_output=True, thinking_mode="adaptive", max_output_tokens=128000)
OPUS41 = ModelProfile(max_tokens=8192, structured_output=True, max_output_tokens=32000)
CASES += [
    (
        "reasoning_effort on an adaptive-thinking model: thinking adaptive, output_config.effort",
        {"reasoning_effort": "medium"},
        ADAPTIVE,
        done(claude(max_tokens=8192 + 8192, thinking={"type": "adaptive"}, output_config={"effort": "medium"})),
    ),
    (
        "xhigh is Claude's max effort; minimal its low",
        {"reasoning_effort": "xhigh", "max_completion_tokens": 50000},
        ADAPTIVE,
        done(claude(max_tokens=50000, thinking={"type": "adaptive"}, output_config={"effort": "max"})),
    ),
    (
        "effort beside native structured output: one output_config holds both",
        {"reasoning_effort": "minimal",
         "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}}},
        ADAPTIVE,
        done(claude(max_tokens=8192 + 1024, thinking={"type": "adaptive"},
                    output_config={"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"})),
    ),
    (
        "reasoning_effort none: no thinking on an adaptive model either",
        {"reasoning_effort": "none"},
        ADAPTIVE,
        done(claude()),
    ),
    (
        "a budget and our default max_tokens stay within the model's output limit",
        {"reasoning_effort": "xhigh"},
        OPUS41,
        done(claude(max_tokens=32000, thinking={"type": "enabled", "budget_tokens": 31999})),
    ),
    (
        "a max_tokens above the model's output limit is lowered to it, reported",
        {"max_tokens": 50000},
        OPUS41,
        done(claude(max_tokens=32000), adjustments=["max_tokens 50000 lowered to 32000, the model's output limit"]),
    ),
]

CASES += [
    (
        "thinking off when response_format needs the JSON tool forced (no native structured output)",
        {"reasoning_effort": "low", "response_format": {"type": "json_object"}},
        PLAIN,
        done(claude(max_tokens=4096, tools=[
            {"name": "json_response", "description": "Respond with JSON matching this schema.",
             "input_schema": {"type": "object"}}],
            tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True}),
            json_tool="json_response",
            adjustments=["thinking off for this request: response_format needs its JSON tool forced, which "
                         "thinking forbids (the model has no native structured output)"]),
    ),
]

PREFILL_WITH_THINKING = [HI, {"role": "assistant", "content": "So,", "thinking_blocks": [SIGNED]}]
CASES += [
    (
        "thinking off: a final assistant prefill loses its thinking blocks (Claude refuses them there)",
        {"messages": PREFILL_WITH_THINKING},
        NATIVE,
        done(claude(messages=[HI_TURN, {"role": "assistant", "content": [{"type": "text", "text": "So,"}]}]),
             adjustments=["thinking blocks dropped from the final assistant message: thinking is off"]),
    ),
    (
        "thinking on: the prefill keeps them",
        {"messages": PREFILL_WITH_THINKING, "thinking": {"type": "enabled", "budget_tokens": 1024},
         "max_tokens": 4000},
        NATIVE,
        done(claude(max_tokens=4000, thinking={"type": "enabled", "budget_tokens": 1024},
                    messages=[HI_TURN, {"role": "assistant", "content": [SIGNED, {"type": "text", "text": "So,"}]}])),
    ),
    (
        "thinking off: a final assistant turn of thinking alone goes",
        {"messages": [HI, {"role": "assistant", "content": None, "thinking_blocks": [SIGNED]}]},
        NATIVE,
        done(claude(), adjustments=["thinking blocks dropped from the final assistant message: thinking is off"]),
    ),
]

CASES += [
    (
        "thinking off in a tool loop on an adaptive model: the effort level still applies",
        {"reasoning_effort": "high", "messages": TOOL_LOOP},
        ADAPTIVE,
        done(claude(messages=TOOL_LOOP_TURNS, output_config={"effort": "high"}), adjustments=[
            "thinking off for this request: the last assistant tool calls came back without their "
            "thinking_blocks, which Claude requires with thinking on"]),
    ),
]

CASES += [
    (
        "a thinking budget at the model's output limit is lowered under it",
        {"thinking": {"type": "enabled", "budget_tokens": 32000}},
        OPUS41,
        done(claude(max_tokens=32000, thinking={"type": "enabled", "budget_tokens": 31999}),
             adjustments=["thinking.budget_tokens 32000 lowered to 31999, under the output limit"]),
    ),
]


@pytest.mark.parametrize(("req", "profile", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_convert_request(req: JSONObject, profile: ModelProfile, expected: ConvertedRequest) -> None:
    assert convert(req, profile) == expected


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 16384), ("xhigh", 32768)],
)
def test_reasoning_effort_budgets(effort: str, budget: int) -> None:
    assert convert({"reasoning_effort": effort}) == done(
        claude(max_tokens=8192 + budget, thinking={"type": "enabled", "budget_tokens": budget})
    )


def test_all_rows_at_once() -> None:
    """Every mapped field in one request, so no step undoes another's work."""
    req = {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Rules."},
            HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "cold"},
        ],
        "max_completion_tokens": 300,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "stop": ["END", "\n\n"],
        "tools": [WEATHER],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u1",
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 2,
        "seed": 1,
    }
    assert convert_request(req, model=MODEL, profile=NATIVE) == ConvertedRequest(
        body={
            "model": MODEL,
            "system": [{"type": "text", "text": "Rules."}],
            "messages": [
                HI_TURN,
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {"city": "Oslo"}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "cold"}]},
            ],
            "max_tokens": 300,
            "temperature": 0.7,
            "top_k": 20,
            "stop_sequences": ["END"],
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "metadata": {"user_id": "u1"},
            "stream": True,
        },
        stream=True,
        include_usage=True,
        n=2,
        ignored=["seed"],
        adjustments=["whitespace-only stop sequences dropped: ['\\n\\n']",
                     "top_p 0.8 dropped: newer Claude models refuse it beside temperature"],
    )


def test_the_request_is_not_modified() -> None:
    req = {
        "model": "gpt-4o",
        "messages": [HI],
        "tools": [{"type": "function", "function": {**WEATHER_FN, "strict": True}}],
        "stop": [" ", "x"],
        "response_format": {"type": "json_object"},
    }
    before = orjson.dumps(req)
    convert_request(req, model=MODEL, profile=PLAIN)
    assert orjson.dumps(req) == before


# --- the recorded OpenAI requests (tests/fixtures/openai/requests, see SOURCES.md) ---


def recorded(name: str) -> JSONObject:
    body: JSONObject = orjson.loads((REQUESTS / f"{name}.request.json").read_bytes())
    return body


GET_WEATHER_STRICT = {
    "name": "get_weather",
    "input_schema": {
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
    "strict": True,
}
PARIS = [{"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]}]
UK_TEXT = "What is the capital of the UK? Use the tool, then answer."
UK = [{"role": "user", "content": [{"type": "text", "text": UK_TEXT}]}]
GET_CAPITAL = {
    "name": "get_capital",
    "input_schema": {
        "additionalProperties": False,
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
        "type": "object",
    },
    "strict": True,
}

RECORDED: list[tuple[str, ModelProfile, ConvertedRequest]] = [
    (
        "openai_response_tool_choice_auto__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": PARIS,
                "tools": [{**GET_WEATHER_STRICT, "description": "Get the current weather for a city."}],
                "tool_choice": {"type": "auto"},
            }
        ),
    ),
    (
        "openai_response_tool_choice_none__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": PARIS,
                "tools": [{**GET_WEATHER_STRICT, "description": "Get the current weather for a city."}],
                "tool_choice": {"type": "none"},
            }
        ),
    ),
    (
        "openai_response_tool_choice_required__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": PARIS,
                "tools": [{**GET_WEATHER_STRICT, "description": "Get weather for a city"}],
                "tool_choice": {"type": "any"},
            }
        ),
    ),
    (
        "openai_response_tool_choice_list_single__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": PARIS,
                "tools": [
                    {**GET_WEATHER_STRICT, "description": "Get weather for a city"},
                    {
                        "name": "get_time",
                        "description": "Get time in a timezone",
                        "input_schema": {
                            "additionalProperties": False,
                            "properties": {"timezone": {"type": "string"}},
                            "required": ["timezone"],
                            "type": "object",
                        },
                        "strict": True,
                    },
                ],
                "tool_choice": {"type": "tool", "name": "get_weather"},
            }
        ),
    ),
    (
        "openai_response_tool_choice_auto__pydantic-ai",
        PLAIN,
        done(
            {
                "model": MODEL,
                "max_tokens": 4096,
                "messages": PARIS,
                "tools": [
                    {
                        "name": "get_weather",
                        "description": "Get the current weather for a city.",
                        "input_schema": GET_WEATHER_STRICT["input_schema"],
                    }
                ],
                "tool_choice": {"type": "auto"},
            },
            adjustments=["strict dropped from tools ['get_weather']: the model has no strict tool use"],
        ),
    ),
    (
        "openai_response_stop_param_o3mini__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "text",
                                "text": (
                                    'What is the capital of France? Give me an answer that contains the word "Paris", '
                                    "but is not the first word."
                                ),
                            }
                        ],
                    }
                ],
                "stop_sequences": ["Paris"],
            }
        ),
    ),
    (
        "openai_error_400_unsupported_value_system_role__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "system": [{"type": "text", "text": "You are a helpful assistant."}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            }
        ),
    ),
    (
        "openai_stream_gpt5_include_usage_with_moderation__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "stream": True,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}],
            },
            stream=True,
            include_usage=True,
            ignored=["moderation"],
        ),
    ),
    (
        "openai_stream_tool_call_include_usage__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "stream": True,
                "messages": UK,
                "tools": [GET_CAPITAL],
                "tool_choice": {"type": "auto"},
            },
            stream=True,
            include_usage=True,
        ),
    ),
    (
        "openai_stream_text_after_tool_result_include_usage__pydantic-ai",
        NATIVE,
        done(
            {
                "model": MODEL,
                "max_tokens": 8192,
                "stream": True,
                "messages": [
                    *UK,
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "call_ZR5UUuTt3pf61kjwAJIYdVMj",
                                "name": "get_capital",
                                "input": {"country": "UK"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": "call_ZR5UUuTt3pf61kjwAJIYdVMj",
                                "content": "London",
                            }
                        ],
                    },
                ],
                "tools": [GET_CAPITAL],
                "tool_choice": {"type": "auto"},
            },
            stream=True,
            include_usage=True,
        ),
    ),
    (
        "openai_stream_n2_tool_calls_interleaved__dd-trace-py",
        PLAIN,
        done(
            {
                "model": MODEL,
                "max_tokens": 4096,
                "stream": True,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "text",
                                "text": "What is the weather like in San Francisco, CA?",
                            }
                        ],
                    }
                ],
                "tools": [
                    {
                        "name": "get_current_weather",
                        "description": "Get the current weather in a given location",
                        "input_schema": {
                            "type": "object",
                            "properties": {
                                "location": {
                                    "type": "string",
                                    "description": "The city and state, e.g. San Francisco, CA",
                                },
                                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                            },
                            "required": ["location"],
                        },
                    }
                ],
                "tool_choice": {"type": "auto"},
            },
            stream=True,
            include_usage=True,
            n=2,
        ),
    ),
]


@pytest.mark.parametrize(("name", "profile", "expected"), RECORDED, ids=[f"{r[0]}-{r[1].max_tokens}" for r in RECORDED])
def test_recorded_requests(name: str, profile: ModelProfile, expected: ConvertedRequest) -> None:
    assert convert_request(recorded(name), model=MODEL, profile=profile) == expected


def test_recorded_custom_tool_is_400() -> None:
    with pytest.raises(InvalidRequest) as err:
        convert_request(recorded("openai_response_custom_tool_call_gpt5__dd-trace-py"), model=MODEL, profile=NATIVE)
    assert (err.value.status, err.value.param, err.value.message) == (
        400,
        "tools[0].type",
        "tools[0].type 'custom' is not supported (only 'function')",
    )


# --- errors ---

ERRORS: list[tuple[str, JSONObject, str, str | None, str]] = [
    # (id, OpenAI request fields, param, code, message)
    (
        "tool parameters that are not an object schema",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
        "tools[0].function.parameters",
        None,
        "tools[0].function.parameters must be a JSON Schema object",
    ),
    (
        "logprobs true",
        {"logprobs": True},
        "logprobs",
        "unsupported_parameter",
        "'logprobs' is not supported: Claude models do not return log probabilities",
    ),
    (
        "top_logprobs > 0",
        {"top_logprobs": 2},
        "top_logprobs",
        "unsupported_parameter",
        "'top_logprobs' is not supported: Claude models do not return log probabilities",
    ),
    (
        "audio",
        {"audio": {"voice": "alloy", "format": "wav"}},
        "audio",
        "unsupported_parameter",
        "'audio' is not supported: Claude models do not produce audio",
    ),
    (
        "modalities audio",
        {"modalities": ["text", "audio"]},
        "modalities",
        "unsupported_parameter",
        "'modalities' is not supported: Claude models do not produce audio",
    ),
    ("max_tokens 0", {"max_tokens": 0}, "max_tokens", None, "'max_tokens' must be at least 1"),
    (
        "max_completion_tokens negative",
        {"max_completion_tokens": -5},
        "max_completion_tokens",
        None,
        "'max_completion_tokens' must be at least 1",
    ),
    ("max_tokens float", {"max_tokens": 1.5}, "max_tokens", None, "'max_tokens' must be an integer"),
    ("max_tokens string", {"max_tokens": "100"}, "max_tokens", None, "'max_tokens' must be an integer"),
    ("max_tokens bool", {"max_tokens": True}, "max_tokens", None, "'max_tokens' must be an integer"),
    ("temperature string", {"temperature": "hot"}, "temperature", None, "'temperature' must be a number"),
    ("top_p string", {"top_p": "0.9"}, "top_p", None, "'top_p' must be a number"),
    ("top_k float", {"top_k": 1.5}, "top_k", None, "'top_k' must be an integer"),
    ("stop number", {"stop": 5}, "stop", None, "'stop' must be a string or an array of strings"),
    ("service_tier not a string", {"service_tier": 1}, "service_tier", None, "'service_tier' must be a string"),
    ("stop list of numbers", {"stop": ["a", 1]}, "stop", None, "'stop' must be a string or an array of strings"),
    ("tools not a list", {"tools": {"type": "function"}}, "tools", None, "'tools' must be an array"),
    ("functions not a list", {"functions": "f"}, "functions", None, "'functions' must be an array"),
    (
        "tool without name",
        {"tools": [{"type": "function", "function": {"parameters": SCHEMA}}]},
        "tools[0].function.name",
        None,
        "tools[0].function.name must be a non-empty string",
    ),
    (
        "tool parameters not an object",
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]},
        "tools[0].function.parameters",
        None,
        "tools[0].function.parameters must be a JSON Schema object",
    ),
    (
        "legacy function without name",
        {"functions": [{"description": "x"}]},
        "functions[0].name",
        None,
        "functions[0].name must be a non-empty string",
    ),
    (
        "tool_choice unknown string",
        {"tools": [WEATHER], "tool_choice": "always"},
        "tool_choice",
        None,
        "'tool_choice' must be auto, none, required, or a named function",
    ),
    (
        "tool_choice without function name",
        {"tools": [WEATHER], "tool_choice": {"type": "function"}},
        "tool_choice",
        None,
        "'tool_choice' must be auto, none, required, or a named function",
    ),
    (
        "function_call unknown",
        {"functions": [WEATHER_FN], "function_call": "always"},
        "function_call",
        None,
        "'function_call' must be auto, none, required, or a named function",
    ),
    (
        "json_schema without schema",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        "response_format.json_schema.schema",
        None,
        "response_format.json_schema.schema must be an object",
    ),
    (
        "response_format unknown type",
        {"response_format": {"type": "xml"}},
        "response_format.type",
        None,
        "response_format type 'xml' is not supported",
    ),
    (
        "reasoning_effort unknown",
        {"reasoning_effort": "extreme"},
        "reasoning_effort",
        None,
        "reasoning_effort 'extreme' is not one of ['high', 'low', 'medium', 'minimal', 'none', 'xhigh']",
    ),
    ("thinking not an object", {"thinking": True}, "thinking", None, "'thinking' must be an object"),
    ("n 0", {"n": 0}, "n", None, "'n' must be between 1 and 8"),
    ("n 9", {"n": 9}, "n", None, "'n' must be between 1 and 8"),
    ("n string", {"n": "2"}, "n", None, "'n' must be an integer"),
    (
        "tool_choice naming a function the request does not send",
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "zz"}}},
        "tool_choice", None, "tool_choice names 'zz', which is not one of the request's tools",
    ),
    (
        "legacy function_call naming a function the request does not send",
        {"functions": [WEATHER_FN], "function_call": {"name": "zz"}},
        "function_call", None, "function_call names 'zz', which is not one of the request's tools",
    ),
    (
        "an earlier audio answer",
        {"messages": [HI, {"role": "assistant", "content": None, "audio": {"id": "audio_123"}}, HI]},
        "messages[1].audio", None, "messages[1].audio: audio answers are not supported",
    ),
    (
        "an earlier refusal that is not a string",
        {"messages": [HI, {"role": "assistant", "refusal": ["no"]}, HI]},
        "messages[1].refusal", None, "messages[1].refusal must be a string",
    ),
    (
        "an earlier custom tool call",
        {"messages": [HI, {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "custom", "custom": {"name": "grep", "input": "x"}}]}, HI]},
        "messages[1].tool_calls[0].type", None,
        "messages[1].tool_calls[0].type 'custom' is not supported: only function tool calls",
    ),
]


@pytest.mark.parametrize(("req", "param", "code", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_invalid_requests_are_400(req: JSONObject, param: str, code: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        convert(req)
    assert (err.value.status, err.value.param, err.value.code, err.value.message) == (400, param, code, message)


def test_invalid_argument_json_is_400_naming_the_message() -> None:
    req = {
        "messages": [
            HI,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"city": "Par'}}
                ],
            },
        ]
    }
    with pytest.raises(InvalidRequest) as err:
        convert(req)
    param = "messages[1].tool_calls[0].function.arguments"
    assert (err.value.status, err.value.param) == (400, param)
    assert err.value.message.startswith(f"{param} is not valid JSON: ")  # then orjson's own words


def test_strict_mode_rejects_every_ignored_field() -> None:
    with pytest.raises(InvalidRequest) as err:
        convert({"seed": 1, "frequency_penalty": 0.1}, strict=True)
    assert (err.value.status, err.value.param, err.value.code, err.value.message) == (
        400,
        "frequency_penalty",
        "unsupported_parameter",
        "'frequency_penalty' has no Claude equivalent and this proxy runs in strict mode",
    )


def test_strict_mode_passes_mapped_fields() -> None:
    assert convert({"temperature": 0.5, "logprobs": False}, strict=True) == done(claude(temperature=0.5))


def test_a_field_sent_as_null_asks_for_nothing() -> None:
    """Neither listed nor, in strict mode, refused: null is OpenAI's "not set"."""
    assert convert({"seed": None, "logit_bias": None, "store": None}, strict=True) == done(claude())
    assert convert({"seed": None, "store": False}).ignored == ["store"]


@pytest.mark.parametrize(
    ("fields", "expected", "adjustments"),
    [
        (
            {"temperature": 0.5, "top_p": 1},
            {"temperature": 0.5},
            ["top_p 1 dropped: a no-op, and refused beside temperature by newer Claude models"],
        ),
        (
            {"temperature": 0.5, "top_p": 0.9},
            {"temperature": 0.5},
            ["top_p 0.9 dropped: newer Claude models refuse it beside temperature"],
        ),
        (
            {"temperature": 1, "top_p": 0.9},
            {"top_p": 0.9},
            ["temperature 1 dropped: Claude's default, and refused beside top_p by newer models"],
        ),
        ({"top_p": 1}, {"top_p": 1}, []),
    ],
    ids=["no-op top_p beside temperature dropped", "real top_p beside temperature dropped",
         "no-op temperature beside top_p dropped", "top_p alone kept"],
)
def test_top_p_beside_temperature(fields: JSONObject, expected: JSONObject, adjustments: list[str]) -> None:
    assert convert(fields) == done(claude(**expected), adjustments=adjustments)


@pytest.mark.parametrize(
    "field", [{"reasoning_effort": "high"}, {"thinking": {"type": "enabled", "budget_tokens": 2048}}]
)
def test_thinking_is_dropped_and_reported_for_a_model_without_it(field: JSONObject) -> None:
    profile = ModelProfile(max_tokens=4096, structured_output=False, thinking=False)
    name = next(iter(field))
    assert convert(field, profile) == done(
        claude(max_tokens=4096), adjustments=[f"{name} dropped: the model has no extended thinking"]
    )


def test_a_non_object_json_schema_root_needs_native_structured_output() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "l", "schema": {"type": "array", "items": {}}}}
    with pytest.raises(InvalidRequest) as err:
        convert({"response_format": fmt}, PLAIN)
    assert (err.value.status, err.value.param) == (400, "response_format.json_schema.schema")
    assert "needs a model with native structured output" in err.value.message
