"""Token counts from the usage either route logs (OpenAI's shape or Claude's), for limits and metrics."""

from __future__ import annotations

from typing import Any


def tokens_used(usage: Any) -> int:
    """Total tokens from either shape of usage the routes log (OpenAI's or Claude's)."""
    if not isinstance(usage, dict):
        return 0
    if "total_tokens" in usage:
        return int(usage["total_tokens"] or 0)
    fields = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    return sum(int(usage.get(f) or 0) for f in fields)


def token_kinds(usage: Any) -> dict[str, int]:
    """input / output / cache_read / cache_creation counts, from either shape."""
    if not isinstance(usage, dict):
        return {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    if "prompt_tokens" in usage:
        inp, out = int(usage["prompt_tokens"] or 0) - read - write, int(usage.get("completion_tokens") or 0)
    else:
        inp, out = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {"input": inp, "output": out, "cache_read": read, "cache_creation": write}
