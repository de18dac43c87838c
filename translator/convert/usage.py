"""Claude usage -> OpenAI usage.

Claude counts cached input apart from ``input_tokens``; OpenAI's ``prompt_tokens`` includes it, with the
cache hits repeated in ``prompt_tokens_details.cached_tokens`` and the cache writes in
``prompt_tokens_details.cache_write_tokens`` (both 0 when Claude sends none). The Claude counts are kept
alongside as well.
"""

from __future__ import annotations

from typing import Any

_PROMPT_DETAILS = ("cached_tokens", "cache_write_tokens")
_MAX_COUNT = 2**53  # far above any real count: sums of a few (n <= 8 choices) stay inside orjson's 64 bits


def _count(value: Any) -> int:
    """A token count as the upstream reported it; anything but a non-negative integer up to ``_MAX_COUNT``
    (a string, a float, a huge number) counts as 0, as in ``translator.server.tokens``."""
    return value if type(value) is int and 0 < value <= _MAX_COUNT else 0  # (type: a bool is no count)


def openai_usage(usage: dict[str, Any]) -> dict[str, Any]:
    inp = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    out = _count(usage.get("output_tokens"))
    prompt = inp + read + write
    result: dict[str, Any] = {
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


def add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Sum two OpenAI usage objects (for ``n`` > 1)."""
    total = {k: a.get(k, 0) + b.get(k, 0) for k in a if isinstance(a[k], int)}
    if "completion_tokens_details" in a or "completion_tokens_details" in b:
        total["completion_tokens_details"] = {"reasoning_tokens": sum(
            u.get("completion_tokens_details", {}).get("reasoning_tokens", 0) for u in (a, b))}
    total["prompt_tokens_details"] = {
        k: a["prompt_tokens_details"][k] + b["prompt_tokens_details"][k] for k in _PROMPT_DETAILS
    }
    return total
