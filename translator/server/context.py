"""What one request carries from its route to its log line, its metrics and the rate limiter.

The middleware makes a ``RequestContext`` for every request (``request[CONTEXT]``); the route fills it in
(the model, the upstream it reached, the usage, ...); when the request ends, the log line, the metrics and
the rate limiter's release each read it. Usage is kept in one shape, Claude's, whatever the route: the log
line shows it in the caller's API shape.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from translator.convert.responses_response import response_usage
from translator.convert.usage import openai_usage
from translator.errors import TranslatorError

Route = Literal["openai", "claude", "responses"]
# How a stream that went out ended: its last event relayed; an error event after content (the upstream's
# error, a reset, a stall, a broken event); the client went away; shutdown's grace period ran out.
StreamEnd = Literal["completed", "upstream_error", "client_gone", "shutdown"]


# Every answer carries our id for the request as ``x-request-id`` (the openai SDKs show it as
# ``_request_id``), and the upstream's, when one answered, as ``request-id`` (where the anthropic SDKs read
# it); the request's log line has both.
REQUEST_ID = "x-request-id"
UPSTREAM_REQUEST_ID = "request-id"


def _request_id() -> str:
    return f"{random.getrandbits(64):016x}"  # the log's id for the request: not a secret


@dataclass(slots=True)
class RequestContext:
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    request_id: str = field(default_factory=_request_id)
    route: Route | None = None  # set by an API route: only those count in the metrics
    key: str | None = None  # the client key's name (never the key)
    forward_key: bool = True  # may the client's own key go upstream (not when it is one of our keys)
    admitted: bool = False  # let in by the gate: its usage counts for its key (and its budget) when it ends
    model: str | None = None  # as asked
    upstream_model: str | None = None
    stream: bool | None = None
    n: int | None = None
    upstream: str | None = None  # the last upstream tried
    attempts: int | None = None
    ttft_ms: float | None = None  # when the first content reached the client (streams)
    usage: dict[str, Any] | None = None  # Claude's shape: input_tokens, output_tokens, cache_*_input_tokens
    stop_reason: str | None = None
    stream_error: str | None = None  # the error type a relayed stream ended with
    stream_end: StreamEnd | None = None  # how a relayed stream ended, once its head went out
    error: str | None = None  # the error type the request was answered with
    cause: str | None = None  # what was wrong with a request aiohttp could not parse (never a value of it)
    error_detail: str | None = None  # an upstream failure's whole text, which its answer tells without addresses
    upstream_request_id: str | None = None  # the upstream's id for the request (its ``request-id``)
    shutdown: bool = False  # cut by the end of the shutdown grace period
    cancelled: bool = False  # the client went away
    status: int = 500  # until a response is made; an exception that escapes is a bug
    extra_headers: dict[str, str] = field(default_factory=dict)  # added to the response, whatever it is
    prepared: bool = False  # a streamed response's head went out: no other answer is possible now
    stream_response: web.StreamResponse | None = None  # that response, once prepared

    def attempted(self, upstream: str, attempt: int) -> None:
        """The router's report of each attempt."""
        self.upstream, self.attempts = upstream, attempt

    def stamp(self, headers: MutableMapping[str, str]) -> None:
        """What every answer carries besides its route's headers: the request's extra headers (its rate
        limits) and our id for it. The upstream's id, which the route passed on, is noted for the log line."""
        headers.update(self.extra_headers)
        headers[REQUEST_ID] = self.request_id
        self.upstream_request_id = headers.get(UPSTREAM_REQUEST_ID, self.upstream_request_id)

    def failed_with(self, err: TranslatorError) -> None:
        """An error the request was answered with, or a relayed stream ended in: its whole text goes to the
        log line when the client's says less (``<upstream>`` for the upstream's address)."""
        if err.detail != err.message:
            self.error_detail = err.detail

    def first_token(self) -> None:
        self.ttft_ms = round((time.perf_counter() - self.started) * 1000, 2)

    def latency(self) -> float:
        return time.perf_counter() - self.started

    def log_fields(self) -> dict[str, Any]:
        """The request's log line: what is known of it, and never a key or a prompt."""
        fields: dict[str, Any] = {"request_id": self.request_id, "method": self.method, "path": self.path}
        for name in _LOGGED:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        if self.usage is not None:
            fields["usage"] = _USAGE_SHAPE.get(self.route, dict)(self.usage)
        if self.shutdown:
            fields["error"] = "shutdown"
        if self.cancelled:
            fields["cancelled"] = True
        fields["status"] = self.status
        fields["latency_ms"] = round(self.latency() * 1000, 2)
        return fields


_LOGGED = ("route", "key", "model", "upstream_model", "stream", "n", "upstream", "upstream_request_id", "attempts",
           "ttft_ms", "stop_reason", "stream_error", "stream_end", "error", "error_detail", "cause")

# The usage in the log line, in the caller's API's shape (Claude's, as kept, on the Claude route).
_USAGE_SHAPE: dict[Route | None, Callable[[dict[str, Any]], Any]] = {
    "openai": openai_usage,
    "responses": response_usage,
}

CONTEXT = web.RequestKey("context", RequestContext)
