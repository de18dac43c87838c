"""Every error answered in the caller's API shape: OpenAI's on ``/v1/chat/completions``, Claude's on
``/v1/messages*`` (and on ``/v1/models`` when the caller sent ``anthropic-version``), with the headers that
go with it (``Retry-After``, rate-limit headers, the upstream's request id)."""

from __future__ import annotations

import orjson
from aiohttp import web

from translator.convert import claude_error_body, openai_error_body, openai_status
from translator.errors import (
    BodyTooLarge,
    BudgetExceeded,
    ClientTooSlow,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ProxyOverloaded,
    RateLimited,
    TranslatorError,
    UpstreamStatusError,
)


def is_claude_shape(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/v1/messages"):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in request.headers


# The upstream's request id, as each shape's SDK reads it (anthropic: request-id; openai: x-request-id).
REQUEST_ID_HEADER = {True: "request-id", False: "x-request-id"}


def error_response(request: web.Request, err: TranslatorError) -> web.Response:
    claude = is_claude_shape(request)
    headers = _error_headers(err, claude)
    if claude:
        status, body = err.status, orjson.dumps(claude_error_body(err))
    else:
        status, body = openai_status(err), orjson.dumps(openai_error_body(err))
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _error_headers(err: TranslatorError, claude: bool) -> dict[str, str]:
    headers: dict[str, str] = {}
    if isinstance(err, ProxyOverloaded):
        headers["Retry-After"] = "1"
    if isinstance(err, BudgetExceeded):  # (on the OpenAI route a 429: without this the openai SDKs would retry)
        headers["x-should-retry"] = "false"
    if isinstance(err, RateLimited):
        headers.update(err.headers)
        headers.setdefault("Retry-After", str(int(err.retry_after)))
    if isinstance(err, UpstreamStatusError):
        if err.retry_after:
            headers["Retry-After"] = err.retry_after
        if err.request_id:  # the upstream's id (what its support asks for), under the name each SDK reads
            headers[REQUEST_ID_HEADER[claude]] = err.request_id
    return headers


_HTTP_ERRORS: dict[int, type[InvalidRequest]] = {
    404: NotFound,
    405: MethodNotAllowed,
    408: ClientTooSlow,
    413: BodyTooLarge,
    431: HeadersTooLarge,
}


def http_error(exc: web.HTTPException) -> TranslatorError:
    """aiohttp's own 4xx (404, 405, 413 ...) as one of ours, so it too leaves in the caller's shape."""
    return _HTTP_ERRORS.get(exc.status, InvalidRequest)(exc.reason)
