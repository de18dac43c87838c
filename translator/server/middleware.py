"""Error rendering and the per-request log line.

Every error leaves in the caller's API shape: OpenAI's on ``/v1/chat/completions``, Claude's on
``/v1/messages*`` (and on ``/v1/models`` when the caller sent ``anthropic-version``). Nothing leaves as a
traceback; an unexpected exception is logged and answered 500 in the right shape.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from translator.convert import claude_error_body, openai_error_body, openai_status
from translator.convert.tables import CLAUDE_ERROR_STATUS
from translator.errors import ProxyOverloaded, RateLimited, TranslatorError, UpstreamStatusError
from translator.gateway.metrics import Metrics
from translator.log import log, log_request
from translator.server.keys import CLOSING, INFLIGHT, METRICS, SETTINGS
from translator.server.tokens import token_kinds

LOG = web.RequestKey("log", dict)  # fields the handler adds to the request's log line
STARTED = web.RequestKey("started", float)  # time.perf_counter() when the request came in
FORWARD_KEY = web.RequestKey("forward_key", bool)  # may the client's own key go upstream?
EXTRA_HEADERS = web.RequestKey("extra_headers", dict)  # added to the response, whatever it is
PREPARED = web.RequestKey("prepared", bool)  # the response's head went out: no other answer is possible


async def prepare_stream(request: web.Request, response: web.StreamResponse) -> None:
    """A streamed answer's head goes out, with the request's extra headers (its rate limits); from here
    on an error ends the stream, as no other answer is possible. (Any other response gets the extra
    headers when its handler returns.)"""
    extra = request.get(EXTRA_HEADERS)
    if extra:
        response.headers.update(extra)
    request[PREPARED] = True
    await response.prepare(request)


def session_key(request: web.Request, app: web.Application, from_body: object) -> str | None:
    """What names a conversation, for upstream stickiness: the body's user id, else a session header."""
    if isinstance(from_body, str) and from_body:
        return from_body
    for name in app[SETTINGS].routing.session_headers:
        value = request.headers.get(name)
        if value:
            return value
    return None


def is_claude_shape(request: web.Request) -> bool:
    path = request.path
    if path.startswith("/v1/messages"):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in request.headers


# The upstream's request id, as each shape's SDK reads it (anthropic: request-id; openai: x-request-id).
REQUEST_ID_HEADER = {True: "request-id", False: "x-request-id"}


def error_response(request: web.Request, err: TranslatorError) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(err, ProxyOverloaded):
        headers["Retry-After"] = "1"
    if isinstance(err, RateLimited):
        headers.update(err.headers)
        headers.setdefault("Retry-After", str(int(err.retry_after)))
    if isinstance(err, UpstreamStatusError):
        if err.retry_after:
            headers["Retry-After"] = err.retry_after
        if err.request_id:  # the upstream's id (what its support asks for), under the name each SDK reads
            headers[REQUEST_ID_HEADER[is_claude_shape(request)]] = err.request_id
    if is_claude_shape(request):
        status, body = err.status, claude_error_body(err)
    else:
        status, body = openai_status(err), openai_error_body(err)
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


_STATUS_TYPE = {status: kind for kind, status in CLAUDE_ERROR_STATUS.items()}


def http_error(exc: web.HTTPException) -> TranslatorError:
    """aiohttp's own 4xx (404, 405, 413 ...) as one of ours, so it too leaves in the caller's shape."""
    err = TranslatorError(exc.reason)
    err.status = exc.status
    err.claude_type = _STATUS_TYPE.get(exc.status, "invalid_request_error")
    return err


_getrandbits = random.getrandbits


@web.middleware
async def handle_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one layer around every request: its log line and metrics however it ended, the in-flight
    bound, and every error answered once, in the caller's API shape. (One coroutine: every await of a
    request resumes through each layer around it.)"""
    started = time.perf_counter()
    # The log's id for the request (not a secret: random's generator, no system call per request; the
    # random module reseeds it in a forked worker)
    fields: dict[str, Any] = {"request_id": f"{_getrandbits(64):016x}", "method": request.method, "path": request.path}
    request[LOG] = fields
    request[STARTED] = started
    status = 500  # an exception that escapes the error handling: a bug, logged there with its traceback
    task = None
    app = request.app  # (a property of a property: looked up once)
    try:
        try:
            task = _admitted(request, app)
            response = await handler(request)
        except asyncio.CancelledError:
            if not (app[CLOSING].is_set() and not request.get(PREPARED)):
                raise
            # Shutdown's grace period ran out before this request could answer: say so (clients retry a
            # 503) rather than cutting the connection.
            fields["error"] = "shutdown"
            response = error_response(request, ProxyOverloaded("the proxy is shutting down; retry the request"))
        except ConnectionResetError:
            raise
        except Exception as exc:
            response = _error_answer(request, exc)
        finally:
            if task is not None:
                app[INFLIGHT].discard(task)
        extra = request.get(EXTRA_HEADERS)
        if extra and not response.prepared:  # (a stream's went out with its head: prepare_stream)
            response.headers.update(extra)
        status = response.status
        return response
    except (asyncio.CancelledError, ConnectionResetError):
        fields["cancelled"] = True  # the client went away; the handler was cancelled with it
        status = 499
        raise
    finally:
        latency = time.perf_counter() - started
        fields["status"] = status
        fields["latency_ms"] = round(latency * 1000, 2)
        log_request(fields)
        if "route" in fields:
            record_metrics(app[METRICS], fields, latency)


def _error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """A handler's exception as the answer, in the caller's shape; raised again when none can be given."""
    if isinstance(exc, TranslatorError):
        request[LOG]["error"] = exc.claude_type
        return error_response(request, exc)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return error_response(request, http_error(exc))
    log.exception("unhandled error", **request[LOG])
    if request.get(PREPARED):
        raise exc  # a stream is under way: writing a new response into it would garble it; the connection closes
    return error_response(request, TranslatorError("internal error in the proxy"))


def _admitted(request: web.Request, app: web.Application) -> asyncio.Task[Any] | None:
    """API requests are counted while in flight (shutdown waits for them), up to the configured bound."""
    if not request.path.startswith(("/v1/", "/chat/")):
        return None
    if app[CLOSING].is_set():  # a kept-alive connection after the listener closed
        raise ProxyOverloaded("the proxy is shutting down; retry the request")
    inflight = app[INFLIGHT]
    if len(inflight) >= app[SETTINGS].server.max_concurrent_requests:
        raise ProxyOverloaded("too many requests in flight at this proxy; retry shortly")
    task = asyncio.current_task()
    assert task is not None
    inflight.add(task)
    return task


def record_metrics(metrics: Metrics, fields: dict[str, Any], latency: float) -> None:
    route, model = fields["route"], fields.get("model", "")
    ttft = fields.get("ttft_ms")
    metrics.observe_request(
        route, model, fields.get("upstream", ""), fields["status"], latency, ttft / 1000 if ttft is not None else None
    )
    metrics.add_usage(route, model, token_kinds(fields.get("usage")))
