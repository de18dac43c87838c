"""What happens to every OpenAI Chat Completions request field: mapped, ignored, or rejected.

This table is the README's parameter table. An ignored field is reported to the caller in the
``x-translator-ignored`` response header (and is a 400 in strict mode); a rejected value is a 400 that
names the param, because answering without it would mislead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from translator.errors import InvalidRequest

MAPPED: Final = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "stream_options",
        "tools",
        "functions",
        "tool_choice",
        "function_call",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "thinking",
        "response_format",
        "n",
        "web_search_options",
        # Only rejected when asking for something Claude cannot give; their harmless values are no-ops.
        "logprobs",
        "top_logprobs",
        "audio",
        "modalities",
    }
)

# Accepted and dropped: no Claude equivalent, and answering without them does not mislead.
IGNORED: Final = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "logit_bias",
        "store",
        "metadata",
        "service_tier",
        "prediction",
        "verbosity",
        "prompt_cache_key",
        "prompt_cache_retention",
        "prompt_cache_options",
        "safety_identifier",
        "moderation",
    }
)


def _reject_if(check: Callable[[Any], bool], why: str) -> Callable[[str, Any], None]:
    def rule(name: str, value: Any) -> None:
        if check(value):
            raise InvalidRequest(f"'{name}' {why}", param=name, code="unsupported_parameter")

    return rule


# Values of mapped fields that Claude cannot honour.
REJECTED_VALUES: Final[dict[str, Callable[[str, Any], None]]] = {
    "logprobs": _reject_if(bool, "is not supported: Claude models do not return log probabilities"),
    "top_logprobs": _reject_if(
        lambda v: v not in (None, 0), "is not supported: Claude models do not return log probabilities"
    ),
    "audio": _reject_if(lambda v: v is not None, "is not supported: Claude models do not produce audio"),
    "modalities": _reject_if(
        lambda v: isinstance(v, list) and "audio" in v, "is not supported: Claude models do not produce audio"
    ),
}


def screen(body: dict[str, Any], *, strict: bool) -> list[str]:
    """Raise for rejected values; return the ignored fields present (sorted), or raise in strict mode."""
    for name, rule in REJECTED_VALUES.items():
        if name in body:
            rule(name, body[name])
    ignored = sorted(k for k in body if k not in MAPPED)
    if strict and ignored:
        raise InvalidRequest(
            f"'{ignored[0]}' has no Claude equivalent and this proxy runs in strict mode",
            param=ignored[0],
            code="unsupported_parameter",
        )
    return ignored
