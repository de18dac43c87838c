"""OpenAI ``messages`` -> Claude ``system`` + ``messages``.

Claude's rules this module enforces (Messages API, "messages"): system text lives outside the list;
roles are user/assistant only; consecutive turns of one role are merged; tool results are user content
and come first in their turn; an assistant turn carries thinking, then text, then tool_use; tool ids
use Claude's alphabet. The Responses converter (``responses_input``) builds its turns with the same
``append_turn``, ``tool_result``, ``parse_arguments`` and ``claude_ids``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import orjson

from translator.convert.content import PartBlock, content_blocks, placed, text_blocks
from translator.convert.wire import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionFunctionMessage,
    ChatCompletionMessageParam,
    ChatCompletionMessageToolCall,
    ChatCompletionToolMessage,
    ChatCompletionUserMessage,
    ContentBlockParam,
    MessageParam,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from translator.errors import InvalidRequest

Role = Literal["user", "assistant"]
Turn = tuple[Role, Sequence[ContentBlockParam]]


def convert_messages(messages: list[ChatCompletionMessageParam]) -> tuple[list[TextBlock], list[MessageParam]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    system: list[TextBlock] = []
    turns: list[MessageParam] = []
    legacy_ids = _LegacyCallIds()
    # A message's errors name their place relative to it (".content[0] ..."), and get its own on the way
    # out: a long history builds no path strings unless one of its messages is wrong.
    for i, msg in enumerate(messages):
        try:
            if not isinstance(msg, dict):
                raise InvalidRequest(" must be an object", param="")
            role = msg.get("role")
            if role in ("system", "developer"):
                system.extend(text_blocks(msg.get("content"), ".content"))
                continue
            builder = _TURN_BUILDERS.get(role) if isinstance(role, str) else None
            if builder is None:
                raise InvalidRequest(f".role {role!r} is not a known role", param=".role")
            claude_role, blocks = builder(msg, legacy_ids)
        except InvalidRequest as err:
            raise placed(err, f"messages[{i}]") from err.__cause__
        append_turn(turns, claude_role, blocks)
    if not turns:  # Claude needs one message at least; only system text (or only empty turns) is not one
        raise InvalidRequest("'messages' holds no user or assistant content", param="messages")
    claude_ids(turns)
    return system, turns


def append_turn(turns: list[MessageParam], role: Role, blocks: Sequence[ContentBlockParam]) -> None:
    """A turn at the end of the conversation, merged into the last one if that has the same role."""
    if not blocks:
        return  # an empty turn (say, an assistant's "") carries nothing Claude would accept
    if turns and turns[-1]["role"] == role:
        merged = [*turns[-1]["content"], *blocks]
        if role == "user":  # tool_result blocks must lead a user turn
            merged.sort(key=lambda b: b.get("type") != "tool_result")
        turns[-1]["content"] = merged
    else:
        turns.append({"role": role, "content": blocks})


# The builders of a turn; their errors name their place relative to the message (see convert_messages).


def _user(msg: ChatCompletionUserMessage, _ids: _LegacyCallIds) -> Turn:
    return "user", content_blocks(msg.get("content"), ".content")


def _assistant(msg: ChatCompletionAssistantMessageParam, ids: _LegacyCallIds) -> Turn:
    blocks = _thinking_blocks(msg.get("thinking_blocks"))
    content = msg.get("content")
    if content is not None:  # text and refusal parts only, as in OpenAI; Claude takes no images here
        blocks += text_blocks(content, ".content")
    refusal = msg.get("refusal")  # an earlier answer's refusal (content null): what the model said
    if refusal is not None:
        if not isinstance(refusal, str):
            raise InvalidRequest(".refusal must be a string", param=".refusal")
        blocks += text_blocks(refusal, ".refusal")
    if msg.get("audio") is not None:  # (an earlier audio answer, by id: Claude neither made nor can read it)
        raise InvalidRequest(".audio: audio answers are not supported", param=".audio")
    calls = msg.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(".tool_calls must be an array", param=".tool_calls")
    for j, call in enumerate(calls):
        try:
            blocks.append(_tool_use(call))
        except InvalidRequest as err:
            raise placed(err, f".tool_calls[{j}]") from err.__cause__
    legacy = msg.get("function_call")
    if isinstance(legacy, dict):
        legacy_call: ChatCompletionMessageToolCall = {
            "id": ids.open(str(legacy.get("name"))), "type": "function", "function": legacy
        }
        try:
            blocks.append(_tool_use(legacy_call))
        except InvalidRequest as err:
            raise placed(err, ".function_call") from err.__cause__
    return "assistant", blocks


def _tool(msg: ChatCompletionToolMessage, _ids: _LegacyCallIds) -> Turn:
    call_id = msg.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(".tool_call_id must be a non-empty string", param=".tool_call_id")
    return "user", [tool_result(call_id, msg.get("content"))]


def _function(msg: ChatCompletionFunctionMessage, ids: _LegacyCallIds) -> Turn:
    """The legacy ``function`` role answers the latest open ``function_call`` of the same name."""
    name = str(msg.get("name"))
    return "user", [tool_result(ids.close(name), msg.get("content"))]


# A message's role decides its shape: each builder takes the message its role names (a claim it checks).
_TURN_BUILDERS: Final[dict[str, Callable[[Any, _LegacyCallIds], Turn]]] = {
    "user": _user, "assistant": _assistant, "tool": _tool, "function": _function
}


def _tool_use(call: ChatCompletionMessageToolCall) -> ToolUseBlock:
    """A tool call (its errors name their place relative to it)."""
    kind = call.get("type", "function") if isinstance(call, dict) else None
    if kind != "function":  # ("custom" calls: custom tools are refused in requests too)
        raise InvalidRequest(f".type {kind!r} is not supported: only function tool calls", param=".type")
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(".function.name must be a string", param=".function.name")
    if not isinstance(call.get("id"), str) or not call["id"]:
        raise InvalidRequest(".id must be a non-empty string", param=".id")
    return {
        "type": "tool_use",
        "id": call["id"],
        "name": fn["name"],
        "input": parse_arguments(fn.get("arguments"), ".function.arguments"),
    }


def parse_arguments(raw: object, param: str) -> dict[str, Any]:
    if raw is None or raw == "":
        return {}  # a call without arguments; peers send "" or omit it
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw) if isinstance(raw, str) else None
    except orjson.JSONDecodeError as e:
        raise InvalidRequest(f"{param} is not valid JSON: {e}", param=param) from e
    if not isinstance(value, dict):
        raise InvalidRequest(f"{param} must be a JSON object", param=param)
    return value


def tool_result(
    call_id: str,
    content: object,
    where: str = ".content",
    build: Callable[[object, str], list[PartBlock]] = content_blocks,
) -> ToolResultBlock:
    """A tool's result: a string, or parts (``build`` makes them blocks: each API has its own parts)."""
    block: ToolResultBlock = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str) or content is None:
        if content and content.strip():
            block["content"] = content
        return block
    parts = build(content, where)
    if parts:
        block["content"] = parts
    return block


_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_CLAUDE_ID = re.compile(r"[a-zA-Z0-9_-]+")
_CLAUDE_IDS = re.compile(r"[a-zA-Z0-9_-]+(?: [a-zA-Z0-9_-]+)*")  # ids joined by spaces


def claude_ids(turns: list[MessageParam]) -> None:
    """Claude's tool ids match ``^[a-zA-Z0-9_-]+$``. Ids another provider made (``functions.get:0``) are
    rewritten, the same way in a call and in its result, and never onto an id another call has."""
    ids = [
        b["id"] if b["type"] == "tool_use" else b["tool_use_id"]
        for turn in turns
        for b in turn["content"]
        if b["type"] == "tool_use" or b["type"] == "tool_result"
    ]
    joined = " ".join(ids)  # (a space is not in the alphabet: an id holding one is caught by the count)
    if not ids or (joined.count(" ") == len(ids) - 1 and _CLAUDE_IDS.fullmatch(joined)):
        return  # the usual case: checked by one match for the whole conversation, not one per id
    renamed = _new_ids(dict.fromkeys(ids))
    for turn in turns:
        for b in turn["content"]:
            if b["type"] == "tool_use":
                b["id"] = renamed.get(b["id"], b["id"])
            elif b["type"] == "tool_result":
                b["tool_use_id"] = renamed.get(b["tool_use_id"], b["tool_use_id"])


def _new_ids(originals: dict[str, None]) -> dict[str, str]:
    """Each id outside Claude's alphabet -> one inside it that no other id has."""
    taken = {i for i in originals if _CLAUDE_ID.fullmatch(i)}
    renamed: dict[str, str] = {}
    for original in originals:
        if original in taken:
            continue
        base = new = _ID_CHARS.sub("_", original)
        suffix = 2
        while new in taken:
            new, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(new)
        renamed[original] = new
    return renamed


def _thinking_blocks(value: list[ThinkingBlock | RedactedThinkingBlock] | None) -> list[ContentBlockParam]:
    """Signed thinking goes back exactly as Claude sent it, or the signature check fails."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking") for b in value
    ):
        raise InvalidRequest(
            ".thinking_blocks must be an array of thinking or redacted_thinking blocks", param=".thinking_blocks"
        )
    return [b.copy() for b in value]


class _LegacyCallIds:
    """Pairs legacy ``function_call``s with ``function`` results, which carry a name but no id."""

    def __init__(self) -> None:
        self._count = 0
        self._open: dict[str, list[str]] = {}

    def open(self, name: str) -> str:
        self._count += 1
        call_id = f"call_legacy_{self._count}"
        self._open.setdefault(name, []).append(call_id)
        return call_id

    def close(self, name: str) -> str:
        pending = self._open.get(name)
        if not pending:
            raise InvalidRequest(
                f": a function message for {name!r} follows no function_call of that name", param=".name"
            )
        return pending.pop(0)
