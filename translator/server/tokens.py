"""Token counts from a request's usage (Claude's shape, as its context keeps it), for limits and metrics."""

from __future__ import annotations

from typing import Any

_KINDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}


def _n(value: Any) -> int:
    """A token count as the upstream reported it; anything but a non-negative integer counts as 0."""
    return value if type(value) is int and value > 0 else 0  # (type: a bool is no count)


def token_kinds(usage: object) -> dict[str, int]:
    """input / output / cache_read / cache_creation counts ({} when there is no usage at all)."""
    if not isinstance(usage, dict):
        return {}
    return {kind: _n(usage.get(field)) for kind, field in _KINDS.items()}


def tokens_used(usage: object) -> int:
    """All the tokens a request used, cached input included: what a key's tokens-per-minute limit counts."""
    return sum(token_kinds(usage).values())
