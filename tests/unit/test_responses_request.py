"""An OpenAI Responses request -> a Claude Messages request (``convert_responses_request``).

Every case compares the whole ``ConvertedRequest`` (Claude body, stream flag, forced JSON tool, ignored
fields, adjustments, namespaced tools); every error case the exact status, param and code. Recorded
requests (tests/fixtures/responses/requests, see tests/fixtures/SOURCES.md) are converted whole, two of
them Codex CLI's. The property tests at the end feed generated and mutated requests.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from translator.convert import ConvertedRequest, ModelProfile
from translator.convert.reasoning import encode_block
from translator.convert.responses_input import DROPPED_ITEMS
from translator.convert.responses_policy import CONVERTED_TOOLS, IGNORED, MAPPED, REJECTED_VALUES
from translator.convert.responses_request import convert_responses_request
from translator.errors import InvalidRequest

from .test_fuzz import ARGUMENTS, DATA_URLS, FUZZ, JSON, SCHEMA, TEXT, mutated, opt

JSONObject = dict[str, Any]
REQUESTS = Path(__file__).parent.parent / "fixtures" / "responses" / "requests"

MODEL = "claude-sonnet-4-5"
NATIVE = ModelProfile(max_tokens=8192, structured_output=True)  # e.g. claude-sonnet-4-5
PLAIN = ModelProfile(max_tokens=4096, structured_output=False)  # e.g. claude-3-7-sonnet
ADAPTIVE = ModelProfile(max_tokens=8192, structured_output=True, thinking_mode="adaptive", max_output_tokens=128000)
NO_THINKING = ModelProfile(max_tokens=4096, thinking=False)  # e.g. claude-3-5-haiku
SONNET_45 = ModelProfile(max_tokens=8192, structured_output=True, max_output_tokens=64000)  # the built-in profile

HI_TURN = {"role": "user", "content": [{"type": "text", "text": "Hi"}]}
SCHEMA_OBJ = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city.", "parameters": SCHEMA_OBJ}
WEATHER_TOOL = {"name": "get_weather", "description": "Weather for a city.", "input_schema": SCHEMA_OBJ}
EMPTY_SCHEMA = {"type": "object", "properties": {}}
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search"}
SIGNED = {"type": "thinking", "thinking": "Weather first.", "signature": "EqQBCkYIBxgCKkD"}
REDACTED = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
PDF = "data:application/pdf;base64,JVBERi0xLjQ="
PNG = "data:image/png;base64,iVBORw0KGgo="
BESIDE_TOOLS = ("text.format: its JSON tool offered beside the request's tools, tool_choice any (the model has no "
                "native structured output): the JSON tool's call is the answer")


def convert(
    req: JSONObject, profile: ModelProfile = NATIVE, *, strict: bool = False, history: list[JSONObject] | None = None
) -> ConvertedRequest:
    return convert_responses_request(
        {"model": "gpt-5", "input": "Hi", **req}, model=MODEL, profile=profile, strict=strict, history=history or ()
    )


def claude(**fields: Any) -> JSONObject:
    """The Claude body for the one-message request, plus (or overriding) ``fields``."""
    return {"model": MODEL, "messages": [HI_TURN], "max_tokens": 8192, **fields}


def done(body: JSONObject, **fields: Any) -> ConvertedRequest:
    return ConvertedRequest(body=body, **fields)


def user(*blocks: JSONObject) -> JSONObject:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: JSONObject) -> JSONObject:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str) -> JSONObject:
    return {"type": "text", "text": value}


def call(call_id: str, name: str, arguments: str = "{}", **extra: Any) -> JSONObject:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments, **extra}


def output(call_id: str, value: Any) -> JSONObject:
    return {"type": "function_call_output", "call_id": call_id, "output": value}


def reasoning(block: JSONObject) -> JSONObject:
    return {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "…"}],
            "encrypted_content": encode_block(block)}


def tool_use(call_id: str, name: str, arguments: JSONObject | None = None) -> JSONObject:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments or {}}


def result(call_id: str, content: Any = None) -> JSONObject:
    block = {"type": "tool_result", "tool_use_id": call_id}
    return block if content is None else {**block, "content": content}


TOOL_LOOP: list[JSONObject] = [
    {"role": "user", "content": "Weather in Paris?"},
    reasoning(SIGNED),
    {"type": "message", "role": "assistant",
     "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
    call("call_1", "get_weather", '{"city": "Paris"}'),
    call("call_2", "get_weather", '{"city": "Lyon"}'),
    output("call_1", "sunny"),
    output("call_2", [{"type": "input_text", "text": "rain"}, {"type": "input_image", "image_url": PNG}]),
    {"role": "user", "content": "Thanks. And Nice?"},
]
TOOL_LOOP_TURNS: list[JSONObject] = [
    user(text("Weather in Paris?")),
    assistant(SIGNED, text("Checking."), tool_use("call_1", "get_weather", {"city": "Paris"}),
              tool_use("call_2", "get_weather", {"city": "Lyon"})),
    user(result("call_1", "sunny"),
         result("call_2", [text("rain"), {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                                       "data": "iVBORw0KGgo="}}]),
         text("Thanks. And Nice?")),
]

CODEX_NAMESPACE = {
    "type": "namespace", "name": "multi_agent_v1", "description": "Tools for spawning and managing sub-agents.",
    "tools": [{"type": "function", "name": "spawn_agent", "description": "Spawn.", "strict": False,
               "parameters": EMPTY_SCHEMA},
              {"type": "function", "name": "get_weather", "parameters": SCHEMA_OBJ}],
}

CASES: list[tuple[str, JSONObject, ModelProfile, ConvertedRequest]] = [
    # (id, Responses request fields, model profile, expected conversion)
    ("input string: one user turn, the profile's max_tokens", {}, NATIVE, done(claude())),
    ("another profile's max_tokens", {}, PLAIN, done(claude(max_tokens=4096))),
    ("an item with a role and no type is a message", {"input": [{"role": "user", "content": "Hi"}]}, NATIVE,
     done(claude())),
    (
        "message items with parts; consecutive user messages merge into one turn",
        {"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "there"},
                                                             {"type": "input_text", "text": "  "}]},
        ]},
        NATIVE,
        done(claude(messages=[user(text("Hi"), text("there"))])),
    ),
    (
        "input_image: data URL and http URL; detail auto is no loss",
        {"input": [{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/jpg;base64,/9j/", "detail": "auto"},
            {"type": "input_image", "image_url": "https://example.com/a.png"},
        ]}]},
        NATIVE,
        done(claude(messages=[user(
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        )])),
    ),
    (
        "input_file: PDF data URL with filename, bare base64, text, file_url",
        {"input": [{"role": "user", "content": [
            {"type": "input_file", "file_data": PDF, "filename": "a.pdf", "file_id": None},
            {"type": "input_file", "file_data": "JVBERi0xLjQ="},
            {"type": "input_file", "file_data": "aGVsbG8=", "filename": "notes.txt"},
            {"type": "input_file", "file_url": "https://example.com/b.pdf", "filename": "b.pdf"},
            {"type": "input_file", "file_data": "YSxiCjEsMgo=", "filename": "t.csv"},  # the data says what it is
        ]}]},
        NATIVE,
        done(claude(messages=[user(
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": "JVBERi0xLjQ="}, "title": "a.pdf"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": "JVBERi0xLjQ="}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "hello"},
             "title": "notes.txt"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/b.pdf"}, "title": "b.pdf"},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a,b\n1,2\n"},
             "title": "t.csv"},
        )])),
    ),
    (
        "cache_control on a part is kept",
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi",
                                                  "cache_control": {"type": "ephemeral"}}]}]},
        NATIVE,
        done(claude(messages=[user({"type": "text", "text": "Hi", "cache_control": {"type": "ephemeral"}})])),
    ),
    (
        "instructions first, then system and developer messages in order",
        {"instructions": "Be brief.", "input": [
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Late rule."}]},
        ]},
        NATIVE,
        done(claude(system=[text("Be brief."), text("Use tools."), text("Late rule.")])),
    ),
    (
        "assistant output_text and refusal parts are its text; a final assistant message is a prefill, trimmed",
        {"input": [
            {"role": "user", "content": "Hi"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
                {"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []},
                {"type": "refusal", "refusal": "Not that."},
            ]},
            {"role": "user", "content": "Go on"},
            {"role": "assistant", "content": "Well, "},
        ]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(text("Hello."), text("Not that.")), user(text("Go on")),
                              assistant(text("Well,"))]),
             adjustments=["trailing whitespace trimmed from the final assistant message (a prefill)"]),
    ),
    (
        "a tool loop: reasoning, message and calls one assistant turn; outputs lead the next user turn",
        {"input": TOOL_LOOP},
        NATIVE,
        done(claude(messages=TOOL_LOOP_TURNS)),
    ),
    (
        "arguments \"\" are {}; a call id outside Claude's alphabet is rewritten in call and output alike",
        {"input": [{"role": "user", "content": "Hi"}, call("functions.get:0", "get_time", ""),
                   output("functions.get:0", "noon")]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(tool_use("functions_get_0", "get_time")),
                              user(result("functions_get_0", "noon"))])),
    ),
    (
        "redacted thinking is restored too",
        {"input": [{"role": "user", "content": "Hi"}, reasoning(REDACTED), call("call_1", "get_time"),
                   output("call_1", "noon")]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(REDACTED, tool_use("call_1", "get_time")),
                              user(result("call_1", "noon"))])),
    ),
    (
        "a reasoning item without our encrypted_content is dropped, not sent as text",
        {"input": [
            {"role": "user", "content": "Hi"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Thinking..."}],
             "encrypted_content": "gAAAAABoxC3jL8rEbUKD"},
            {"type": "reasoning", "id": "rs_2", "summary": []},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"},
        ]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(text("Hello.")), user(text("Again"))]),
             adjustments=["reasoning items dropped from input (2): their encrypted_content holds no Claude "
                          "thinking block"]),
    ),
    (
        "hosted tool items are dropped and reported",
        {"input": [
            {"role": "user", "content": "Hi"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
            {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"},
            {"role": "assistant", "content": "Found it."},
            {"role": "user", "content": "Thanks"},
        ]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(text("Found it.")), user(text("Thanks"))]), adjustments=[
            "web_search_call items dropped from input (1): a tool Claude does not run here",
            "custom_tool_call items dropped from input (1): a tool Claude does not run here",
            "custom_tool_call_output items dropped from input (1): a tool Claude does not run here",
        ]),
    ),
    # tools
    (
        "function tools: strict kept; no parameters is an empty object schema",
        {"tools": [{**WEATHER, "strict": True}, {"type": "function", "name": "get_time", "parameters": None,
                                                  "description": None, "strict": False}]},
        NATIVE,
        done(claude(tools=[{**WEATHER_TOOL, "strict": True}, {"name": "get_time", "input_schema": EMPTY_SCHEMA}])),
    ),
    (
        "strict dropped for a model without strict tool use",
        {"tools": [{**WEATHER, "strict": True}]},
        PLAIN,
        done(claude(max_tokens=4096, tools=[WEATHER_TOOL]),
             adjustments=["strict dropped from tools ['get_weather']: the model has no strict tool use"]),
    ),
    (
        "web_search: Claude's web search tool, with the user's location and allowed domains",
        {"tools": [{"type": "web_search", "external_web_access": True,
                    "filters": {"allowed_domains": ["example.com"]},
                    "user_location": {"type": "approximate", "city": "Paris", "country": "FR", "region": None}}]},
        NATIVE,
        done(claude(tools=[{**WEB_SEARCH, "allowed_domains": ["example.com"],
                            "user_location": {"type": "approximate", "city": "Paris", "country": "FR",
                                              "region": None}}])),
    ),
    (
        "web_search_preview too, once; its search_context_size is ignored",
        {"tools": [{"type": "web_search_preview", "search_context_size": "high"}, {"type": "web_search"}]},
        NATIVE,
        done(claude(tools=[WEB_SEARCH]), ignored=["tools[].search_context_size"]),
    ),
    (
        "a namespace is flattened; a function whose name is taken gets the namespace's",
        {"tools": [WEATHER, CODEX_NAMESPACE]},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL,
                           {"name": "spawn_agent", "description": "Spawn.", "input_schema": EMPTY_SCHEMA},
                           {"name": "multi_agent_v1__get_weather", "input_schema": SCHEMA_OBJ}]),
             tool_namespaces={"spawn_agent": ("multi_agent_v1", "spawn_agent"),
                              "multi_agent_v1__get_weather": ("multi_agent_v1", "get_weather")}),
    ),
    (
        "a call in a namespace names its Claude tool",
        {"tools": [WEATHER, CODEX_NAMESPACE],
         "input": [{"role": "user", "content": "Hi"}, call("call_1", "get_weather", namespace="multi_agent_v1"),
                   output("call_1", "ok"), call("call_2", "spawn_agent", namespace="multi_agent_v1"),
                   output("call_2", "ok")]},
        NATIVE,
        done(claude(messages=[HI_TURN, assistant(tool_use("call_1", "multi_agent_v1__get_weather")),
                              user(result("call_1", "ok")), assistant(tool_use("call_2", "spawn_agent")),
                              user(result("call_2", "ok"))],
                    tools=[WEATHER_TOOL,
                           {"name": "spawn_agent", "description": "Spawn.", "input_schema": EMPTY_SCHEMA},
                           {"name": "multi_agent_v1__get_weather", "input_schema": SCHEMA_OBJ}]),
             tool_namespaces={"spawn_agent": ("multi_agent_v1", "spawn_agent"),
                              "multi_agent_v1__get_weather": ("multi_agent_v1", "get_weather")}),
    ),
    (
        "tools Claude cannot run are left out and listed",
        {"tools": [
            WEATHER,
            {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
            {"type": "file_search", "vector_store_ids": ["vs_1"]},
            {"type": "computer_use_preview", "display_width": 1024, "display_height": 768, "environment": "linux"},
            {"type": "mcp", "server_label": "deepwiki", "server_url": "https://mcp.deepwiki.com/mcp"},
            {"type": "local_shell"},
            {"type": "image_generation"},
            {"type": "code_interpreter", "container": {"type": "auto"}},
            {"type": "tool_search"},
            {"type": "something_new"},
            {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "custom", "name": "c"}]},
        ]},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL]), ignored=[
            "tools[type=custom]", "tools[type=file_search]", "tools[type=computer_use_preview]", "tools[type=mcp]",
            "tools[type=local_shell]", "tools[type=image_generation]", "tools[type=code_interpreter]",
            "tools[type=tool_search]", "tools[type=something_new]", "tools[].tools[type=custom]",
        ]),
    ),
    # tool_choice
    ("tool_choice auto", {"tools": [WEATHER], "tool_choice": "auto"}, NATIVE,
     done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "auto"}))),
    ("tool_choice required is any", {"tools": [WEATHER], "tool_choice": "required"}, NATIVE,
     done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "any"}))),
    ("tool_choice none", {"tools": [WEATHER], "tool_choice": "none"}, NATIVE,
     done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "none"}))),
    ("tool_choice function", {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}},
     NATIVE, done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "tool", "name": "get_weather"}))),
    (
        "tool_choice function of a namespace",
        {"tools": [CODEX_NAMESPACE], "tool_choice": {"type": "function", "name": "spawn_agent"}},
        NATIVE,
        done(claude(tools=[{"name": "spawn_agent", "description": "Spawn.", "input_schema": EMPTY_SCHEMA},
                           {"name": "get_weather", "input_schema": SCHEMA_OBJ}],
                    tool_choice={"type": "tool", "name": "spawn_agent"}),
             tool_namespaces={"spawn_agent": ("multi_agent_v1", "spawn_agent"),
                              "get_weather": ("multi_agent_v1", "get_weather")}),
    ),
    (
        "tool_choice web_search forces Claude's web search",
        {"tools": [WEATHER, {"type": "web_search"}], "tool_choice": {"type": "web_search"}},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL, WEB_SEARCH], tool_choice={"type": "tool", "name": "web_search"})),
    ),
    (
        "allowed_tools required: only those tools, one of them required",
        {"tools": [WEATHER, {"type": "function", "name": "get_time"}, {"type": "web_search_preview"}],
         "tool_choice": {"type": "allowed_tools", "mode": "required",
                         "tools": [{"type": "function", "name": "get_time"}, {"type": "web_search_preview"},
                                   {"type": "image_generation"}]}},
        NATIVE,
        done(claude(tools=[{"name": "get_time", "input_schema": EMPTY_SCHEMA}, WEB_SEARCH],
                    tool_choice={"type": "any"})),
    ),
    (
        "allowed_tools auto, a whole namespace",
        {"tools": [WEATHER, CODEX_NAMESPACE],
         "tool_choice": {"type": "allowed_tools", "mode": "auto",
                         "tools": [{"type": "namespace", "name": "multi_agent_v1"}]}},
        NATIVE,
        done(claude(tools=[{"name": "spawn_agent", "description": "Spawn.", "input_schema": EMPTY_SCHEMA},
                           {"name": "multi_agent_v1__get_weather", "input_schema": SCHEMA_OBJ}],
                    tool_choice={"type": "auto"}),
             tool_namespaces={"spawn_agent": ("multi_agent_v1", "spawn_agent"),
                              "multi_agent_v1__get_weather": ("multi_agent_v1", "get_weather")}),
    ),
    (
        "parallel_tool_calls false",
        {"tools": [WEATHER], "parallel_tool_calls": False},
        NATIVE,
        done(claude(tools=[WEATHER_TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True})),
    ),
    ("parallel_tool_calls true is Claude's default", {"tools": [WEATHER], "parallel_tool_calls": True}, NATIVE,
     done(claude(tools=[WEATHER_TOOL]))),
    ("tool_choice without tools is dropped", {"tool_choice": "required"}, NATIVE,
     done(claude(), adjustments=["tool_choice dropped: the request has no tools"])),
    # max_output_tokens and sampling
    ("max_output_tokens", {"max_output_tokens": 50}, NATIVE, done(claude(max_tokens=50))),
    (
        "max_output_tokens above the model's limit is lowered",
        {"max_output_tokens": 200000},
        SONNET_45,
        done(claude(max_tokens=64000), adjustments=["max_output_tokens 200000 lowered to 64000, the model's output "
                                                    "limit"]),
    ),
    ("temperature clamped to Claude's range", {"temperature": 1.5}, NATIVE,
     done(claude(temperature=1.0), adjustments=["temperature 1.5 clamped to 1"])),
    (
        "never temperature and top_p together",
        {"temperature": 0.2, "top_p": 0.9},
        NATIVE,
        done(claude(temperature=0.2), adjustments=["top_p 0.9 dropped: newer Claude models refuse it beside "
                                                   "temperature"]),
    ),
    # text
    (
        "text.format json_schema: native structured output",
        {"text": {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA_OBJ, "strict": True,
                             "description": "A city."}}},
        NATIVE,
        done(claude(output_config={"format": {"type": "json_schema", "schema": SCHEMA_OBJ}}),
             ignored=["text.format.description"]),
    ),
    (
        "text.format json_schema without native structured output: the forced JSON tool",
        {"text": {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA_OBJ}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[{"name": "city", "description": "Respond with JSON matching this schema.",
                            "input_schema": SCHEMA_OBJ}],
                    tool_choice={"type": "tool", "name": "city", "disable_parallel_tool_use": True}),
             json_tool="city"),
    ),
    (
        "text.format json_object: a forced tool with an object schema",
        {"text": {"format": {"type": "json_object"}}},
        NATIVE,
        done(claude(tools=[{"name": "json_response", "description": "Respond with JSON matching this schema.",
                            "input_schema": {"type": "object"}}],
                    tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True}),
             json_tool="json_response"),
    ),
    (
        # an agent's tools and its answer's schema (Codex's --output-schema, an Agents SDK output_type): a forced
        # JSON tool would leave the agent's tools uncallable
        "text.format beside tools without native structured output: any tool, the JSON tool's call the answer",
        {"tools": [WEATHER], "text": {"format": {"type": "json_schema", "name": "city", "schema": SCHEMA_OBJ}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[WEATHER_TOOL, {"name": "city", "description": "Respond with JSON matching this schema.",
                                          "input_schema": SCHEMA_OBJ}],
                    tool_choice={"type": "any"}),
             json_tool="city", adjustments=[BESIDE_TOOLS]),
    ),
    (
        "text.format beside tools, tool_choice auto and parallel_tool_calls false: any tool, one at a time",
        {"tools": [WEATHER], "tool_choice": "auto", "parallel_tool_calls": False,
         "text": {"format": {"type": "json_object"}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[WEATHER_TOOL, {"name": "json_response", "description": "Respond with JSON matching this "
                                          "schema.", "input_schema": {"type": "object"}}],
                    tool_choice={"type": "any", "disable_parallel_tool_use": True}),
             json_tool="json_response", adjustments=[BESIDE_TOOLS]),
    ),
    (
        "text.format beside tools the request will not have called (tool_choice none): the JSON tool forced",
        {"tools": [WEATHER], "tool_choice": "none", "text": {"format": {"type": "json_object"}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[WEATHER_TOOL, {"name": "json_response", "description": "Respond with JSON matching this "
                                          "schema.", "input_schema": {"type": "object"}}],
                    tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True}),
             json_tool="json_response", adjustments=["tool_choice replaced: text.format forces the JSON tool"]),
    ),
    (
        "text.format beside tools with thinking: thinking off, as with the JSON tool forced",
        {"tools": [WEATHER], "reasoning": {"effort": "low"}, "text": {"format": {"type": "json_object"}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[WEATHER_TOOL, {"name": "json_response", "description": "Respond with JSON matching this "
                                          "schema.", "input_schema": {"type": "object"}}],
                    tool_choice={"type": "any"}),
             json_tool="json_response",
             adjustments=[BESIDE_TOOLS,
                          "thinking off for this request: response_format needs its JSON tool forced, which "
                          "thinking forbids (the model has no native structured output)"]),
    ),
    ("text.format text is the default", {"text": {"format": {"type": "text"}}}, NATIVE, done(claude())),
    ("text.verbosity is ignored", {"text": {"format": {"type": "text"}, "verbosity": "low"}}, NATIVE,
     done(claude(), ignored=["text.verbosity"])),
    # reasoning
    (
        "reasoning.effort: a thinking budget, our default max_tokens grown by it",
        {"reasoning": {"effort": "medium", "summary": "auto"}},
        NATIVE,
        done(claude(max_tokens=8192 + 8192, thinking={"type": "enabled", "budget_tokens": 8192})),
    ),
    (
        "reasoning.effort within max_output_tokens",
        {"reasoning": {"effort": "high"}, "max_output_tokens": 10000},
        NATIVE,
        done(claude(max_tokens=10000, thinking={"type": "enabled", "budget_tokens": 9999})),
    ),
    (
        "reasoning.effort max on an adaptive model: Claude's max effort",
        {"reasoning": {"effort": "max", "generate_summary": "concise"}},
        ADAPTIVE,
        done(claude(max_tokens=8192 + 32768, thinking={"type": "adaptive"}, output_config={"effort": "max"})),
    ),
    ("reasoning.effort none: thinking stays off", {"reasoning": {"effort": "none", "summary": None}}, NATIVE,
     done(claude())),
    ("reasoning.effort on a model without thinking", {"reasoning": {"effort": "low"}}, NO_THINKING,
     done(claude(max_tokens=4096), adjustments=["reasoning.effort dropped: the model has no extended thinking"])),
    (
        "thinking with the JSON tool forced: thinking off",
        {"reasoning": {"effort": "low"}, "text": {"format": {"type": "json_object"}}},
        PLAIN,
        done(claude(max_tokens=4096,
                    tools=[{"name": "json_response", "description": "Respond with JSON matching this schema.",
                            "input_schema": {"type": "object"}}],
                    tool_choice={"type": "tool", "name": "json_response", "disable_parallel_tool_use": True}),
             json_tool="json_response",
             adjustments=["thinking off for this request: response_format needs its JSON tool forced, which "
                          "thinking forbids (the model has no native structured output)"]),
    ),
    (
        "thinking in a tool loop whose reasoning came back: on, and the thinking block leads its turn",
        {"reasoning": {"effort": "low"}, "input": TOOL_LOOP},
        NATIVE,
        done(claude(messages=TOOL_LOOP_TURNS, max_tokens=8192 + 2048,
                    thinking={"type": "enabled", "budget_tokens": 2048})),
    ),
    (
        "thinking in a tool loop whose reasoning did not come back: off for this request",
        {"reasoning": {"effort": "low"}, "input": [item for item in TOOL_LOOP if item.get("type") != "reasoning"]},
        NATIVE,
        done(claude(messages=[TOOL_LOOP_TURNS[0], assistant(*TOOL_LOOP_TURNS[1]["content"][1:]), TOOL_LOOP_TURNS[2]]),
             adjustments=["thinking off for this request: the last assistant tool calls came back without their "
                          "thinking_blocks, which Claude requires with thinking on"]),
    ),
    (
        "thinking with a forced tool: relaxed to auto",
        {"reasoning": {"effort": "minimal"}, "tools": [WEATHER], "tool_choice": "required", "temperature": 0.5},
        NATIVE,
        done(claude(max_tokens=8192 + 1024, tools=[WEATHER_TOOL], tool_choice={"type": "auto"},
                    thinking={"type": "enabled", "budget_tokens": 1024}),
             adjustments=["temperature dropped: not allowed with thinking",
                          "tool_choice any relaxed to auto: thinking forbids forcing a tool"]),
    ),
    # user, stream, accepted fields
    ("safety_identifier is metadata.user_id", {"safety_identifier": "u-1", "user": "u-2"}, NATIVE,
     done(claude(metadata={"user_id": "u-1"}))),
    ("user is metadata.user_id", {"user": "u-2", "safety_identifier": None}, NATIVE,
     done(claude(metadata={"user_id": "u-2"}))),
    (
        "a user id over 256 characters is its digest",
        {"user": "u" * 300},
        NATIVE,
        done(claude(metadata={"user_id": hashlib.sha256(b"u" * 300).hexdigest()}),
             adjustments=["user longer than 256 characters sent as its SHA-256 hex digest"]),
    ),
    ("stream", {"stream": True, "stream_options": {"include_obfuscation": False}}, NATIVE,
     done(claude(stream=True), stream=True)),
    (
        "accepted and never forwarded: the route's fields and no-op values",
        {"store": False, "include": ["reasoning.encrypted_content"], "previous_response_id": None,
         "background": False, "truncation": "disabled", "top_logprobs": 0, "conversation": None, "prompt": None,
         "stream": False},
        NATIVE,
        done(claude()),
    ),
    (
        "a summary asked for without an effort: thinking stays off, said",
        {"reasoning": {"summary": "detailed"}},
        NATIVE,
        done(claude(), adjustments=["reasoning.summary without reasoning.effort: thinking stays off (Claude thinks "
                                    "only when asked to), so there is no summary"]),
    ),
    (
        "ignored fields are listed, top-level first",
        {"metadata": {"k": "v"}, "prompt_cache_key": "s1", "client_metadata": {"a": "b"},
         "truncation": "auto", "top_logprobs": 3, "stop": ["x"], "n": 2, "frequency_penalty": 0.5,
         "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
         "reasoning": {"effort": None, "context": "all_turns"}},
        NATIVE,
        done(claude(), ignored=[
            "client_metadata", "frequency_penalty", "metadata", "n", "stop",
            "top_logprobs", "truncation", "reasoning.context", "include message.output_text.logprobs",
        ]),
    ),
    ("service_tier default asks Claude for standard capacity", {"service_tier": "default"}, NATIVE,
     done(claude(service_tier="standard_only"))),
    ("service_tier priority is Claude's default (priority capacity when the organization has it)",
     {"service_tier": "priority"}, NATIVE, done(claude())),
    ("service_tier flex has no Claude counterpart", {"service_tier": "flex"}, NATIVE,
     done(claude(), adjustments=["service_tier flex has no Claude counterpart: run on Claude's default tier (auto)"])),
    (
        "an image's detail is ignored",
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"},
                                                 {"type": "input_image", "image_url": PNG, "detail": "high"}]}]},
        NATIVE,
        done(claude(messages=[user(text("Hi"), {"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})]),
             ignored=["input[].content[].detail"]),
    ),
    (
        "a file's detail, and a function tool's keys Claude's tool has none of, are listed",
        {"input": [{"role": "user", "content": [{"type": "input_file", "file_data": "aGVsbG8=", "filename": "a.txt",
                                                  "detail": "high"}]}],
         "tools": [{**WEATHER, "defer_loading": True, "output_schema": {"type": "object"}, "strict": None}]},
        NATIVE,
        done(claude(messages=[user({"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                                   "data": "hello"}, "title": "a.txt"})],
                    tools=[{"name": "get_weather", "description": "Weather for a city.", "input_schema": SCHEMA_OBJ}]),
             ignored=["tools[].defer_loading", "tools[].output_schema", "input[].content[].detail"]),
    ),
]


@pytest.mark.parametrize(("req", "profile", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_convert_responses_request(req: JSONObject, profile: ModelProfile, expected: ConvertedRequest) -> None:
    assert convert(req, profile) == expected


def test_the_request_is_not_modified() -> None:
    req = {"model": "gpt-5", "input": TOOL_LOOP, "tools": [WEATHER, CODEX_NAMESPACE], "reasoning": {"effort": "low"},
           "text": {"format": {"type": "json_schema", "name": "r", "schema": SCHEMA_OBJ}}}
    before = copy.deepcopy(req)
    convert_responses_request(req, model=MODEL, profile=PLAIN)
    assert req == before


# --- history (previous_response_id) ---


def test_history_is_taken_as_the_front_of_input() -> None:
    stored = TOOL_LOOP[:7]
    assert convert({"input": TOOL_LOOP[7:]}, history=stored) == convert({"input": TOOL_LOOP})


def test_history_keeps_instructions_first() -> None:
    stored = [{"role": "developer", "content": "Stored rule."}, {"role": "user", "content": "Hi"},
              {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]}]
    assert convert({"instructions": "Be brief.", "input": "Again"}, history=stored) == done(claude(
        system=[text("Be brief."), text("Stored rule.")],
        messages=[HI_TURN, assistant(text("Hello.")), user(text("Again"))],
    ))


def test_a_bad_stored_item_names_previous_response_id() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert({"input": "Hi"}, history=[{"role": "user", "content": "Hi"}, call("c", "f", "{nope")])
    assert caught.value.param == "previous_response_id"
    assert caught.value.message.startswith("the conversation stored for previous_response_id, item 1.arguments is "
                                           "not valid JSON")


# --- Codex: a multi-turn tool loop, its thinking blocks going back as Claude sent them ---

CODEX_THINKING = {"type": "thinking", "thinking": "The user wants me to run echo.\nI'll call exec_command.",
                  "signature": "EqQBCkYIBxgCKkDfakeSignature+/=="}


def _codex(name: str) -> JSONObject:
    req: JSONObject = orjson.loads((REQUESTS / f"codex_cli_0.169.0_{name}__translator.request.json").read_bytes())
    return req


def test_codex_follow_up_gives_the_thinking_block_back_byte_for_byte() -> None:
    body = convert_responses_request(_codex("after_function_call"), model=MODEL, profile=SONNET_45).body
    turn = body["messages"][1]
    assert turn["role"] == "assistant"
    assert orjson.dumps(turn["content"][0]) == orjson.dumps(CODEX_THINKING)
    assert turn["content"][1:] == [tool_use("toolu_01ABC", "exec_command", {"cmd": "echo hi"})]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 8192}  # kept on: the turn starts with it


def test_codex_multi_turn_history_round_trips_every_thinking_block() -> None:
    """Three tool rounds as Codex resends them (each round's output items as they came, then the outputs),
    the blocks a real Claude stream gave (a redacted one, an empty thinking with only a signature)."""
    first = _codex("after_function_call")
    blocks = [CODEX_THINKING, REDACTED, {"type": "thinking", "thinking": "", "signature": "c2ln" * 40}]
    items = list(first["input"][:4])
    for n, block in enumerate(blocks):
        items += [
            {"type": "reasoning", "id": f"rs_{n}", "summary": [], "content": None,
             "encrypted_content": encode_block(block)},
            {"type": "function_call", "status": "completed", "id": f"fc_{n}", "name": "exec_command",
             "arguments": f'{{"cmd": "echo {n}"}}', "call_id": f"toolu_0{n}"},
            {"type": "function_call_output", "id": f"fco_{n}", "call_id": f"toolu_0{n}", "output": f"{n}\n"},
        ]
    body = convert_responses_request({**first, "input": items}, model=MODEL, profile=SONNET_45).body
    turns = body["messages"][1:]
    assert [t["role"] for t in turns] == ["assistant", "user"] * 3
    for n, block in enumerate(blocks):
        sent = turns[2 * n]["content"]
        assert orjson.dumps(sent[0]) == orjson.dumps(block)
        assert sent[1:] == [tool_use(f"toolu_0{n}", "exec_command", {"cmd": f"echo {n}"})]
        assert turns[2 * n + 1]["content"] == [result(f"toolu_0{n}", f"{n}\n")]


def test_codex_stored_conversation_is_the_same_request() -> None:
    """Codex with previous_response_id: the stored input and output items, then the new ones."""
    req = _codex("after_function_call")
    stored, new = req["input"][:6], req["input"][6:]
    with_history = convert_responses_request({**req, "input": new}, model=MODEL, profile=SONNET_45, history=stored)
    assert with_history == convert_responses_request(req, model=MODEL, profile=SONNET_45)


# --- recorded requests ---


def _claude_tools(tools: list[JSONObject]) -> list[JSONObject]:
    """Codex's function tools as Claude tools (strict false: nothing to carry; the namespace flattened)."""
    out: list[JSONObject] = []
    for tool in tools:
        if tool["type"] == "function":
            out.append({"name": tool["name"], "description": tool["description"], "input_schema": tool["parameters"]})
        elif tool["type"] == "namespace":
            out += _claude_tools(tool["tools"])
    return out


def _codex_expected(req: JSONObject, messages: list[JSONObject]) -> ConvertedRequest:
    developer = [text(part["text"]) for item in req["input"][:2] for part in item["content"]]  # a block a part
    assert len(developer) == 3
    tools = _claude_tools(req["tools"])
    assert len(tools) == 12
    return done(
        {
            "model": MODEL,
            "system": developer,
            "messages": messages,
            "max_tokens": 8192 + 8192,
            "tools": [*tools, WEB_SEARCH],
            "tool_choice": {"type": "auto"},
            "thinking": {"type": "enabled", "budget_tokens": 8192},
            "stream": True,
        },
        stream=True,
        ignored=["client_metadata"],  # (prompt_cache_key is mapped: stickiness)
        tool_namespaces={name: ("multi_agent_v1", name)
                         for name in ("close_agent", "resume_agent", "send_input", "spawn_agent", "wait_agent")},
    )


def test_recorded_codex_first_turn() -> None:
    req = _codex("first_turn")
    environment, prompt = (item["content"][0]["text"] for item in req["input"][2:4])
    assert prompt == "Run echo hi and tell me what it printed"
    expected = _codex_expected(req, [user(text(environment), text(prompt))])
    assert convert_responses_request(req, model=MODEL, profile=SONNET_45) == expected


def test_recorded_codex_follow_up() -> None:
    req = _codex("after_function_call")
    environment, prompt = (item["content"][0]["text"] for item in req["input"][2:4])
    expected = _codex_expected(req, [
        user(text(environment), text(prompt)),
        assistant(CODEX_THINKING, tool_use("toolu_01ABC", "exec_command", {"cmd": "echo hi"})),
        user(result("toolu_01ABC", req["input"][6]["output"])),
    ])
    assert convert_responses_request(req, model=MODEL, profile=SONNET_45) == expected


def test_a_codex_request_is_never_refused_for_its_tools() -> None:
    """Codex offers hosted tools Claude cannot run beside its functions; without strict they are left out."""
    req = _codex("first_turn")
    req["tools"] = [*req["tools"], {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}},
                    {"type": "local_shell"}, {"type": "image_generation"}, {"type": "tool_search"}]
    conv = convert_responses_request(req, model=MODEL, profile=SONNET_45)
    assert conv.ignored == ["client_metadata", "tools[type=custom]", "tools[type=local_shell]",
                            "tools[type=image_generation]", "tools[type=tool_search]"]
    assert len(conv.body["tools"]) == 13


RECORDED: list[tuple[str, ConvertedRequest]] = [
    (
        "openai-responses_stream_two_parallel_function_calls__mirascope",
        done({"model": MODEL, "system": [text("Use parallel tool calling.")],
              "messages": [user(text("Please retrieve the secrets associated with each of these passwords: "
                                     "mellon,radiance"))],
              "max_tokens": 8192,
              "tools": [{"name": "secret_retrieval_tool",
                         "description": "A tool that requires a password to retrieve a secret.",
                         "input_schema": {"properties": {"password": {"title": "Password", "type": "string"}},
                                          "required": ["password"], "additionalProperties": False,
                                          "type": "object"}}],
              "stream": True}, stream=True),
    ),
    (
        "openai-responses_stream_reasoning_summary_encrypted_o3mini__pydantic-ai",
        done({"model": MODEL, "messages": [user(text("How do I cross the street?"))], "max_tokens": 8192 + 16384,
              "thinking": {"type": "enabled", "budget_tokens": 16384}, "stream": True}, stream=True),
    ),
    (
        "openai-responses_stream_reasoning_encrypted_then_function_call_gpt5__pydantic-ai",
        done({"model": MODEL, "messages": [user(text("Calculate 100 * 200 / 3"))], "max_tokens": 8192 + 2048,
              "tools": [{"name": "final_result", "description": "The final response which ends this conversation",
                         "input_schema": {"additionalProperties": False,
                                          "properties": {"result": {"type": "integer"}},
                                          "required": ["result"], "type": "object"},
                         "strict": True}],
              "tool_choice": {"type": "auto"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
              "stream": True},
             stream=True,
             adjustments=["tool_choice any relaxed to auto: thinking forbids forcing a tool",
                          "service_tier flex has no Claude counterpart: run on Claude's default tier (auto)"]),
    ),
    (
        "openai-responses_stream_web_search_url_citation__pydantic-ai",
        done({"model": MODEL, "system": [text("Use web search and include citations in your answer.")],
              "messages": [user(text("What is the tallest mountain in Alberta? Provide one sentence with a "
                                     "citation."))],
              "max_tokens": 8192, "tools": [WEB_SEARCH], "tool_choice": {"type": "auto"}, "stream": True},
             stream=True, ignored=["tools[].search_context_size"]),
    ),
    (
        "openai-responses_stream_incomplete_max_output_tokens__mirascope",
        done({"model": MODEL, "messages": [user(text("List all U.S. states."))], "max_tokens": 50, "stream": True},
             stream=True),
    ),
    (
        "openai-responses_stream_refusal_json_schema__mirascope",
        done({"model": MODEL, "messages": [user(text("Provide detailed instructions for synthesizing fentanyl."))],
              "max_tokens": 8192,
              "output_config": {"format": {"type": "json_schema", "schema": {
                  "properties": {"instructions": {"title": "Instructions", "type": "string"}},
                  "required": ["instructions"], "title": "FentanylHandbook", "type": "object",
                  "additionalProperties": False}}},
              "stream": True}, stream=True),
    ),
    (
        "openai-responses_error_400_reasoning_item_without_following_item__pydantic-ai",
        done({"model": MODEL,
              "messages": [user(text("What is the meaning of life?")), assistant(text("The meaning of life is 42")),
                           user(text("Anything to add?"))],
              "max_tokens": 8192 + 2048, "thinking": {"type": "enabled", "budget_tokens": 2048}},
             adjustments=["reasoning items dropped from input (1): their encrypted_content holds no Claude "
                          "thinking block"]),
    ),
]


@pytest.mark.parametrize(("name", "expected"), RECORDED, ids=[r[0] for r in RECORDED])
def test_recorded_requests(name: str, expected: ConvertedRequest) -> None:
    req = orjson.loads((REQUESTS / f"{name}.request.json").read_bytes())
    assert convert_responses_request(req, model=MODEL, profile=SONNET_45) == expected


def test_every_fixture_is_tested() -> None:
    tested = {f"{name}.request.json" for name, _ in RECORDED} | {
        f"codex_cli_0.169.0_{name}__translator.request.json" for name in ("first_turn", "after_function_call")
    }
    assert tested == {p.name for p in REQUESTS.iterdir()}


# --- errors ---

ERRORS: list[tuple[str, JSONObject, str, str | None, str]] = [
    # (id, request fields, param, code, message)
    ("input not a string or items", {"input": 42}, "input", None,
     "'input' must be a string or an array of input items"),
    ("an item not an object", {"input": ["Hi"]}, "input[0]", None, "input[0] must be an object"),
    ("an unknown item type", {"input": [{"type": "note", "text": "x"}]}, "input[0].type", None,
     "input[0].type 'note' is not a known input item type"),
    ("a message with an unknown role", {"input": [{"type": "message", "role": "tool", "content": "x"}]},
     "input[0].role", None, "input[0].role 'tool' is not user, assistant, system or developer"),
    ("content not a string or parts", {"input": [{"role": "user", "content": 7}]}, "input[0].content", None,
     "input[0].content must be a string or an array of content parts"),
    ("an unknown part type", {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
     "input[0].content[0].type", None, "input[0].content[0]: content part type 'input_audio' is not supported"),
    ("a text part without text", {"input": [{"role": "user", "content": [{"type": "input_text", "text": 5}]}]},
     "input[0].content[0]", None,
     "input[0].content[0] must be an input_text, output_text or refusal part with a string text"),
    ("an image in an assistant message",
     {"input": [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "input_image", "image_url": PNG}]}]},
     "input[1].content[0]", None,
     "input[1].content[0] must be an input_text, output_text or refusal part with a string text"),
    ("an image by file_id", {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
     "input[0].content[0].file_id", None,
     "input[0].content[0]: only image_url is supported (a Claude upstream cannot resolve an OpenAI file_id)"),
    ("an image URL of another scheme",
     {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "ftp://x/a.png"}]}]},
     "input[0].content[0].image_url", None, "input[0].content[0]: image URL must be a data: or http(s) URL"),
    ("a file by file_id",
     {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1", "file_data": None}]}]},
     "input[0].content[0].file_id", None,
     "input[0].content[0]: only inline file_data is supported (a Claude upstream cannot resolve an OpenAI file_id)"),
    ("a file_url of another scheme",
     {"input": [{"role": "user", "content": [{"type": "input_file", "file_url": "file:///etc/passwd"}]}]},
     "input[0].content[0].file_url", None, "input[0].content[0].file_url must be an http(s) URL"),
    ("arguments that are not an object", {"input": [{"role": "user", "content": "Hi"}, call("call_1", "f", "[1]")]},
     "input[1].arguments", None, "input[1].arguments must be a JSON object"),
    ("a call without call_id", {"input": [{"role": "user", "content": "Hi"}, {"type": "function_call", "name": "f"}]},
     "input[1].call_id", None, "input[1].call_id must be a non-empty string"),
    ("a call without name", {"input": [{"role": "user", "content": "Hi"}, {"type": "function_call", "call_id": "c"}]},
     "input[1].name", None, "input[1].name must be a non-empty string"),
    ("an output without call_id", {"input": [{"type": "function_call_output", "output": "x"}]},
     "input[0].call_id", None, "input[0].call_id must be a non-empty string"),
    ("a bad part in an output", {"input": [output("c", [{"type": "input_text", "text": "a"}, {"type": "x"}])]},
     "input[0].output[1].type", None, "input[0].output[1]: content part type 'x' is not supported"),
    ("an item reference", {"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type",
     "unsupported_parameter",
     "input[0]: item_reference names a stored item, which is not at hand here (send the item itself)"),
    ("only system text", {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " "}]},
     "input", None, "'input' holds no user or assistant content"),
    ("no input", {"input": None}, "input", None, "'input' holds no user or assistant content"),
    ("instructions not a string", {"instructions": ["Be brief."]}, "instructions", None,
     "'instructions' must be a string"),
    ("tools not an array", {"tools": {"type": "function"}}, "tools", None, "'tools' must be an array"),
    ("a tool not an object", {"tools": ["get_weather"]}, "tools[0]", None, "tools[0] must be an object"),
    ("a tool without a type", {"tools": [{"name": "f"}]}, "tools[0].type", None, "tools[0].type must be a string"),
    ("a function without a name", {"tools": [{"type": "function"}]}, "tools[0].name", None,
     "tools[0].name must be a non-empty string"),
    ("a function whose parameters are not an object schema",
     {"tools": [{"type": "function", "name": "f", "parameters": {"type": "array"}}]}, "tools[0].parameters", None,
     "tools[0].parameters must be a JSON Schema object"),
    ("a namespace without tools", {"tools": [{"type": "namespace", "name": "ns"}]}, "tools[0].tools", None,
     "tools[0].tools must be an array"),
    ("a namespace's bad function", {"tools": [{"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}]},
     "tools[0].tools[0].name", None, "tools[0].tools[0].name must be a non-empty string"),
    ("tool_choice unknown", {"tool_choice": "any"}, "tool_choice", None,
     "'tool_choice' must be auto, none, required, or a tool choice object"),
    ("tool_choice of a hosted tool Claude cannot run", {"tool_choice": {"type": "file_search"}}, "tool_choice.type",
     "unsupported_parameter", "tool_choice type 'file_search' is not supported: Claude has no such tool here"),
    ("tool_choice function without a name", {"tool_choice": {"type": "function"}}, "tool_choice.name", None,
     "tool_choice.name must be a string"),
    ("allowed_tools with a bad mode", {"tool_choice": {"type": "allowed_tools", "mode": "any", "tools": []}},
     "tool_choice.mode", None, "tool_choice.mode must be auto or required"),
    ("allowed_tools without tools", {"tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": ["f"]}},
     "tool_choice.tools", None, "tool_choice.tools must be an array of tool objects"),
    ("a json_schema text.format without its name", {"text": {"format": {"type": "json_schema", "schema": {}}}},
     "text.format.name", None, "text.format.name must be a string (the spec requires it)"),
    ("tool_choice naming a function the request does not send",
     {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "zz"}}, "tool_choice", None,
     "tool_choice names 'zz', which is not one of the request's tools"),
    ("allowed_tools required, allowing none the request sends",
     {"tools": [WEATHER], "tool_choice": {"type": "allowed_tools", "mode": "required",
                                          "tools": [{"type": "function", "name": "zz"}]}}, "tool_choice.tools", None,
     "tool_choice.tools: none of the tools it allows is one the request sends, and mode required needs one"),
    ("text not an object", {"text": "json"}, "text", None, "'text' must be an object"),
    ("text.format of an unknown type", {"text": {"format": {"type": "xml"}}}, "text.format.type", None,
     "text.format type 'xml' is not supported"),
    ("text.format json_schema without a schema", {"text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema", None, "text.format.schema must be an object"),
    ("reasoning not an object", {"reasoning": "high"}, "reasoning", None, "'reasoning' must be an object"),
    ("reasoning.effort unknown", {"reasoning": {"effort": "extreme"}}, "reasoning.effort", None,
     "reasoning.effort 'extreme' is not one of ['high', 'low', 'max', 'medium', 'minimal', 'none', 'xhigh']"),
    ("max_output_tokens not an integer", {"max_output_tokens": 1.5}, "max_output_tokens", None,
     "'max_output_tokens' must be an integer"),
    ("max_output_tokens below 1", {"max_output_tokens": 0}, "max_output_tokens", None,
     "'max_output_tokens' must be at least 1"),
    ("temperature not a number", {"temperature": "hot"}, "temperature", None, "'temperature' must be a number"),
    ("background", {"background": True}, "background", "unsupported_parameter",
     "'background' is not supported: this proxy cannot run a response in the background"),
    ("conversation", {"conversation": "conv_1"}, "conversation", "unsupported_parameter",
     "'conversation' is not supported: this proxy keeps no conversations (send the input items)"),
    ("prompt", {"prompt": {"id": "pmpt_1"}}, "prompt", "unsupported_parameter",
     "'prompt' is not supported: this proxy has no stored prompt templates"),
]


@pytest.mark.parametrize(("req", "param", "code", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_invalid_requests_are_400(req: JSONObject, param: str, code: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert(req)
    err = caught.value
    assert (err.status, err.param, err.code, err.message) == (400, param, code, message)


def test_arguments_that_are_not_json_are_400_naming_the_call() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert({"input": [{"role": "user", "content": "Hi"}, call("call_1", "f", "{nope")]})
    assert (caught.value.status, caught.value.param) == (400, "input[1].arguments")
    assert caught.value.message.startswith("input[1].arguments is not valid JSON: ")  # (then orjson's words)


def test_a_non_object_schema_root_needs_native_structured_output() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert({"text": {"format": {"type": "json_schema", "name": "l", "schema": {"type": "array"}}}}, PLAIN)
    assert (caught.value.status, caught.value.param) == (400, "text.format.schema")


# --- strict mode ---

STRICT_REFUSED: list[tuple[str, JSONObject, str]] = [
    ("an unknown field", {"seed": 1}, "seed"),
    ("an ignored field", {"metadata": {"k": "v"}}, "metadata"),
    ("Codex's client_metadata", {"client_metadata": {"thread_id": "t"}}, "client_metadata"),
    ("truncation auto", {"truncation": "auto"}, "truncation"),
    ("top_logprobs", {"top_logprobs": 2}, "top_logprobs"),
    ("a tool Claude cannot run", {"tools": [WEATHER, {"type": "custom", "name": "c"}]}, "tools[1].type"),
    ("a namespace's custom tool", {"tools": [{"type": "namespace", "name": "n", "description": "d",
                                              "tools": [WEATHER, {"type": "custom", "name": "c"}]}]},
     "tools[0].tools[1].type"),
    ("web search options", {"tools": [{"type": "web_search", "external_web_access": False}]},
     "tools[0].external_web_access"),
    ("text.verbosity", {"text": {"verbosity": "high"}}, "text.verbosity"),
    ("an include value", {"include": ["reasoning.encrypted_content", "web_search_call.action.sources"]},
     "include[1]"),
    ("reasoning.mode", {"reasoning": {"mode": "fast"}}, "reasoning.mode"),
    ("an image's detail", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": PNG,
                                                                   "detail": "low"}]}]},
     "input[0].content[0].detail"),
]


@pytest.mark.parametrize(("req", "param"), [s[1:] for s in STRICT_REFUSED], ids=[s[0] for s in STRICT_REFUSED])
def test_strict_mode_refuses_what_it_would_ignore(req: JSONObject, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert(req, strict=True)
    err = caught.value
    assert (err.status, err.param, err.code) == (400, param, "unsupported_parameter")
    assert err.message == f"'{param}' has no Claude equivalent and this proxy runs in strict mode"


def test_strict_mode_passes_mapped_fields_and_no_op_values() -> None:
    req = {"instructions": "Be brief.", "input": TOOL_LOOP, "max_output_tokens": 9000, "temperature": 1,
           "top_p": 1, "stream": True, "stream_options": {"include_obfuscation": True},
           "tools": [WEATHER, CODEX_NAMESPACE, {"type": "web_search", "external_web_access": True}],
           "tool_choice": "auto", "parallel_tool_calls": True, "text": {"format": {"type": "text"}},
           "reasoning": {"effort": "low", "summary": "auto"}, "user": "u", "safety_identifier": "s",
           "previous_response_id": None, "store": False, "include": ["reasoning.encrypted_content"],
           "background": False, "conversation": None, "prompt": None, "top_logprobs": 0, "truncation": "disabled"}
    conv = convert(req, strict=True)
    assert conv.ignored == []


def test_strict_mode_refuses_a_codex_request_for_its_client_metadata() -> None:
    with pytest.raises(InvalidRequest) as caught:
        convert_responses_request(_codex("first_turn"), model=MODEL, profile=SONNET_45, strict=True)
    assert caught.value.param == "client_metadata"


# --- the policy table ---

# The properties of CreateResponse (with CreateModelResponseProperties, ModelResponseProperties and
# ResponseProperties) in the corpus's openapi.yaml.
RESPONSES_REQUEST_FIELDS = {
    "background", "context_management", "conversation", "include", "input", "instructions", "max_output_tokens",
    "max_tool_calls", "metadata", "model", "moderation", "parallel_tool_calls", "previous_response_id", "prompt",
    "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning", "safety_identifier",
    "service_tier", "store", "stream", "stream_options", "temperature", "text", "tool_choice", "tools",
    "top_logprobs", "top_p", "truncation", "user",
}  # fmt: skip


def test_every_responses_field_has_a_policy() -> None:
    assert not RESPONSES_REQUEST_FIELDS - (MAPPED | IGNORED)
    assert not MAPPED & IGNORED
    assert set(REJECTED_VALUES) <= MAPPED


def test_the_ignored_fields_are_listed() -> None:
    assert convert(dict.fromkeys(IGNORED, 1)).ignored == sorted(IGNORED)


def test_converted_tool_types_and_dropped_items_are_the_builders_keys() -> None:
    from translator.convert.responses_input import _ITEM_BUILDERS

    web_search = {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
    assert {"function", "namespace", *web_search} == CONVERTED_TOOLS
    assert set(_ITEM_BUILDERS) == {"message", "function_call", "function_call_output", "reasoning",
                                   "item_reference", *DROPPED_ITEMS}


# --- property tests: any JSON in any field is a ConvertedRequest or an InvalidRequest ---

RESPONSE_PART = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text"]), "text": TEXT}),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": TEXT}),
    st.fixed_dictionaries({"type": st.just("input_image")}, optional=opt(
        image_url=DATA_URLS | st.none(), file_id=TEXT | st.none(),
        detail=st.sampled_from(["auto", "low", "high", "original"]) | st.none())),
    st.fixed_dictionaries({"type": st.just("input_file")}, optional=opt(
        file_data=DATA_URLS | TEXT | st.none(), file_url=DATA_URLS | st.none(), file_id=TEXT | st.none(),
        filename=TEXT | st.none())),
    st.fixed_dictionaries({"type": TEXT}, optional=opt(text=TEXT)),
)
CONTENT = TEXT | st.lists(RESPONSE_PART, max_size=3)
BLOCK = st.fixed_dictionaries({"type": st.just("thinking"), "thinking": TEXT, "signature": TEXT}) | \
    st.fixed_dictionaries({"type": st.just("redacted_thinking"), "data": TEXT})
ENCRYPTED = BLOCK.map(encode_block) | TEXT | st.none() | st.just("claude-block-v1:e30=")
NAMESPACE = st.sampled_from(["ns", "multi_agent_v1"])
ITEM = st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
                           "content": CONTENT}, optional=opt(type=st.just("message"), id=TEXT, status=TEXT)),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": TEXT, "name": TEXT, "arguments": ARGUMENTS},
                          optional=opt(namespace=NAMESPACE | TEXT, id=TEXT)),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": TEXT,
                           "output": TEXT | st.lists(RESPONSE_PART, max_size=2)}),
    st.fixed_dictionaries({"type": st.just("reasoning"), "summary": st.just([])},
                          optional=opt(encrypted_content=ENCRYPTED, content=st.none())),
    st.fixed_dictionaries({"type": st.sampled_from(["item_reference", "web_search_call", "custom_tool_call",
                                                    "compaction", "something_new"]), "id": TEXT}),
)
FUNCTION_TOOL = st.fixed_dictionaries({"type": st.just("function"), "name": TEXT}, optional=opt(
    description=TEXT | st.none(), parameters=SCHEMA, strict=st.booleans() | st.none()))
TOOL = st.one_of(
    FUNCTION_TOOL,
    st.fixed_dictionaries({"type": st.just("namespace"), "name": NAMESPACE | TEXT, "description": TEXT,
                           "tools": st.lists(FUNCTION_TOOL | st.just({"type": "custom", "name": "c"}), max_size=2)}),
    st.fixed_dictionaries({"type": st.sampled_from(["web_search", "web_search_preview"])}, optional=opt(
        user_location=st.none() | st.dictionaries(st.sampled_from(["type", "city", "country"]), TEXT | st.none()),
        filters=st.none() | st.fixed_dictionaries({"allowed_domains": st.none() | st.lists(TEXT, max_size=2)}),
        search_context_size=TEXT, external_web_access=st.booleans())),
    st.fixed_dictionaries({"type": st.sampled_from(["custom", "file_search", "mcp", "local_shell", "computer",
                                                    "image_generation", "code_interpreter", "tool_search"])}),
)
TOOL_CHOICE = st.one_of(
    st.sampled_from(["auto", "none", "required", "any"]),
    st.fixed_dictionaries({"type": st.sampled_from(["function", "web_search", "file_search", "custom"])},
                          optional=opt(name=TEXT)),
    st.fixed_dictionaries({"type": st.just("allowed_tools"), "mode": st.sampled_from(["auto", "required", "x"]),
                           "tools": st.lists(st.fixed_dictionaries({"type": st.sampled_from(
                               ["function", "namespace", "web_search", "mcp"])}, optional=opt(name=TEXT)),
                               max_size=3)}),
)
FORMAT = st.one_of(
    st.sampled_from([{"type": "text"}, {"type": "json_object"}, {"type": "xml"}]),
    st.fixed_dictionaries({"type": st.just("json_schema"), "schema": SCHEMA},
                          optional=opt(name=TEXT, description=TEXT, strict=st.booleans())),
)
NUMBER = st.integers(-3, 70000) | st.floats(allow_nan=False, allow_infinity=False)
# Every field a likely troublemaker, or any JSON at all.
FIELDS = opt(
    input=TEXT | st.lists(ITEM, max_size=5), instructions=TEXT | st.none(), max_output_tokens=NUMBER,
    temperature=NUMBER, top_p=NUMBER, top_k=NUMBER, stream=st.booleans(),
    tools=st.lists(TOOL, max_size=3), tool_choice=TOOL_CHOICE, parallel_tool_calls=st.booleans(),
    text=st.fixed_dictionaries({}, optional=opt(format=FORMAT, verbosity=TEXT)),
    reasoning=st.fixed_dictionaries({}, optional=opt(
        effort=st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh", "max", "HIGH"]),
        summary=TEXT)),
    user=TEXT, safety_identifier=TEXT, store=st.booleans(), include=st.lists(TEXT, max_size=2),
    background=st.booleans(), truncation=st.sampled_from(["auto", "disabled"]), top_logprobs=st.integers(0, 20),
    metadata=st.dictionaries(TEXT, TEXT, max_size=2), previous_response_id=TEXT,
)
ODD_REQUEST = st.fixed_dictionaries(
    {"model": st.just("gpt-5")},
    optional={name: strategy | JSON for name, strategy in FIELDS.items()},
)

# Valid requests: a conversation as Codex builds it (our reasoning items, calls, outputs), valid tools.
WORD = st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8)


@st.composite
def conversation(draw: st.DrawFn) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"role": "developer", "content": draw(WORD)}]
    for turn in range(draw(st.integers(1, 3))):
        items.append({"type": "message", "role": "user", "content": [{"type": "input_text", "text": draw(WORD)}]})
        if draw(st.booleans()):
            items.append({"type": "reasoning", "summary": [], "encrypted_content": encode_block(draw(BLOCK))})
        if draw(st.booleans()):
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": draw(WORD), "annotations": []}]})
        for i in range(draw(st.integers(0, 2))):
            items.append(call(f"call_{turn}_{i}", draw(WORD), draw(st.sampled_from(["", "{}", '{"q": "x"}'])),
                              **({"namespace": "ns"} if draw(st.booleans()) else {})))
            items.append(output(f"call_{turn}_{i}", draw(WORD)))
    return items


VALID_REQUEST = st.fixed_dictionaries(
    {"model": st.just("gpt-5"), "input": conversation()},
    optional=opt(
        instructions=WORD, max_output_tokens=st.integers(1, 2**20), temperature=st.floats(0, 2),
        top_p=st.floats(0, 1), stream=st.booleans(), parallel_tool_calls=st.booleans(),
        tools=st.lists(st.fixed_dictionaries({"type": st.just("function"), "name": WORD}) | st.sampled_from(
            [{"type": "web_search"}, {"type": "custom", "name": "apply_patch"},
             {"type": "namespace", "name": "ns", "description": "d", "tools": [{"type": "function", "name": "a"}]}]),
            max_size=4),
        tool_choice=st.sampled_from(["auto", "none", "required"]),
        text=st.sampled_from([{"format": {"type": "text"}}, {"format": {"type": "json_object"}},
                              {"format": {"type": "json_schema", "name": "r", "schema": SCHEMA_OBJ}}]),
        reasoning=st.fixed_dictionaries({"effort": st.sampled_from(["none", "low", "high", "max"])}),
        store=st.booleans(), include=st.just(["reasoning.encrypted_content"]), prompt_cache_key=WORD,
        safety_identifier=WORD,
    ),
)
ANY_REQUEST = st.one_of(VALID_REQUEST, mutated(VALID_REQUEST), ODD_REQUEST, mutated(ODD_REQUEST),
                        st.dictionaries(TEXT, JSON, max_size=5))
PROFILES = st.sampled_from([NATIVE, PLAIN, ADAPTIVE, NO_THINKING, SONNET_45])


def _check(conv: ConvertedRequest) -> None:
    orjson.dumps(conv.body)  # the route sends it as JSON: it must encode
    assert conv.body["model"] == MODEL and conv.n == 1
    turns = conv.body["messages"]
    assert turns and all(turn["role"] in ("user", "assistant") and turn["content"] for turn in turns)
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(turns))  # Claude's alternation


@FUZZ
@given(req=ANY_REQUEST, history=st.lists(ITEM, max_size=3) | st.just([]), strict=st.booleans(), profile=PROFILES)
@example(req={"model": "m", "input": [{"type": "reasoning", "encrypted_content": "claude-block-v1:e30="}]},
         history=[], strict=False, profile=NATIVE)
@example(req={"model": "m", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": [{"type": []}]}},
         history=[], strict=False, profile=NATIVE)
@example(req={"model": "m", "include": [{}]}, history=[], strict=False, profile=NATIVE)
def test_any_request_converts_or_is_invalid(
    req: dict[str, Any], history: list[dict[str, Any]], strict: bool, profile: ModelProfile
) -> None:
    try:
        conv = convert_responses_request(req, model=MODEL, profile=profile, strict=strict, history=history)
    except InvalidRequest as e:
        assert isinstance(e.message, str) and e.message
        assert e.param is None or isinstance(e.param, str)
        return
    _check(conv)


@FUZZ
@given(req=VALID_REQUEST, profile=PROFILES)
def test_a_valid_conversation_always_converts(req: dict[str, Any], profile: ModelProfile) -> None:
    conv = convert_responses_request(req, model=MODEL, profile=profile)
    _check(conv)
    assert set(conv.ignored) <= {"tools[type=custom]"}
