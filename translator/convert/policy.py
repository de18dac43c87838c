"""What happens to every OpenAI Chat Completions request field: mapped, ignored, or rejected.

This table is the README's parameter table. An ignored field is reported to the caller in the
``x-translator-ignored`` response header (and is a 400 in strict mode); a rejected value is a 400 that
names the param, because answering without it would mislead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from translator.convert.wire import ChatCompletionRequest
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
        "safety_identifier",  # (the field that replaces user: metadata.user_id too)
        "service_tier",  # as Claude's (tables.CLAUDE_SERVICE_TIER); the completion reports the tier that served
        "reasoning_effort",
        "thinking",
        "response_format",
        "n",
        "web_search_options",
        "prompt_cache_key",  # stickiness: the conversation keeps its upstream's prompt cache
        "prompt_cache_retention",  # the TTL of automatic prompt caching's breakpoints (translator.convert.caching)
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
        "prediction",
        "verbosity",
        "prompt_cache_options",
        "moderation",
    }
)


def reject_if(check: Callable[[Any], bool], why: str) -> Callable[[str, Any], None]:
    def rule(name: str, value: Any) -> None:
        if check(value):
            raise InvalidRequest(f"'{name}' {why}", param=name, code="unsupported_parameter")

    return rule


# Values of mapped fields that Claude cannot honour.
Rejectable = Literal["logprobs", "top_logprobs", "audio", "modalities"]
REJECTED_VALUES: Final[dict[Rejectable, Callable[[str, Any], None]]] = {
    "logprobs": reject_if(bool, "is not supported: Claude models do not return log probabilities"),
    "top_logprobs": reject_if(
        lambda v: v not in (None, 0), "is not supported: Claude models do not return log probabilities"
    ),
    "audio": reject_if(lambda v: v is not None, "is not supported: Claude models do not produce audio"),
    "modalities": reject_if(
        lambda v: isinstance(v, list) and "audio" in v, "is not supported: Claude models do not produce audio"
    ),
}


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """One API's request fields: those mapped (every other top-level field is ignored), the rules that
    reject values of mapped fields, and the finder of ignored fields nested in mapped ones, as (name, first
    param path) pairs."""

    mapped: frozenset[str]
    rejected: Mapping[Any, Callable[[str, Any], None]]  # (keys: the field names, as a table types them)
    nested: Callable[[Any], list[tuple[str, str]]]


def screen(body: Mapping[str, Any], *, strict: bool, policy: FieldPolicy | None = None) -> list[str]:
    """Raise for rejected values; return the ignored fields present (sorted), or raise in strict mode.
    ``policy``: the API's (Chat Completions' by default)."""
    policy = policy or CHAT
    if not policy.rejected.keys().isdisjoint(body):
        for field, rule in policy.rejected.items():
            if field in body:
                rule(field, body[field])
    extra = body.keys() - policy.mapped
    # (a field sent as null asks for nothing, as OpenAI reads it: nothing is lost, nothing to report)
    ignored = [(k, k) for k in sorted(extra) if body[k] is not None] if extra else []
    ignored += policy.nested(body)
    if not ignored:
        return []
    if strict:
        param = ignored[0][1]
        raise InvalidRequest(
            f"'{param}' has no Claude equivalent and this proxy runs in strict mode",
            param=param,
            code="unsupported_parameter",
        )
    return list(dict.fromkeys(name for name, _ in ignored))


def _nested_ignored(body: ChatCompletionRequest) -> list[tuple[str, str]]:
    """Fields inside messages and options with no Claude equivalent, as (name, first param path). Shapes
    that are wrong are left to the converter, which names them in its own 400."""
    found: list[tuple[str, str]] = []
    # (each message read as a plain mapping: these keys are looked for where the message types have none)
    messages: Sequence[Mapping[str, Any]] | None = body.get("messages")
    for i, msg in enumerate(messages if isinstance(messages, list) else []):
        if not isinstance(msg, dict):
            continue
        # (membership first: most messages have none of these, and a long history is checked message by message)
        if "name" in msg and msg["name"] is not None and msg.get("role") != "function":  # (it pairs a result)
            found.append(("messages[].name", f"messages[{i}].name"))
        if ("reasoning_content" in msg and msg["reasoning_content"] and msg.get("role") == "assistant"
                and not msg.get("thinking_blocks")):  # (beside them it is their text: nothing is lost)
            found.append(("messages[].reasoning_content", f"messages[{i}].reasoning_content"))  # unsigned: refused
        parts = msg.get("content")
        if isinstance(parts, list):
            for j, part in enumerate(parts):
                image = part.get("image_url") if isinstance(part, dict) else None
                if isinstance(image, dict) and image.get("detail") not in (None, "auto"):
                    found.append(
                        ("messages[].content[].image_url.detail", f"messages[{i}].content[{j}].image_url.detail")
                    )
    options = body.get("web_search_options")
    if isinstance(options, dict) and options.get("search_context_size") is not None:
        found.append(("web_search_options.search_context_size", "web_search_options.search_context_size"))
    return found


CHAT: Final = FieldPolicy(MAPPED, REJECTED_VALUES, _nested_ignored)
