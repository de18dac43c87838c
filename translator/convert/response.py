"""A Claude Messages response -> an OpenAI ``chat.completion``.

Text blocks are joined into ``content``; ``tool_use`` becomes ``tool_calls`` (arguments as a JSON
string, ``"{}"`` for none); thinking becomes ``reasoning_content`` plus ``thinking_blocks`` (signature and
redacted data kept, so a client can send them back). Server-tool blocks (web search and the like) ran
upstream and have no OpenAI form: their outcome is in the text that follows them, which starts a new
paragraph (``SERVER_TOOL_BREAK``) when text came before them: Claude's "Let me search:" and "Based on the
results, ..." are two blocks around the search, written to be read apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

import orjson

from translator.convert.tables import FINISH_REASON, FINISH_REASON_DEFAULT
from translator.convert.usage import add_usage, openai_usage, served_tier
from translator.convert.wire import (
    ChatCompletion,
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    Choice,
    Citation,
    ClaudeMessage,
    ClaudeUsage,
    ContentBlock,
    FinishReason,
    RedactedThinkingBlock,
    StopReason,
    ThinkingBlock,
    ToolUseBlock,
    URLCitation,
)
from translator.errors import UpstreamProtocolError

# What separates text written before a server tool ran (web search, code execution, ...) from the text after it.
SERVER_TOOL_BREAK: Final = "\n\n"


def finish_reason(
    stop_reason: StopReason | None, *, json_tool: str | None = None, legacy: bool = False
) -> FinishReason:
    """``legacy``: the request had functions only, whose call finishes as ``function_call``."""
    if json_tool is not None and stop_reason == "tool_use":
        return "stop"  # the forced JSON tool's input is the answer itself
    if isinstance(stop_reason, str) and stop_reason in FINISH_REASON:  # (the upstream's: anything may come)
        reason = FINISH_REASON[stop_reason]
        return "function_call" if legacy and reason == "tool_calls" else reason
    return FINISH_REASON_DEFAULT


def completion_id(message_id: str | None) -> str:
    return f"chatcmpl-{message_id}" if message_id else "chatcmpl-unknown"


def convert_response(
    msg: ClaudeMessage, *, created: int, model: str, json_tool: str | None = None, legacy: bool = False
) -> ChatCompletion:
    return convert_responses([msg], created=created, model=model, json_tool=json_tool, legacy=legacy)


def convert_responses(
    msgs: Sequence[Mapping[str, Any]], *, created: int, model: str, json_tool: str | None = None,
    legacy: bool = False,
) -> ChatCompletion:
    """One completion from ``n`` Claude answers to the same request: one choice each, usage summed.
    ``legacy``: the request had functions only (``ConvertedRequest.legacy_functions``).

    ``msgs`` are the upstream's JSON objects, read here as ``ClaudeMessage``s: that is a claim, and any
    shape that breaks it is reported as an ``UpstreamProtocolError``."""
    try:
        return _convert_responses(cast("Sequence[ClaudeMessage]", msgs), created=created, model=model,
                                  json_tool=json_tool, legacy=legacy)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        # JSON that is not a Claude message (content not a list, usage not an object, ...): a bad answer.
        raise UpstreamProtocolError(f"upstream answer is not a Claude message: {type(e).__name__}") from e


_NO_USAGE: Final[ClaudeUsage] = {"output_tokens": 0}  # (a message without usage counts nothing)


def _convert_responses(
    msgs: Sequence[ClaudeMessage], *, created: int, model: str, json_tool: str | None, legacy: bool
) -> ChatCompletion:
    usage = openai_usage(msgs[0].get("usage") or _NO_USAGE)
    for msg in msgs[1:]:
        usage = add_usage(usage, openai_usage(msg.get("usage") or _NO_USAGE))
    completion: ChatCompletion = {
        "id": completion_id(msgs[0].get("id")),
        "object": "chat.completion",
        "created": created,
        "model": msgs[0].get("model") or model,
        "choices": [choice(msg, index=i, json_tool=json_tool, legacy=legacy) for i, msg in enumerate(msgs)],
        "usage": usage,
    }
    served = served_tier(msgs[0].get("usage"))
    if served is not None:
        completion["service_tier"] = served
    return completion


def choice(msg: ClaudeMessage, *, index: int, json_tool: str | None, legacy: bool = False) -> Choice:
    message = assistant_message(msg.get("content") or [], json_tool=json_tool)
    # tool calls the client must run still finish as "tool_calls", even in JSON-tool mode
    answered = json_tool if "tool_calls" not in message else None
    if legacy and "tool_calls" in message:  # (one call: the request told Claude to call one at a time)
        message["function_call"] = message.pop("tool_calls")[0]["function"]
    return {
        "index": index,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(msg.get("stop_reason"), json_tool=answered, legacy=legacy),
    }


def assistant_message(blocks: list[ContentBlock], *, json_tool: str | None = None) -> ChatCompletionMessage:
    text: list[str] = []
    reasoning: list[str] = []
    thinking: list[ThinkingBlock | RedactedThinkingBlock] = []
    calls: list[ChatCompletionMessageToolCall] = []
    annotations: list[URLCitation] = []
    chars = 0  # length of the content so far: annotation indexes count characters in it
    after_server_tool = False
    for block in blocks:
        if block.get("type") is None:
            continue  # (a block without a type is one we do not know, as below)
        match block["type"]:
            case "text":
                if after_server_tool and chars:
                    text.append(SERVER_TOOL_BREAK)
                    chars += len(SERVER_TOOL_BREAK)
                after_server_tool = False
                piece = block.get("text") or ""
                annotations += url_citations(block.get("citations"), chars, chars + len(piece))
                chars += len(piece)
                text.append(piece)
            case "tool_use" if json_tool is not None and block.get("name") == json_tool:
                piece = orjson.dumps(block.get("input") or {}).decode()
                chars += len(piece)
                text.append(piece)
            case "tool_use":
                calls.append(tool_call(block))
            case "thinking":
                reasoning.append(block.get("thinking") or "")
                thinking.append(block)
            case "redacted_thinking":
                thinking.append(block)
            case _:  # server_tool_use, *_tool_result, and block types yet to come: no OpenAI form (docstring)
                after_server_tool = True
    return _message(text, annotations, calls, reasoning, thinking)


def _message(
    text: list[str],
    annotations: list[URLCitation],
    calls: list[ChatCompletionMessageToolCall],
    reasoning: list[str],
    thinking: list[ThinkingBlock | RedactedThinkingBlock],
) -> ChatCompletionMessage:
    message: ChatCompletionMessage = {
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


def url_citations(citations: list[Citation] | None, start: int, end: int) -> list[URLCitation]:
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


def tool_call(block: ToolUseBlock) -> ChatCompletionMessageToolCall:
    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
        raise UpstreamProtocolError("upstream sent a tool_use block without its id or name")
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
    }
