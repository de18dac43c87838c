"""The one layer around every request: its context, the in-flight bound, every error answered once in the
caller's shape (``translator.server.errors``), our request id on every answer, and, however the request
ended, its log line, metrics and usage (read from its ``RequestContext``). Nothing leaves as a traceback: an
unexpected exception is logged and answered 500. (A request aiohttp's parser rejects never reaches the app:
``translator.server.protocol`` answers it.)
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError

from translator.errors import ProxyOverloaded, TranslatorError, UpstreamStatusError
from translator.log import log, log_request
from translator.server.context import CONTEXT, RequestContext
from translator.server.errors import error_response, http_error, parse_error
from translator.server.spend import record_usage
from translator.server.state import CLOSING, INFLIGHT, SETTINGS

_API_PATHS = ("/v1/", "/chat/", "/responses")
_SHUTTING_DOWN = "the proxy is shutting down; retry the request"


@web.middleware
async def handle_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request[CONTEXT] = RequestContext(request.method, request.path)
    try:
        response = await _answer(request, handler)
        if not response.prepared:  # (a stream's went out with its head: streaming.prepare_stream)
            ctx.stamp(response.headers)
        ctx.status = response.status
        return response
    except (asyncio.CancelledError, ConnectionResetError) as exc:
        if ctx.shutdown:  # shutdown's grace period cut a stream under way: the client did not go away
            ctx.status = 200
            raise
        ctx.cancelled = True  # the client went away; the handler was cancelled with it
        ctx.status = 499
        if ctx.prepared:
            ctx.stream_end = "client_gone"
        if isinstance(exc, ConnectionResetError) and ctx.stream_response is not None:
            # A write found the connection gone before aiohttp cancelled the handler: the stream ends here,
            # and aiohttp finishes it quietly (raising would log it as a server error, with a traceback).
            return ctx.stream_response
        raise
    finally:
        log_request(ctx.log_fields())
        if ctx.route is not None:
            record_usage(request, ctx)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, or its error as one, in the caller's shape."""
    ctx = request[CONTEXT]
    try:
        return await _in_flight(request, handler)
    except asyncio.CancelledError:
        if not (request.app[CLOSING].is_set() and not ctx.prepared):
            raise
        # Shutdown's grace period ran out before this request could answer: say so (clients retry a 503)
        # rather than cutting the connection.
        ctx.shutdown = True
        return error_response(request, ProxyOverloaded(_SHUTTING_DOWN))
    except ConnectionResetError:
        raise
    except (TranslatorError, BadHttpMessage, RequestPayloadError) as exc:
        return _failed(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(request, http_error(exc))
    except Exception:
        log.exception("unhandled error", **ctx.log_fields())
        if ctx.prepared:
            raise  # a stream is under way: a new response written into it would garble it; the connection closes
        return error_response(request, TranslatorError("internal error in the proxy"))


async def _in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API requests are counted while in flight (shutdown waits for them), up to the configured bound."""
    if not request.path.startswith(_API_PATHS):
        return await handler(request)
    inflight = _admit(request)
    task = asyncio.current_task()
    assert task is not None
    inflight.add(task)
    try:
        return await handler(request)
    finally:
        inflight.discard(task)


def _failed(request: web.Request, exc: Exception) -> web.Response:
    """One of our errors, or aiohttp's parser's in the body (a bad chunk size), answered and noted for the
    log line."""
    ctx = request[CONTEXT]
    err = exc if isinstance(exc, TranslatorError) else parse_error(exc)
    ctx.error = err.claude_type
    if isinstance(err, UpstreamStatusError):
        ctx.upstream_request_id = err.request_id
    if err is not exc:
        ctx.cause = err.message
    ctx.failed_with(err)
    return error_response(request, err)


def _admit(request: web.Request) -> set[asyncio.Task[object]]:
    app = request.app
    if app[CLOSING].is_set():  # a kept-alive connection after the listener closed
        raise ProxyOverloaded(_SHUTTING_DOWN)
    inflight = app[INFLIGHT]
    if len(inflight) >= app[SETTINGS].server.max_concurrent_requests:
        raise ProxyOverloaded("too many requests in flight at this proxy; retry shortly")
    return inflight

