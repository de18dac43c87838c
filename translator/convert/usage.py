"""Claude usage -> OpenAI usage.

Claude counts cached input apart from ``input_tokens``; OpenAI's ``prompt_tokens`` includes it, with the
cache hits repeated in ``prompt_tokens_details.cached_tokens`` and the cache writes in
``prompt_tokens_details.cache_write_tokens`` (both 0 when Claude sends none). The Claude counts are kept
alongside as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, overload

from translator.convert.tables import SERVICE_TIER
from translator.convert.wire import ClaudeUsage, CompletionTokensDetails, CompletionUsage

_PROMPT_DETAILS = ("cached_tokens", "cache_write_tokens")
_MAX_COUNT = 2**53  # far above any real count: sums of a few (n <= 8 choices) stay inside orjson's 64 bits

# Each function has a second form, dict in and dict out, for callers that hold usage as plain JSON objects
# (stream.py and server/openai_route.py, until they take the wire.py types).


def _count(value: Any) -> int:
    """A token count as the upstream reported it; anything but a non-negative integer up to ``_MAX_COUNT``
    (a string, a float, a huge number) counts as 0, as in ``translator.server.tokens``."""
    return value if type(value) is int and 0 < value <= _MAX_COUNT else 0  # (type: a bool is no count)


@overload
def openai_usage(usage: ClaudeUsage) -> CompletionUsage: ...
@overload
def openai_usage(usage: dict[str, Any]) -> dict[str, Any]: ...
def openai_usage(usage: Mapping[str, Any]) -> CompletionUsage | dict[str, Any]:
    inp = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    out = _count(usage.get("output_tokens"))
    prompt = inp + read + write
    result: CompletionUsage = {
        "prompt_tokens": prompt,
        "completion_tokens": out,
        "total_tokens": prompt + out,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
        "cache_read_input_tokens": read,
        "cache_creation_input_tokens": write,
    }
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
        # Claude's thinking tokens are part of output_tokens, as OpenAI's reasoning tokens are of completion.
        result["completion_tokens_details"] = {"reasoning_tokens": _count(details["thinking_tokens"])}
    return result


@overload
def add_usage(a: CompletionUsage, b: CompletionUsage) -> CompletionUsage: ...
@overload
def add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]: ...
def add_usage(a: Mapping[str, Any], b: Mapping[str, Any]) -> CompletionUsage | dict[str, Any]:
    """Sum two OpenAI usage objects (for ``n`` > 1)."""
    total: dict[str, Any] = {k: a.get(k, 0) + b.get(k, 0) for k in a if isinstance(a[k], int)}
    if "completion_tokens_details" in a or "completion_tokens_details" in b:
        reasoning: CompletionTokensDetails = {"reasoning_tokens": sum(
            u.get("completion_tokens_details", {}).get("reasoning_tokens", 0) for u in (a, b))}
        total["completion_tokens_details"] = reasoning
    total["prompt_tokens_details"] = {
        k: a["prompt_tokens_details"][k] + b["prompt_tokens_details"][k] for k in _PROMPT_DETAILS
    }
    return total


def message_usage(message: Mapping[str, Any]) -> dict[str, Any]:
    """A Claude message's usage object as sent ({} without one: its counts are checked where read)."""
    usage = message.get("usage")
    return usage if isinstance(usage, dict) else {}


def sum_claude_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    """Claude usages added up (OpenAI's ``n`` > 1): every count; other fields as the first has them."""
    total = dict(usages[0])
    for usage in usages[1:]:
        for name, value in usage.items():
            if type(value) is int and type(total.get(name, 0)) is int:
                total[name] = total.get(name, 0) + value
    return total


def served_tier(usage: object) -> str | None:
    """The OpenAI name of the tier a Claude usage object says served the request (``tables.SERVICE_TIER``)."""
    tier = usage.get("service_tier") if isinstance(usage, dict) else None
    return SERVICE_TIER[tier] if isinstance(tier, str) and tier in SERVICE_TIER else None
