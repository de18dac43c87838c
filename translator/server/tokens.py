"""Token counts from the usage either route logs (OpenAI's shape or Claude's), for limits and metrics."""

from __future__ import annotations

from typing import Any


def _n(value: Any) -> int:
    """A token count as the upstream reported it; anything but a non-negative integer counts as 0."""
    return value if type(value) is int and value > 0 else 0  # (type: a bool is no count)


def tokens_used(usage: Any) -> int:
    """Total tokens from either shape of usage the routes log (OpenAI's or Claude's)."""
    if not isinstance(usage, dict):
        return 0
    if "total_tokens" in usage:
        return _n(usage["total_tokens"])
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return sum(_n(usage.get(f)) for f in fields)


def token_kinds(usage: Any) -> dict[str, int]:
    """input / output / cache_read / cache_creation counts, from either shape."""
    if not isinstance(usage, dict):
        return {}
    read, write = _n(usage.get("cache_read_input_tokens")), _n(usage.get("cache_creation_input_tokens"))
    if "prompt_tokens" in usage:
        inp, out = max(0, _n(usage["prompt_tokens"]) - read - write), _n(usage.get("completion_tokens"))
    else:
        inp, out = _n(usage.get("input_tokens")), _n(usage.get("output_tokens"))
    return {"input": inp, "output": out, "cache_read": read, "cache_creation": write}
