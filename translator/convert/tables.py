"""Enum-to-enum mappings between the two APIs, as tables.

Sources: Claude Messages API reference (stop_reason, tool_choice, error types) and OpenAI's
openapi.yaml (finish_reason, tool_choice, error object). Keys and values are typed with the vocabularies
in ``wire.py``, so an entry misspelt on either side fails mypy; a string from the wire is narrowed to a key
(``if value in TABLE``) before it is looked up.
"""

from __future__ import annotations

from typing import Final

from translator.convert.wire import (
    ClaudeErrorType,
    ClaudeServiceTier,
    ClaudeToolChoiceType,
    Effort,
    FinishReason,
    IncompleteReason,
    OpenAIErrorType,
    ReasoningEffort,
    ResponseErrorCode,
    StopReason,
    ToolChoiceMode,
)

# Claude stop_reason -> OpenAI finish_reason.
# pause_turn: the routes resume a paused turn themselves (convert/pause.py); one still paused after the last
# round they allow ends as far as an OpenAI client can act on it.
# model_context_window_exceeded: generation stopped at the context limit, which OpenAI calls "length".
FINISH_REASON: Final[dict[StopReason, FinishReason]] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}
FINISH_REASON_DEFAULT: Final[FinishReason] = "stop"

# Claude stop_reason -> the Responses incomplete_details.reason; a stop not listed completes the response.
# Only a length stop leaves it incomplete: model_context_window_exceeded stopped the output at the context
# limit, and the spec's enum has no closer reason for that than max_output_tokens. A refusal is a completed
# response with a refusal part, as OpenAI's own are; pause_turn (still paused after the rounds the route resumes,
# convert/pause.py) completes it as far as a client can act on it.
RESPONSE_INCOMPLETE: Final[dict[StopReason, IncompleteReason]] = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
}

# OpenAI service_tier (asked for) -> Claude service_tier. Claude's "auto", its default, is priority capacity
# when the organization has it, else standard: what "auto", "priority", "fast" and "scale" (committed capacity)
# ask for, and left unsent. "default" asks for standard capacity. Not listed (flex, ultrafast, ...): no Claude
# tier is like it; the request runs on Claude's default and says so.
CLAUDE_SERVICE_TIER: Final[dict[str, ClaudeServiceTier]] = {
    "auto": "auto",
    "priority": "auto",
    "fast": "auto",
    "scale": "auto",
    "default": "standard_only",
}

# Claude usage.service_tier (the tier that served the request) -> the OpenAI service_tier. Claude's batch
# tier has no OpenAI name and never serves these routes: an unknown tier is not reported (a chat completion
# leaves service_tier out; a Responses object keeps the request's).
SERVICE_TIER: Final[dict[str, str]] = {"standard": "default", "priority": "priority"}

# OpenAI string tool_choice -> Claude tool_choice type.
TOOL_CHOICE: Final[dict[ToolChoiceMode, ClaudeToolChoiceType]] = {"auto": "auto", "none": "none", "required": "any"}

# OpenAI reasoning_effort -> Claude thinking budget_tokens (None: thinking stays off).
REASONING_BUDGET: Final[dict[ReasoningEffort, int | None]] = {
    "none": None,
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 16384,
    "xhigh": 32768,
}
# OpenAI reasoning_effort -> Claude output_config.effort, for models with adaptive thinking (4.6 and later).
REASONING_EFFORT: Final[dict[ReasoningEffort, Effort]] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "max",
}
MIN_THINKING_BUDGET: Final = 1024
# With thinking on, Claude accepts top_p only from 0.95 to 1 (extended thinking, "Feature compatibility").
MIN_THINKING_TOP_P: Final = 0.95

# Claude error type -> (OpenAI error type, OpenAI error code).
OPENAI_ERROR: Final[dict[ClaudeErrorType, tuple[OpenAIErrorType, str | None]]] = {
    "invalid_request_error": ("invalid_request_error", None),
    "authentication_error": ("authentication_error", "invalid_api_key"),
    "permission_error": ("permission_error", None),
    "not_found_error": ("invalid_request_error", "not_found"),
    "request_too_large": ("invalid_request_error", "request_too_large"),
    "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
    "api_error": ("server_error", None),
    "overloaded_error": ("server_error", "overloaded"),
    "timeout_error": ("timeout_error", "timeout"),
}
OPENAI_ERROR_DEFAULT: Final[tuple[OpenAIErrorType, str | None]] = ("server_error", None)
# Error codes whose OpenAI type is their own: an account out of credit is {"type": "insufficient_quota",
# "code": "insufficient_quota"} with status 429, which OpenAI clients tell apart from a rate limit by these.
OPENAI_TYPE_BY_CODE: Final[dict[str | None, OpenAIErrorType]] = {"insufficient_quota": "insufficient_quota"}

# Claude error type -> the Responses error code of a failed response (ResponseErrorCode, a closed enum: only
# rate limits and bad input have codes of their own, anything else is the server's).
RESPONSE_ERROR_CODE: Final[dict[ClaudeErrorType, ResponseErrorCode]] = {
    "invalid_request_error": "invalid_prompt",
    "request_too_large": "invalid_prompt",
    "rate_limit_error": "rate_limit_exceeded",
}
RESPONSE_ERROR_CODE_DEFAULT: Final[ResponseErrorCode] = "server_error"

# Upstream HTTP status -> the status an OpenAI client gets. 529 is Anthropic's own "overloaded"; OpenAI
# clients know 503 as "retry later" (the openai SDKs retry any 5xx, other clients only the standard ones).
OPENAI_STATUS: Final[dict[int, int]] = {529: 503}

# Claude error type -> HTTP status, for errors that arrive inside a stream (no status of their own).
CLAUDE_ERROR_STATUS: Final[dict[ClaudeErrorType, int]] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
