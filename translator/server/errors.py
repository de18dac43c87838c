"""Every error answered in the caller's API shape: OpenAI's on ``/v1/chat/completions``, Claude's on
``/v1/messages*`` (and on ``/v1/models`` when the caller sent ``anthropic-version``), with the headers that
go with it (``Retry-After``, rate-limit headers, the upstream's request id)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadStatusLine,
    ContentLengthError,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)
from aiohttp.web_protocol import RequestPayloadError

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
from translator.server.context import UPSTREAM_REQUEST_ID


def is_claude_shape(request: web.Request) -> bool:
    return is_claude_path(request.path, request.headers)


def is_claude_path(path: str, headers: Mapping[str, str]) -> bool:
    if path.startswith("/v1/messages"):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in headers


def error_response(request: web.Request, err: TranslatorError) -> web.Response:
    return error_response_for(err, claude=is_claude_shape(request))


def error_response_for(err: TranslatorError, *, claude: bool) -> web.Response:
    """``err`` in Claude's shape, or OpenAI's."""
    headers = _error_headers(err)
    if claude:
        status, body = err.status, orjson.dumps(claude_error_body(err))
    else:
        status, body = openai_status(err), orjson.dumps(openai_error_body(err))
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _error_headers(err: TranslatorError) -> dict[str, str]:
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
        if err.request_id:  # the upstream's id (what its support asks for); x-request-id is ours
            headers[UPSTREAM_REQUEST_ID] = err.request_id
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


# What each parser error says, by its class (the most specific first): aiohttp's own messages quote the
# line they choke on.
_CAUSES: list[tuple[type[BadHttpMessage], type[InvalidRequest], str]] = [
    (LineTooLong, HeadersTooLarge, "the request line or a header is longer than the limit (server.max_header_bytes)"),
    (BadStatusLine, InvalidRequest, "the request line is not HTTP"),  # (BadHttpMethod too)
    (InvalidURLError, InvalidRequest, "the request target is not a valid URL"),
    (TransferEncodingError, InvalidRequest, "the body's chunked encoding is malformed"),
    (ContentLengthError, InvalidRequest, "the body does not match its Content-Length"),
]
_MALFORMED = "malformed HTTP request"
# The parser's own reason, when it is plain words (llhttp's "Invalid header value char", "Invalid character in
# chunk size"): the text before its first colon, two words or more, with no digit and no quote (aiohttp quotes
# the values it names; a key has digits).
_REASON = re.compile(r"[A-Za-z][A-Za-z/-]*(?: [A-Za-z][A-Za-z/-]*){1,12}")


def parse_error(exc: BaseException | None) -> InvalidRequest:
    """aiohttp's parser error (``RequestPayloadError`` wraps one met in a body) as ours, its message naming
    the cause and never quoting the request."""
    if isinstance(exc, RequestPayloadError):
        exc = exc.__cause__
    for kind, error, cause in _CAUSES:
        if isinstance(exc, kind):
            return error(f"{_MALFORMED}: {cause}")
    if isinstance(exc, BadHttpMessage):
        reason = exc.message.split("\n", 1)[0].split(":", 1)[0].strip()
        if _REASON.fullmatch(reason):
            return InvalidRequest(f"{_MALFORMED}: {reason[0].lower()}{reason[1:]}")
    return InvalidRequest(_MALFORMED)
