"""Responses ``input`` items (after a stored conversation's, for ``previous_response_id``) -> Claude
``system`` + ``messages``.

Items come in the order of the turns they belong to. An assistant message, the reasoning item before it
and the function calls after it make one assistant turn (``messages.append_turn`` merges consecutive
turns of a role), their blocks in the order the items came, so a restored thinking block leads its turn as
Claude sent it; function call outputs and the user message after them make one user turn, the tool
results first. System and developer messages go to ``system``, in order (after ``instructions``, which
the caller puts first).

A reasoning item carries a Claude thinking block in its ``encrypted_content`` (``reasoning.py``), and goes
back as that block, byte for byte; one that carries none (another provider's) is dropped, never sent as
text. Items of tools Claude did not run here (hosted tool calls, custom tools) are dropped too; both are
reported. An ``item_reference`` is the route's to replace by the stored item it names
(``server.responses_route``); one left here is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, cast

from translator.convert.content import placed, response_content_blocks, response_text_blocks
from translator.convert.messages import append_turn, claude_ids, parse_arguments, tool_result
from translator.convert.reasoning import decode_block
from translator.convert.responses_tools import ToolNames
from translator.convert.responses_wire import (
    EasyInputMessageParam,
    FunctionCallOutput,
    ResponseFunctionToolCallParam,
    ResponseReasoningItemParam,
)
from translator.convert.wire import (
    ContentBlockParam,
    MessageParam,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
)
from translator.errors import InvalidRequest

# Where an item's blocks go; None: nowhere (the item is dropped).
Destination = Literal["system", "user", "assistant"] | None
Piece = tuple[Destination, Sequence[ContentBlockParam]]


def convert_input(
    raw: object, history: Sequence[Mapping[str, Any]], names: ToolNames
) -> tuple[list[TextBlock], list[MessageParam], list[str]]:
    """(system blocks, turns, adjustments). ``names``: the Claude names of the request's functions."""
    items = _items(raw)
    system: list[TextBlock] = []
    turns: list[MessageParam] = []
    dropped: Counter[str] = Counter()
    # An item's errors name their place relative to it, and get its own on the way out (as in messages.py).
    for i, item in enumerate([*history, *items]):
        try:
            kind = _kind(item)
            where, blocks = _ITEM_BUILDERS[kind](item, names)
        except InvalidRequest as err:
            raise _placed(err, i, len(history)) from err.__cause__
        if where == "system":
            system.extend(cast(list[TextBlock], blocks))
        elif where is None:
            dropped[kind] += 1
        else:
            append_turn(turns, where, blocks)
    if not turns:  # Claude needs one message at least
        raise InvalidRequest("'input' holds no user or assistant content", param="input")
    claude_ids(turns)
    return system, turns, [f"{kind} items dropped from input ({n}): {_why(kind)}" for kind, n in dropped.items()]


def _items(raw: object) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]  # the API's shorthand for one user message
    if not isinstance(raw, list):
        raise InvalidRequest("'input' must be a string or an array of input items", param="input")
    return raw


def _placed(err: InvalidRequest, index: int, stored: int) -> InvalidRequest:
    if index >= stored:
        return placed(err, f"input[{index - stored}]")
    # (a stored item: the client sent the id of its conversation, not the item)
    where = f"the conversation stored for previous_response_id, item {index}"
    return InvalidRequest(where + err.message, param="previous_response_id", code=err.code)


def _kind(item: object) -> str:
    if not isinstance(item, dict):
        raise InvalidRequest(" must be an object", param="")
    kind = item.get("type")
    if kind is None and "role" in item:
        return "message"  # EasyInputMessage: type is optional
    if not isinstance(kind, str) or kind not in _ITEM_BUILDERS:
        raise InvalidRequest(f".type {kind!r} is not a known input item type", param=".type")
    return kind


# An item's builders; their errors name their place relative to the item (see convert_input).


def _message(item: EasyInputMessageParam, _names: ToolNames) -> Piece:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequest(f".role {role!r} is not user, assistant, system or developer", param=".role")
    where, build = _ROLES[role]
    return where, build(item.get("content"), ".content")


# A message's role: where its blocks go, and what its content may hold (an assistant's, text and refusals
# only, as in OpenAI; Claude takes no images there).
_ROLES: Final[dict[str, tuple[Destination, Callable[[object, str], Sequence[ContentBlockParam]]]]] = {
    "user": ("user", response_content_blocks),
    "assistant": ("assistant", response_text_blocks),
    "system": ("system", response_text_blocks),
    "developer": ("system", response_text_blocks),
}


def _function_call(item: ResponseFunctionToolCallParam, names: ToolNames) -> Piece:
    call_id, name, namespace = item.get("call_id"), item.get("name"), item.get("namespace")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(".call_id must be a non-empty string", param=".call_id")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(".name must be a non-empty string", param=".name")
    if namespace is not None and not isinstance(namespace, str):
        raise InvalidRequest(".namespace must be a string", param=".namespace")
    arguments = parse_arguments(item.get("arguments"), ".arguments")
    return "assistant", [{"type": "tool_use", "id": call_id, "name": names(namespace, name), "input": arguments}]


def _function_call_output(item: FunctionCallOutput, _names: ToolNames) -> Piece:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(".call_id must be a non-empty string", param=".call_id")
    return "user", [tool_result(call_id, item.get("output"), ".output", response_content_blocks)]


def _reasoning(item: ResponseReasoningItemParam, _names: ToolNames) -> Piece:
    """Our thinking block, as Claude sent it; anything else has nothing Claude can take back."""
    block = decode_block(item.get("encrypted_content"))
    if block is None:
        return None, []
    return "assistant", [cast(ThinkingBlock | RedactedThinkingBlock, block)]


def _item_reference(_item: object, _names: ToolNames) -> Piece:
    raise InvalidRequest(
        ": item_reference names a stored item, which is not at hand here (send the item itself)",
        param=".type",
        code="unsupported_parameter",
    )


def _dropped(_item: object, _names: ToolNames) -> Piece:
    return None, []


# Items of tools Claude does not run here (openapi.yaml Item): their calls and outputs, and OpenAI's own
# encrypted state (compaction), mean nothing to Claude.
DROPPED_ITEMS: Final = frozenset({
    "file_search_call", "computer_call", "computer_call_output", "web_search_call", "tool_search_call",
    "tool_search_output", "additional_tools", "compaction", "compaction_trigger", "image_generation_call",
    "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
    "apply_patch_call", "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request",
    "mcp_approval_response", "mcp_call", "custom_tool_call", "custom_tool_call_output", "program",
    "program_output",
})  # fmt: skip

# An item's type decides its shape: each builder takes the item its type names (a claim it checks).
_ITEM_BUILDERS: Final[dict[str, Callable[[Any, ToolNames], Piece]]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
    "item_reference": _item_reference,
    **dict.fromkeys(DROPPED_ITEMS, _dropped),
}

_WHY_DROPPED: Final = {
    "reasoning": "their encrypted_content holds no Claude thinking block",
    "compaction": "OpenAI's encrypted summary of earlier turns, which only OpenAI can read",
}


def _why(kind: str) -> str:
    return _WHY_DROPPED.get(kind, "a tool Claude does not run here")
