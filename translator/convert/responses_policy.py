"""What happens to every OpenAI Responses request field: mapped, ignored, or rejected (``policy.py``'s
rules, with this API's table).

Mapped fields include those the route acts on (``previous_response_id``, ``store``, ``include``) and
no-op values of fields that are otherwise ignored or rejected (``background: false``, ``truncation:
"disabled"``, ``top_logprobs: 0``). Nothing here is forwarded as sent: Claude answers 400 to a top-level
field it does not know. An ignored field is listed in ``x-translator-ignored`` (a 400 in strict mode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from translator.convert.policy import FieldPolicy, reject_if

MAPPED: Final = frozenset(
    {
        "model",
        "input",
        "instructions",
        "max_output_tokens",
        "temperature",
        "top_p",
        "top_k",  # Claude's, as on the chat route
        "stream",
        "stream_options",  # include_obfuscation: we send no obfuscation padding; nothing to turn off
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "user",
        "safety_identifier",
        "service_tier",  # as Claude's (tables.CLAUDE_SERVICE_TIER); the response reports the tier that served
        "previous_response_id",  # the route passes the stored items as history
        "store",  # the route's
        "include",  # reasoning.encrypted_content is always there; other values are listed
        "prompt_cache_key",  # stickiness: the conversation keeps its upstream's prompt cache
        "prompt_cache_retention",  # the TTL of automatic prompt caching's breakpoints (translator.convert.caching)
        # Only rejected, or listed, for values that ask for something Claude cannot give.
        "background",
        "conversation",
        "prompt",
        "top_logprobs",
        "truncation",
    }
)

# Accepted and dropped: no Claude equivalent, and answering without them does not mislead.
IGNORED: Final = frozenset(
    {
        "metadata",  # OpenAI's is a map of strings; Claude's metadata takes only user_id
        "prompt_cache_options",
        "client_metadata",  # Codex's, not in the spec
        "max_tool_calls",
        "context_management",
        "moderation",
    }
)

REJECTED_VALUES: Final = {
    "background": reject_if(bool, "is not supported: this proxy cannot run a response in the background"),
    "conversation": reject_if(
        lambda v: v is not None, "is not supported: this proxy keeps no conversations (send the input items)"
    ),
    "prompt": reject_if(lambda v: v is not None, "is not supported: this proxy has no stored prompt templates"),
}

# Tools by type. Claude runs function tools (a namespace's too) and its own web search; the rest are
# OpenAI-hosted or client tools of shapes Claude has no equivalent for, left out and listed.
WEB_SEARCH_TOOLS: Final = frozenset(
    {"web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11"}
)
CONVERTED_TOOLS: Final = frozenset({"function", "namespace", *WEB_SEARCH_TOOLS})
# A function tool's keys Claude's tool takes (defer_loading, allowed_callers, output_schema ...: listed).
FUNCTION_KEYS: Final = frozenset({"type", "name", "description", "parameters", "strict"})
# include values we honour (the thinking block, for the next turn; see reasoning.py).
INCLUDED: Final = frozenset({"reasoning.encrypted_content"})
# reasoning keys we honour: summary is always the thinking (generate_summary is its deprecated name).
REASONING_KEYS: Final = frozenset({"effort", "summary", "generate_summary"})
# Values of mapped fields that are no-ops, where any other value would be ignored (listed).
_NO_OP: Final[dict[str, tuple[object, ...]]] = {"top_logprobs": (None, 0), "truncation": (None, "disabled")}


def _nested_ignored(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Ignored values and fields inside mapped ones, as (name, first param path). Shapes that are wrong are
    left to the converter, which names them in its own 400."""
    found = [(name, name) for name, no_op in _NO_OP.items() if body.get(name) not in no_op]
    text, reasoning = body.get("text"), body.get("reasoning")
    if isinstance(text, dict) and text.get("verbosity") is not None:
        found.append(("text.verbosity", "text.verbosity"))
    if isinstance(reasoning, dict):
        found += [(f"reasoning.{k}", f"reasoning.{k}") for k, v in reasoning.items() if k not in REASONING_KEYS
                  and v is not None]
    include = body.get("include")
    if isinstance(include, list):
        found += [(f"include {v}" if isinstance(v, str) else "include[]", f"include[{j}]")
                  for j, v in enumerate(include) if not (isinstance(v, str) and v in INCLUDED)]
    return found + _tools_ignored(body.get("tools")) + _input_ignored(body.get("input"))


def _tools_ignored(tools: object) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(kind, str):
            continue  # the converter's 400
        if kind not in CONVERTED_TOOLS:
            found.append((f"tools[type={kind}]", f"tools[{i}].type"))
        elif kind in WEB_SEARCH_TOOLS:
            found += _web_search_ignored(tool, f"tools[{i}]")
        elif kind == "function":
            found += [(f"tools[].{k}", f"tools[{i}].{k}") for k, v in tool.items()
                      if k not in FUNCTION_KEYS and v is not None]
        elif kind == "namespace" and isinstance(tool.get("tools"), list):
            found += [
                (f"tools[].tools[type={inner.get('type')}]", f"tools[{i}].tools[{j}].type")
                for j, inner in enumerate(tool["tools"])
                if isinstance(inner, dict) and inner.get("type") != "function"
            ]
    return found


def _web_search_ignored(tool: Mapping[str, Any], where: str) -> list[tuple[str, str]]:
    """Claude's web search has no search_context_size or content types, and always reaches the live web."""
    found = [(f"tools[].{k}", f"{where}.{k}") for k in ("search_context_size", "search_content_types")
             if tool.get(k) is not None]
    if tool.get("external_web_access") is False:
        found.append(("tools[].external_web_access", f"{where}.external_web_access"))
    return found


def _input_ignored(items: object) -> list[tuple[str, str]]:
    """An image's or file's detail (Claude sizes them itself). Only the request's own input: a stored history was
    screened when it was sent."""
    found: list[tuple[str, str]] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        parts = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else []):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind in ("input_image", "input_file") and part.get("detail") not in (None, "auto"):
                found.append(("input[].content[].detail", f"input[{i}].content[{j}].detail"))
    return found


RESPONSES: Final = FieldPolicy(MAPPED, REJECTED_VALUES, _nested_ignored)
