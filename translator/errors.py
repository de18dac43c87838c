"""The proxy's one error tree. Each class knows its HTTP status and its Claude error type;
rendering in a caller's API shape happens once, in ``translator.convert.errors``.

    TranslatorError                 (500, api_error)
     ├── InvalidRequest             (400, invalid_request_error)  bad client input; names the param
     │    ├── BodyTooLarge          (413, request_too_large)
     │    ├── ClientTooSlow         (408)  the request body did not arrive in time
     │    ├── NotFound              (404, not_found_error)  no such route, or no upstream serves the model
     │    ├── MethodNotAllowed      (405)
     │    └── HeadersTooLarge       (431)
     ├── AuthenticationFailed       (401, authentication_error)
     ├── PermissionDenied           (403, permission_error)  the key may not use that model
     ├── RateLimited                (429, rate_limit_error)  a client key's own limits; carries headers
     ├── BudgetExceeded             (400, invalid_request_error; OpenAI: 429 insufficient_quota)  a key's budget
     ├── ProxyOverloaded            (503, overloaded_error)  too many requests in flight here
     ├── UpstreamStatusError        (the upstream's status and error, passed on as sent)
     ├── UpstreamUnavailable        (502, api_error)  refused, reset, or an answer we cannot read
     │    └── UpstreamProtocolError (502)  an answer that breaks the Claude API's shapes
     └── UpstreamTimeout            (504, timeout_error)

This module imports nothing from aiohttp so the pure conversion layer can raise these too.

An error's ``message`` is what the client reads. An upstream's failure (502, 504) is told without the
upstream's address: ``detail`` keeps the whole text, host and all, for the log line only.
"""

from __future__ import annotations

import re
from typing import Any


class TranslatorError(Exception):
    status: int = 500
    claude_type: str = "api_error"
    openai_status: int | None = None  # the status on the OpenAI (and Responses) routes, when not ``status``

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = message  # the whole text, for the log line: the message may leave things out
        self.param = param
        self.code = code


# Where an upstream is named in aiohttp's failures: a URL ("Connection timeout to host http://10.0.0.5/..."),
# "host 10.0.0.5:443" (ClientConnectorError), a socket address ("('10.0.0.5', 443)").
_ADDRESSES = re.compile(
    r"[a-z][a-z0-9+.-]*://[^\s'\"\])>,]+"
    r"|(?<=host )\[?[\w.:%-]+\]?"
    r"|\('[\w.:%-]+', \d+(?:, \d+, \d+)?\)",
    re.IGNORECASE,
)
UPSTREAM_ADDRESS = "<upstream>"


def without_addresses(text: str) -> str:
    """``text`` with every upstream address in it replaced by ``<upstream>``: the client learns what went
    wrong, not where the internal upstreams are."""
    return _ADDRESSES.sub(UPSTREAM_ADDRESS, text)


class InvalidRequest(TranslatorError):
    status = 400
    claude_type = "invalid_request_error"


class BodyTooLarge(InvalidRequest):
    status = 413
    claude_type = "request_too_large"


class ClientTooSlow(InvalidRequest):
    status = 408


class NotFound(InvalidRequest):
    status = 404
    claude_type = "not_found_error"


class MethodNotAllowed(InvalidRequest):
    status = 405


class HeadersTooLarge(InvalidRequest):
    status = 431


class ProxyOverloaded(TranslatorError):
    status = 503
    claude_type = "overloaded_error"


class AuthenticationFailed(TranslatorError):
    status = 401
    claude_type = "authentication_error"


class PermissionDenied(TranslatorError):
    status = 403
    claude_type = "permission_error"


class RateLimited(TranslatorError):
    status = 429
    claude_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: float, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code="rate_limit_exceeded")
        self.retry_after = retry_after
        self.headers = headers or {}


class BudgetExceeded(TranslatorError):
    """A client key used its budget for the UTC day or month. Each shape answers as its API answers an account
    out of credit, which its SDK does not retry: Claude 400 ``invalid_request_error`` ("Your credit balance is
    too low ..."), OpenAI 429 ``insufficient_quota`` (its type and code). ``x-should-retry: false`` goes with
    it (``translator.server.errors``), which both SDKs obey before looking at the status."""

    status = 400
    claude_type = "invalid_request_error"
    openai_status = 429

    def __init__(self, message: str) -> None:
        super().__init__(message, code="insufficient_quota")


class UpstreamUnavailable(TranslatorError):
    status = 502
    claude_type = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = without_addresses(message)


class UpstreamProtocolError(UpstreamUnavailable):
    """The upstream's answer does not have the Claude API's shape (a message, an event)."""


class UpstreamTimeout(TranslatorError):
    status = 504
    claude_type = "timeout_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = without_addresses(message)


class UpstreamStatusError(TranslatorError):
    """The upstream answered with an error status and a Claude error body (or something we wrapped as one)."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        *,
        retry_after: str | None = None,
        request_id: str | None = None,
    ) -> None:
        raw = body.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        message = str(error.get("message") or f"upstream answered HTTP {status}")
        super().__init__(message)
        self.status = status
        self.claude_type = str(error.get("type") or "api_error")
        self.body = body
        self.retry_after = retry_after
        self.request_id = request_id
