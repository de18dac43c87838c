"""Offline fake Claude Messages API upstream.

This module provides a tiny aiohttp application that speaks the Claude
Messages API wire format without touching the network.  ``translator serve
--demo`` points the proxy at it so newcomers can try the translation without
an API key, and tests reuse it as a deterministic upstream.

Served endpoints:

* ``POST /v1/messages`` -- non-streaming JSON or SSE streaming answers.  The
  reply is derived from the request: a ``tool_use`` call of the forced tool, else
  the first shell tool, else the first tool, when tools are offered (placeholder arguments its schema accepts;
  a shell command property, ``cmd`` or ``command``, is ``echo demo``), otherwise an echo of the last user
  message (or of the first ``tool_result``; with ``tool_choice`` ``any`` a call
  of the last tool offered instead), or, with native structured output
  (``output_config.format`` json_schema), a JSON document the schema accepts.
  ``stop_sequences``, ``max_tokens`` and ``thinking`` are honoured in a simplified
  way.
* ``POST /v1/messages/count_tokens`` -- a rough token estimate.
* ``GET /v1/models`` and ``GET /v1/models/{model_id}`` -- two demo models.

Everything is deterministic except the generated message, tool-use and
request ids.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = ["create_demo_app"]

JSONObject = dict[str, Any]
SSEEvent = tuple[str, JSONObject]

REPLY_PREFIX: Final = "Demo reply (offline upstream): "
THINKING_TEXT: Final = "Thinking about the demo request."
MAX_ECHO_CHARS: Final = 200
MAX_BODY_BYTES: Final = 32 * 1024 * 1024
JSON_FRAGMENTS: Final = 3

DEMO_MODELS: Final[tuple[JSONObject, ...]] = (
    {
        "type": "model",
        "id": "claude-demo-1",
        "display_name": "Claude Demo 1",
        "created_at": "2025-01-01T00:00:00Z",
    },
    {
        "type": "model",
        "id": "claude-demo-2",
        "display_name": "Claude Demo 2",
        "created_at": "2025-01-01T00:00:00Z",
    },
)

_WORD_RE: Final = re.compile(r"\S+")
_TEXT_PIECE_RE: Final = re.compile(r"\s*\S+\s*|\s+")
_FORCED_TOOL_CHOICES: Final = frozenset({"any", "tool"})
_THINKING_TYPES: Final = frozenset({"enabled", "adaptive"})
_HTTP_ERROR_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


class DemoRequestError(Exception):
    """A request the demo upstream rejects with a Claude-shaped error."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


@dataclass(frozen=True)
class DemoReply:
    """The assistant turn the demo upstream decided to produce."""

    content: list[JSONObject]
    stop_reason: str
    stop_sequence: str | None = None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def _json_response(payload: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(payload),
        content_type="application/json",
        headers={"request-id": _new_id("req_demo_")},
    )


def _error_response(status: int, error_type: str, message: str) -> web.Response:
    payload = {"type": "error", "error": {"type": error_type, "message": message}}
    return _json_response(payload, status=status)


PROMPT_FIELDS = ("system", "messages", "tools")


def _rough_token_count(body: JSONObject) -> int:
    """About four bytes a token, of the prompt alone: the same prompt counts the same, streamed or not,
    and count_tokens agrees with the message's usage."""
    return max(1, len(orjson.dumps([body.get(name) for name in PROMPT_FIELDS])) // 4)


def _count_words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _truncate_words(text: str, limit: int) -> str:
    """Cut ``text`` after its ``limit``-th word, keeping original spacing."""
    words = list(_WORD_RE.finditer(text))
    if len(words) <= limit:
        return text
    return text[: words[limit - 1].end()] if limit > 0 else ""


def _split_fragments(text: str, parts: int = JSON_FRAGMENTS) -> list[str]:
    """Split ``text`` into at most ``parts`` non-empty consecutive pieces."""
    parts = max(1, min(parts, len(text)))
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)] or [text]


def _dumps_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# --------------------------------------------------------------------------
# Request parsing and validation
# --------------------------------------------------------------------------


async def _read_json_object(request: web.Request) -> JSONObject:
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DemoRequestError(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise DemoRequestError("Request body must be a JSON object.")
    return body


def _require_model_and_messages(body: JSONObject) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise DemoRequestError("model: Field required (a non-empty string).")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise DemoRequestError("messages: Field required (a list of messages).")
    if not messages:
        raise DemoRequestError("messages: at least one message is required.")
    for index, message in enumerate(messages):
        # Mid-conversation "system" turns are a beta Claude Code uses by default.
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system"):
            raise DemoRequestError(
                f"messages.{index}: must be an object with role 'user', 'assistant' or 'system'."
            )


def _require_max_tokens(body: JSONObject) -> None:
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise DemoRequestError("max_tokens: Field required (an integer).")
    if max_tokens < 1:
        raise DemoRequestError("max_tokens: must be greater than or equal to 1.")


def _require_stop_sequences(body: JSONObject) -> None:
    stops = body.get("stop_sequences")
    if stops is None:
        return
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise DemoRequestError("stop_sequences: must be a list of strings.")


def _require_tools(body: JSONObject) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise DemoRequestError("tools: must be a list.")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise DemoRequestError(f"tools.{index}: must be an object with a 'name'.")
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        raise DemoRequestError("tool_choice: must be an object with a 'type'.")
    if choice["type"] == "tool" and _find_tool(body, choice.get("name")) is None:
        raise DemoRequestError(f"tool_choice: tool {choice.get('name')!r} not found in tools.")


def _validate_messages_request(body: JSONObject) -> None:
    _require_model_and_messages(body)
    _require_max_tokens(body)
    _require_stop_sequences(body)
    _require_tools(body)


# --------------------------------------------------------------------------
# Reading the conversation
# --------------------------------------------------------------------------


def _blocks(message: JSONObject) -> list[JSONObject]:
    content = message.get("content")
    if isinstance(content, list):
        return [block for block in content if isinstance(block, dict)]
    return []


def _content_text(content: Any) -> str:
    """Plain text of a string or a list of content blocks (text blocks only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            block["text"]
            for block in content
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def _tool_results(message: JSONObject) -> list[JSONObject]:
    return [block for block in _blocks(message) if block.get("type") == "tool_result"]


def _last_user_message(body: JSONObject) -> JSONObject | None:
    for message in reversed(body["messages"]):
        if message.get("role") == "user":
            return dict(message)
    return None


def _find_tool(body: JSONObject, name: Any) -> JSONObject | None:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") == name:
            return tool
    return None


# --------------------------------------------------------------------------
# Building the reply
# --------------------------------------------------------------------------


def _tool_choice_type(body: JSONObject) -> str:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("type"), str):
        return str(choice["type"])
    return "auto"


def _tool_to_call(body: JSONObject) -> JSONObject | None:
    """The tool the demo model should call, or ``None`` to answer with text."""
    tools = body.get("tools") or []
    choice_type = _tool_choice_type(body)
    if not tools or choice_type == "none":
        return None
    # (mid-conversation "system" turns, a beta Claude Code uses, come after the user's: the turn is the user's)
    last = next((m for m in reversed(body["messages"]) if m.get("role") != "system"), None)
    if last is None or last.get("role") != "user":
        return None
    if _tool_results(last):
        # After a result the demo answers, unless a tool call is a must ("any"): then it ends the loop with the
        # last tool offered, where a response format's JSON tool goes when the agent's own tools come first.
        last_tool: JSONObject = tools[-1]
        return last_tool if choice_type == "any" else None
    if choice_type == "tool":
        return _find_tool(body, body["tool_choice"].get("name"))
    # An agent's shell tool (Claude Code's Bash, Codex's exec_command) runs the harmless SHELL_COMMAND: the tool
    # loop shown end to end, where the first tool may be one that starts a sub-agent (Claude Code's Agent).
    first: JSONObject = next((tool for tool in tools if _is_shell_tool(tool)), tools[0])
    return first


def _is_shell_tool(tool: Any) -> bool:
    schema = tool.get("input_schema") if isinstance(tool, dict) else None
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return isinstance(properties, dict) and any(
        isinstance(properties.get(name), dict) and properties[name].get("type") == "string"
        for name in SHELL_COMMAND_PROPERTIES)


def _demo_value(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A placeholder value that a JSON schema accepts: objects get their required properties (all of them
    when none is required), ``$ref`` to the root's ``$defs`` is followed, ``anyOf``/``oneOf`` take their
    first choice (nesting stops after ``_MAX_DEPTH`` levels)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return "demo"
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and isinstance(root, dict):
        return _demo_value((root.get("$defs") or {}).get(ref.removeprefix("#/$defs/")), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            return _demo_value(choices[0], root, depth + 1)
    return _typed_value(schema, root, depth)


def _typed_value(schema: JSONObject, root: Any, depth: int) -> Any:
    """A value of the schema's ``type`` (the first that is not null, of a list; objects when only
    ``properties`` are given)."""
    json_type = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(json_type, list):
        json_type = next((t for t in json_type if t != "null"), "null")
    if json_type == "object":
        return _demo_object(schema, root, depth)
    if json_type == "array":
        return []  # (a new list each time: the answer is built around it)
    return _SCALAR_VALUES.get(json_type, "demo") if isinstance(json_type, str) else "demo"


_SCALAR_VALUES: Final[dict[str, Any]] = {"number": 1, "integer": 1, "boolean": True, "null": None}


def _demo_object(schema: JSONObject, root: Any, depth: int) -> JSONObject:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    names = required if isinstance(required, list) and required else list(properties)
    return {str(name): _demo_property(str(name), properties.get(name), root, depth + 1) for name in names}


# A shell tool's command (Codex's exec_command ``cmd``, Claude Code's Bash ``command``): agents run it, so the
# placeholder is a command that works anywhere and does nothing, never a program named "demo".
SHELL_COMMAND_PROPERTIES: Final = frozenset({"cmd", "command"})
SHELL_COMMAND: Final = "echo demo"


def _demo_property(name: str, schema: Any, root: Any, depth: int) -> Any:
    value = _demo_value(schema, root, depth)
    return SHELL_COMMAND if name in SHELL_COMMAND_PROPERTIES and value == "demo" else value


_MAX_DEPTH: Final = 16


def _demo_tool_input(tool: JSONObject) -> JSONObject:
    schema = tool.get("input_schema")
    return _demo_object(schema, schema, 0) if isinstance(schema, dict) else {}


def _output_schema(body: JSONObject) -> JSONObject | None:
    """The JSON schema of native structured output (``output_config.format``), if the request asks for one."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    return schema if isinstance(schema, dict) else None


def _thinking_block() -> JSONObject:
    digest = hashlib.sha256(THINKING_TEXT.encode()).digest()
    signature = base64.b64encode(b"demo-signature:" + digest).decode()
    return {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature}


def _thinking_requested(body: JSONObject) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in _THINKING_TYPES


def _tool_reply(body: JSONObject, tool: JSONObject) -> DemoReply:
    name = str(tool["name"])
    content: list[JSONObject] = []
    # (no words before a forced call, nor where native structured output holds every text to its schema)
    if _tool_choice_type(body) not in _FORCED_TOOL_CHOICES and _output_schema(body) is None:
        content.append({"type": "text", "text": f"I'll use the {name} tool."})
    content.append(
        {
            "type": "tool_use",
            "id": _new_id("toolu_demo_"),
            "name": name,
            "input": _demo_tool_input(tool),
        }
    )
    return DemoReply(content=content, stop_reason="tool_use")


def _echo_text(body: JSONObject) -> str:
    message = _last_user_message(body)
    if message is None:
        return f"{REPLY_PREFIX}you said: "
    results = _tool_results(message)
    if results:
        result_text = _content_text(results[0].get("content"))
        return f"{REPLY_PREFIX}got the tool result: {result_text[:MAX_ECHO_CHARS]}"
    said = _content_text(message.get("content"))
    return f"{REPLY_PREFIX}you said: {said[:MAX_ECHO_CHARS]}"


def _apply_stop_sequences(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Cut ``text`` before the earliest stop sequence it contains."""
    best: tuple[int, str] | None = None
    for stop in stops:
        index = text.find(stop) if stop else -1
        if index >= 0 and (best is None or index < best[0]):
            best = (index, stop)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def _json_reply(schema: JSONObject) -> DemoReply:
    """Structured output: the answer is one text block holding a JSON document the schema accepts."""
    return DemoReply(content=[{"type": "text", "text": _dumps_text(_demo_value(schema))}], stop_reason="end_turn")


def _text_reply(body: JSONObject) -> DemoReply:
    text, stop_sequence = _apply_stop_sequences(_echo_text(body), body.get("stop_sequences") or [])
    stop_reason = "end_turn" if stop_sequence is None else "stop_sequence"
    max_tokens: int = body["max_tokens"]
    if _count_words(text) > max_tokens:
        text, stop_reason, stop_sequence = _truncate_words(text, max_tokens), "max_tokens", None
    content = [{"type": "text", "text": text}] if text else []
    return DemoReply(content=content, stop_reason=stop_reason, stop_sequence=stop_sequence)


def build_reply(body: JSONObject) -> DemoReply:
    """Decide the assistant turn for a validated Messages API request body."""
    tool = _tool_to_call(body)
    if tool is not None:
        reply = _tool_reply(body, tool)
    elif (schema := _output_schema(body)) is not None:
        reply = _json_reply(schema)
    else:
        reply = _text_reply(body)
    if _thinking_requested(body):
        return DemoReply([_thinking_block(), *reply.content], reply.stop_reason, reply.stop_sequence)
    return reply


def _block_words(block: JSONObject) -> int:
    match block.get("type"):
        case "text":
            return _count_words(str(block["text"]))
        case "thinking":
            return _count_words(str(block["thinking"]))
        case "tool_use":
            return _count_words(f"{block['name']} {_dumps_text(block['input'])}")
        case _:
            return 0


def build_message(body: JSONObject, input_tokens: int) -> JSONObject:
    """The full non-streaming Claude ``message`` object for ``body``."""
    reply = build_reply(body)
    output_tokens = max(1, sum(_block_words(block) for block in reply.content))
    return {
        "id": _new_id("msg_demo_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


# --------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------


def _block_start(block: JSONObject) -> JSONObject:
    match block["type"]:
        case "text":
            return {"type": "text", "text": ""}
        case "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        case _:
            return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}


def _block_deltas(block: JSONObject) -> Iterator[JSONObject]:
    match block["type"]:
        case "text":
            for piece in _TEXT_PIECE_RE.findall(block["text"]):
                yield {"type": "text_delta", "text": piece}
        case "thinking":
            yield {"type": "thinking_delta", "thinking": block["thinking"]}
            yield {"type": "signature_delta", "signature": block["signature"]}
        case _:
            for fragment in _split_fragments(_dumps_text(block["input"])):
                yield {"type": "input_json_delta", "partial_json": fragment}


def _block_events(index: int, block: JSONObject) -> Iterator[SSEEvent]:
    start = {"type": "content_block_start", "index": index, "content_block": _block_start(block)}
    yield "content_block_start", start
    for delta in _block_deltas(block):
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def stream_events(message: JSONObject) -> Iterator[SSEEvent]:
    """The Claude SSE event sequence that streams ``message``."""
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    yield "message_start", {"type": "message_start", "message": start}
    yield "ping", {"type": "ping"}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": delta,
            "usage": {"output_tokens": usage["output_tokens"]},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _encode_sse(event_type: str, payload: JSONObject) -> bytes:
    return b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


async def _stream_message(request: web.Request, message: JSONObject) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "request-id": _new_id("req_demo_"),
        }
    )
    await response.prepare(request)
    for event_type, payload in stream_events(message):
        await response.write(_encode_sse(event_type, payload))
        await asyncio.sleep(0)
    await response.write_eof()
    return response


# --------------------------------------------------------------------------
# HTTP handlers
# --------------------------------------------------------------------------


async def _handle_messages(request: web.Request) -> web.StreamResponse:
    body = await _read_json_object(request)
    _validate_messages_request(body)
    message = build_message(body, _rough_token_count(body))
    if body.get("stream") is True:
        return await _stream_message(request, message)
    return _json_response(message)


async def _handle_count_tokens(request: web.Request) -> web.StreamResponse:
    body = await _read_json_object(request)
    _require_model_and_messages(body)
    return _json_response({"input_tokens": _rough_token_count(body)})


async def _handle_list_models(request: web.Request) -> web.StreamResponse:
    return _json_response(
        {
            "data": list(DEMO_MODELS),
            "has_more": False,
            "first_id": DEMO_MODELS[0]["id"],
            "last_id": DEMO_MODELS[-1]["id"],
        }
    )


async def _handle_get_model(request: web.Request) -> web.StreamResponse:
    model_id = request.match_info["model_id"]
    for model in DEMO_MODELS:
        if model["id"] == model_id:
            return _json_response(model)
    raise DemoRequestError(f"model: {model_id}", status=404, error_type="not_found_error")


@web.middleware
async def _claude_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error (ours and aiohttp's) in the Claude error shape."""
    try:
        return await handler(request)
    except DemoRequestError as exc:
        return _error_response(exc.status, exc.error_type, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_type = _HTTP_ERROR_TYPES.get(exc.status, "api_error")
        return _error_response(exc.status, error_type, exc.reason)


def create_demo_app() -> web.Application:
    """Build the offline fake Claude Messages API application."""
    app = web.Application(middlewares=[_claude_errors], client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/messages", _handle_messages)
    app.router.add_post("/v1/messages/count_tokens", _handle_count_tokens)
    app.router.add_get("/v1/models", _handle_list_models)
    app.router.add_get("/v1/models/{model_id}", _handle_get_model)
    return app
