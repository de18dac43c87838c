"""Render an error of our tree in either API's shape.

OpenAI: ``{"error": {"message", "type", "param", "code"}}`` (openapi.yaml, ErrorResponse).
Claude: ``{"type": "error", "error": {"type", "message"}}`` (Claude API "Errors").
"""

from __future__ import annotations

from typing import Any

from translator.convert.tables import OPENAI_ERROR, OPENAI_ERROR_DEFAULT, OPENAI_STATUS, OPENAI_TYPE_BY_CODE
from translator.convert.wire import OpenAIError, OpenAIErrorResponse
from translator.errors import TranslatorError, UpstreamStatusError


def openai_error_body(err: TranslatorError) -> OpenAIErrorResponse:
    return openai_error_from_claude(err.claude_type, err.message, param=err.param, code=err.code or _code(err))


# Claude refuses a prompt over the model's context window as an invalid_request_error saying "prompt is too
# long: N tokens > M maximum"; OpenAI clients know that case by its code (Codex, for one, handles it apart).
_TOO_LONG = "prompt is too long"


def _code(err: TranslatorError) -> str | None:
    if err.claude_type == "invalid_request_error" and err.message.startswith(_TOO_LONG):
        return "context_length_exceeded"
    return None


def openai_error_from_claude(
    claude_type: str, message: str, *, param: str | None = None, code: str | None = None
) -> OpenAIErrorResponse:
    if claude_type in OPENAI_ERROR:  # (narrows the string to a ClaudeErrorType; .get would take none but those)
        oa_type, oa_code = OPENAI_ERROR[claude_type]
    else:
        oa_type, oa_code = OPENAI_ERROR_DEFAULT
    if code in OPENAI_TYPE_BY_CODE:
        oa_type = OPENAI_TYPE_BY_CODE[code]
    error: OpenAIError = {"message": message, "type": oa_type, "param": param, "code": code or oa_code}
    return {"error": error}


def openai_status(err: TranslatorError) -> int:
    if err.openai_status is not None:
        return err.openai_status
    return OPENAI_STATUS.get(err.status, err.status)


def claude_error_body(err: TranslatorError) -> dict[str, Any]:
    if isinstance(err, UpstreamStatusError) and err.body.get("type") == "error":
        return err.body  # passed on as the upstream sent it
    return {"type": "error", "error": {"type": err.claude_type, "message": err.message}}
