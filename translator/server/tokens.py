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
    # (_n's test, once per count in one comprehension: four calls fewer on every request)
    openai = "prompt_tokens" in usage
    inp, out, read, write = [
        v if type(v) is int and v > 0 else 0 for v in map(usage.get, _OPENAI_COUNTS if openai else _CLAUDE_COUNTS)
    ]
    if openai:
        inp = max(0, inp - read - write)
    return {"input": inp, "output": out, "cache_read": read, "cache_creation": write}


_CACHE_COUNTS = ("cache_read_input_tokens", "cache_creation_input_tokens")
_OPENAI_COUNTS = ("prompt_tokens", "completion_tokens", *_CACHE_COUNTS)
_CLAUDE_COUNTS = ("input_tokens", "output_tokens", *_CACHE_COUNTS)
