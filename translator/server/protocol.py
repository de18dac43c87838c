"""The HTTP connection below the app: aiohttp's ``RequestHandler``, answering what its parser rejects in our
way.

aiohttp answers a request it cannot parse (a bad character in a header, a line over the size limit, a
request line that is not HTTP, a bad ``Content-Length`` or chunk size) itself, before any middleware runs:
a plain-text 400 that quotes the offending line, and a traceback with that line on stderr. A header line
quotes a key as readily as anything else. Here that answer is an error in the caller's API shape (the
route's, read from the request line when it can be; OpenAI's otherwise) that names the cause and quotes
nothing, and the request gets its one JSON log line, with the cause and no value.

``ProxyRunner`` is aiohttp's ``AppRunner`` with this protocol on every connection; cli.serve and the tests
both use it. Everything else about requests (errors in a handler, the log line of a parsed request) is the
middleware's (``translator.server.middleware``).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo  # (what its parser queues for a rejected request)
from aiohttp.web_request import BaseRequest

from translator.errors import TranslatorError
from translator.log import log_request
from translator.server.context import CONTEXT, RequestContext
from translator.server.errors import error_response_for, is_claude_path, parse_error

# The start of a request line: its method and its path (without the query, which may carry a key), in the
# characters a path is written in. Anything else leaves the request's route unknown.
_REQUEST_LINE = re.compile(rb"([A-Z]{3,7}) (/[A-Za-z0-9/_.~%-]{0,200})[ ?]")


class ProxyProtocol(RequestHandler):
    """aiohttp's connection handler, with our answer and log line for a request its parser rejects."""

    __slots__ = ("_request_line",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_line: tuple[str, str] | None = None  # the method and path of the last request line read

    def data_received(self, data: bytes) -> None:
        # A request's bytes start with its request line (a body's do not match): kept so that a request the
        # parser rejects is still answered in its route's shape.
        if (line := _REQUEST_LINE.match(data)) is not None:
            self._request_line = (line[1].decode(), line[2].decode())
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued and isinstance(self._messages[-1][0], _ErrInfo):
            self._body_rejected()

    def _body_rejected(self) -> None:
        """The parser rejected what it read, and queued that as a request of its own. When that was the body
        of the request being handled (a bad chunk size after the head), that request would wait for the rest
        of its body until it timed out: its read fails now instead, the route answers it, and the connection
        (its parser lost) closes after."""
        request = self._current_request
        if request is None or request.content.is_eof():
            return  # the rejected bytes were a request of their own
        rejected, _ = self._messages.pop()
        assert isinstance(rejected, _ErrInfo)
        request.content.set_exception(rejected.exc)
        request.content.feed_eof()  # (else aiohttp would wait for the rest of it once the request is answered)
        self.close()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if CONTEXT in request:
            return _escaped(request)
        method, path = self._request_line or ("", "")
        ctx = RequestContext(method, path)
        err = parse_error(exc)
        response = error_response_for(err, claude=is_claude_path(path, {}))
        ctx.error, ctx.cause, ctx.status = err.claude_type, err.message, response.status
        ctx.stamp(response.headers)
        response.force_close()
        log_request(ctx.log_fields())
        return response


def _escaped(request: BaseRequest) -> web.StreamResponse:
    """An exception escaped the middleware, which logged the request already: the client went away (its
    answer then goes nowhere), or a stream under way broke (its connection closes). No second line, no
    traceback: aiohttp's would quote the exception."""
    if request.writer.output_size > 0:  # a stream's head went out: all that is left is to close
        raise ConnectionResetError("the response was under way")
    response = error_response_for(TranslatorError("internal error in the proxy"), claude=is_claude_path(
        request.path, request.headers))
    response.force_close()
    return response


class _Server(web.Server):
    """aiohttp's server, making a ``ProxyProtocol`` for each connection (it makes a ``RequestHandler``)."""

    def __call__(self) -> RequestHandler:
        return ProxyProtocol(self, loop=self._loop, **self._kwargs)


class ProxyRunner(web.AppRunner):
    """aiohttp's ``AppRunner`` for our app: the same, with ``ProxyProtocol`` on every connection."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app started, and its server made, as aiohttp does it
        server.__class__ = _Server  # (the class of what it makes is all that differs)
        return server

