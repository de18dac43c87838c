"""A Claude Messages response -> an OpenAI ``chat.completion``.

Text blocks are joined into ``content``; ``tool_use`` becomes ``tool_calls`` (arguments as a JSON
string, ``"{}"`` for none); thinking becomes ``reasoning_content`` plus ``thinking_blocks`` (signature and
redacted data kept, so a client can send them back). Server-tool blocks (web search and the like) ran
upstream and have no OpenAI form: their outcome is in the text that follows them.
"""

from __future__ import annotations

from typing import Any

import orjson

from translator.convert.tables import FINISH_REASON, FINISH_REASON_DEFAULT
from translator.convert.usage import add_usage, openai_usage
from translator.errors import UpstreamProtocolError


def finish_reason(stop_reason: Any, *, json_tool: str | None = None) -> str:
    if json_tool is not None and stop_reason == "tool_use":
        return "stop"  # the forced JSON tool's input is the answer itself
    return FINISH_REASON.get(stop_reason, FINISH_REASON_DEFAULT) if isinstance(stop_reason, str) else "stop"


def completion_id(message_id: Any) -> str:
    return f"chatcmpl-{message_id}" if message_id else "chatcmpl-unknown"


def convert_response(
    msg: dict[str, Any], *, created: int, model: str, json_tool: str | None = None
) -> dict[str, Any]:
    return convert_responses([msg], created=created, model=model, json_tool=json_tool)


def convert_responses(
    msgs: list[dict[str, Any]], *, created: int, model: str, json_tool: str | None = None
) -> dict[str, Any]:
    """One completion from ``n`` Claude answers to the same request: one choice each, usage summed."""
    try:
        return _convert_responses(msgs, created=created, model=model, json_tool=json_tool)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        # JSON that is not a Claude message (content not a list, usage not an object, ...): a bad answer.
        raise UpstreamProtocolError(f"upstream answer is not a Claude message: {type(e).__name__}") from e


def _convert_responses(
    msgs: list[dict[str, Any]], *, created: int, model: str, json_tool: str | None
) -> dict[str, Any]:
    usage = openai_usage(msgs[0].get("usage") or {})
    for msg in msgs[1:]:
        usage = add_usage(usage, openai_usage(msg.get("usage") or {}))
    return {
        "id": completion_id(msgs[0].get("id")),
        "object": "chat.completion",
        "created": created,
        "model": msgs[0].get("model") or model,
        "choices": [choice(msg, index=i, json_tool=json_tool) for i, msg in enumerate(msgs)],
        "usage": usage,
    }


def choice(msg: dict[str, Any], *, index: int, json_tool: str | None) -> dict[str, Any]:
    message = assistant_message(msg.get("content") or [], json_tool=json_tool)
    # tool calls the client must run still finish as "tool_calls", even in JSON-tool mode
    answered = json_tool if "tool_calls" not in message else None
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(msg.get("stop_reason"), json_tool=answered),
    }


def assistant_message(blocks: list[dict[str, Any]], *, json_tool: str | None = None) -> dict[str, Any]:
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    chars = 0  # length of the content so far: annotation indexes count characters in it
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            piece = block.get("text") or ""
            annotations += url_citations(block.get("citations"), chars, chars + len(piece))
            chars += len(piece)
            text.append(piece)
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            piece = orjson.dumps(block.get("input") or {}).decode()
            chars += len(piece)
            text.append(piece)
        elif kind == "tool_use":
            calls.append(tool_call(block))
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking.append(block)
        elif kind == "redacted_thinking":
            thinking.append(block)
        # server_tool_use, *_tool_result, and block types yet to come: no OpenAI form (see docstring)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text) if text else None,
        "refusal": None,
    }
    if annotations:
        message["annotations"] = annotations
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(reasoning)
        message["thinking_blocks"] = thinking
    return message


def url_citations(citations: Any, start: int, end: int) -> list[dict[str, Any]]:
    """Claude cites sources per text block; those with a URL (web search, web fetch) become OpenAI
    ``url_citation`` annotations over that block's span of the content. Document citations (char, page
    and block locations) carry no URL and have no OpenAI form."""
    if not isinstance(citations, list):
        return []
    return [
        {"type": "url_citation",
         "url_citation": {"start_index": start, "end_index": end, "url": c["url"], "title": c.get("title") or ""}}
        for c in citations
        if isinstance(c, dict) and isinstance(c.get("url"), str)
    ]


def tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
    }
