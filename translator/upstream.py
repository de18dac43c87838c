"""The only code that talks to a Claude upstream (over ``translator.http1``). Failures are mapped here,
once, onto our error tree (``translator.errors``): refused or reset connections and unreadable answers ->
UpstreamUnavailable (502), timeouts -> UpstreamTimeout (504), error statuses -> UpstreamStatusError with the
upstream's own Claude error body (an HTML page from a load balancer is wrapped into one).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from multidict import MultiMapping

from translator.config import UpstreamSettings
from translator.convert.tables import CLAUDE_ERROR_STATUS
from translator.errors import UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable
from translator.http1 import HttpClientError, Origin, Response, UpstreamTimedOut
from translator.sse import SSEDecoder, SSEEvent

_STATUS_ERROR_TYPE = {status: kind for kind, status in CLAUDE_ERROR_STATUS.items()}
_FORWARDED = ("anthropic-beta",)
MAX_ERROR_BODY = 64 * 1024
ERROR_BODY_TIMEOUT = 2.0  # how long an error status's body may take to arrive after its head
FINISH_TIMEOUT = 1.0  # how long an ended stream's connection waits for its body's end to be kept
MAX_TRAILING = 64 * 1024  # what an ended stream may still send, unread, before its connection is closed


class UpstreamResponse:
    """A successful (2xx) upstream answer, read as JSON, as raw bytes, or as SSE events."""

    def __init__(
        self, resp: Response, idle_timeout: float = 120.0, drains: set[asyncio.Task[None]] | None = None
    ) -> None:
        self._resp = resp
        self._drains = drains if drains is not None else set()  # the upstream's: cancelled when it closes
        self._draining = False
        self.status = resp.status
        self.headers = resp.headers
        self._body: bytes | None = None
        self._prefix: list[bytes] = []
        self._idle_timeout = idle_timeout
        self._last_event = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop  # set by read(), before any touch()
        self._idled = False

    def __enter__(self) -> UpstreamResponse:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if self._draining:
            return  # finish()'s task reads the body's end, then releases or closes the connection
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if exc is None:
            self._resp.release()
        else:
            self.close()

    def close(self) -> None:
        """Not read to the end (an error, or the client went away): drop the connection."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._resp.close()

    @property
    def is_stream(self) -> bool:
        return self._resp.content_type == "text/event-stream"  # (parsed once, by the response)

    async def body(self) -> bytes:
        if self._body is None:
            with map_errors():
                self._body = await self._resp.content.read_all()
        return self._body

    async def json(self) -> Any:
        raw = await self.body()
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise UpstreamUnavailable(f"upstream answered {self.status} with a body that is not JSON") from e

    async def prime(self) -> None:
        """Read a stream up to its first content event, so that the request can still be retried
        elsewhere when the upstream fails before that (an ``error`` event first, a reset, a stall).
        What was read is replayed by ``read()``."""
        decoder = SSEDecoder()
        with map_errors():
            while data := await self._resp.content.read():
                self._prefix.append(data)
                if self._started(decoder.feed(data)):
                    return
        # The stream ended before any content. A last event missing only its blank line still counts.
        if not self._started(decoder.flush(unterminated=True)):
            raise UpstreamUnavailable("upstream stream ended before its first event")

    @staticmethod
    def _started(events: Iterable[SSEEvent]) -> bool:
        for event in events:
            if event.event == "error":
                raise stream_error(event)
            if event.event in _STARTED:
                return True
        return False

    async def read(self) -> bytes:
        """The stream's next bytes as they arrive (first, what ``prime()`` read, in one piece); b"" at its end.
        The reader calls ``touch()`` whenever an event completes; if none does for ``stream_idle_timeout``
        seconds the upstream is dropped and UpstreamTimeout raised. (A method, not an async generator:
        called for every read of every stream, it costs a fraction of one.)"""
        if self._prefix:
            prefix, self._prefix = self._prefix, []
            return b"".join(prefix)
        try:
            with map_errors():
                data = await self._resp.content.read()
        except UpstreamUnavailable as e:
            if self._idled:
                raise self._idle_error() from e
            raise
        if not data and self._idled:
            raise self._idle_error()
        return data

    def finish(self) -> None:
        """The stream has ended (message_stop) and the client has its answer: the connection goes back to the
        pool, once the rest of its body (normally just the chunked encoding's last chunk) has come. With the
        body unfinished it is closed, and the next request pays a new connection (and, to a real
        upstream, a new TLS handshake). When that end has not come yet, a task of its own waits for it, so
        the handler returns at once (the client's next request on its connection waits for no upstream,
        and a client that leaves now has not cancelled a finished request); the task releases the
        connection, or closes it if the end takes over ``FINISH_TIMEOUT`` or ``MAX_TRAILING`` bytes come
        first. The upstream's ``close()`` cancels such tasks."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()  # (the stream has ended: no idle check now, which would close it)
        if self._idled or self._resp.content.is_eof():  # the usual case: the end came with the last event
            return
        self._draining = True
        task = asyncio.get_running_loop().create_task(self._drain())
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self) -> None:
        left = MAX_TRAILING
        try:
            with contextlib.suppress(asyncio.TimeoutError, HttpClientError):
                async with asyncio.timeout(FINISH_TIMEOUT):
                    while left >= 0 and (data := await self._resp.content.read()):
                        left -= len(data)
        finally:  # also when cancelled
            self._resp.release()  # kept if the body has ended, else closed

    def touch(self) -> None:
        """An event completed: the idle clock starts again (checked lazily by the timer, so this is cheap)."""
        self._last_event = self._loop.time()  # (kept by read(): on 3.11 get_running_loop() makes a getpid() syscall)

    def _check_idle(self) -> None:
        loop = self._loop
        due = self._last_event + self._idle_timeout
        if loop.time() >= due:
            self._idled = True
            # The pending read raises our timeout (closing alone would make it raise "connection closed").
            self._resp.content.set_exception(self._idle_error())
            self._resp.close()
        else:
            self._idle_timer = loop.call_at(due, self._check_idle)

    def _idle_error(self) -> UpstreamTimeout:
        return UpstreamTimeout(f"upstream stream sent no event for {self._idle_timeout:g} s")


_STARTED = frozenset({"content_block_start", "content_block_delta", "message_delta", "message_stop"})
_BLOCK_START_LINE = b"\nevent: content_block_start\ndata: "


def _plainly_started(data: bytes) -> bool:
    """Whether a stream's first read holds, in the shape Claude writes, its first content block's start
    with no error event before it: then it has started, as reading it event by event would find, without
    that reading. False when unsure (other line ends, a BOM, an error line, no such event, a message with
    no content block): the events are then read. (Found by bytes searches, not a regex: this runs for
    every stream, on a read that often holds all of it.)"""
    first = data.find(_BLOCK_START_LINE)
    if first < 0 or data.startswith(b"\xef") or data.find(b"\r") >= 0:
        return False
    end = data.find(b"\n\n", first + 1)
    # Whole (its blank line has come too), no error before it (in any spelling: "error" anywhere is unsure),
    # and no later event line of its own to rename it.
    return end >= 0 and data.find(b"error", 0, first) < 0 and data.find(b"\nevent", first + 1, end) < 0


def stream_error(event: SSEEvent) -> UpstreamStatusError:
    """An ``error`` event before any content: treated like the error status it stands for."""
    try:
        body = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and isinstance(error.get("type"), str) and isinstance(error.get("message"), str)):
        body = {"type": "error", "error": {"type": "api_error", "message": "upstream stream error"}}
    status = CLAUDE_ERROR_STATUS.get(body["error"]["type"], 500)
    return UpstreamStatusError(status, body)


class Upstream:
    def __init__(self, settings: UpstreamSettings, base_url: str, *, proxy: str | None = None) -> None:
        """``proxy``: an http:// proxy to connect through (the settings' own, resolved at load time, is the
        caller's to pass: the demo upstream, for one, is never reached through a proxy)."""
        self.settings = settings
        self.name = settings.name
        self.base_url = base_url.rstrip("/")
        self.origin = Origin(
            self.base_url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            total_timeout=settings.total_timeout,
            proxy=proxy,
        )
        self.drains: set[asyncio.Task[None]] = set()  # streams whose body's end is still awaited (finish())

    async def close(self) -> None:
        """Stop waiting for any stream's end, then close every connection (at shutdown)."""
        drains = list(self.drains)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        await self.origin.close()

    def serves(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.settings.models)

    def headers(
        self, client: Mapping[str, str], *, version: str | None = None, forward_key: bool = True
    ) -> dict[str, str]:
        """Upstream auth is ours when configured; otherwise the client's own key goes through
        (unless it is one of our own client keys: ``forward_key=False``)."""
        out: dict[str, str] = {}
        out["anthropic-version"] = version or self.settings.anthropic_version
        for name in _FORWARDED:
            if name in client:  # a header sent several times is one comma-separated list (RFC 9110 5.3)
                values = client.getall(name) if isinstance(client, MultiMapping) else [client[name]]
                out[name] = ",".join(values)
        key = self.settings.api_key
        if key:
            if self.settings.auth == "bearer":
                out["Authorization"] = f"Bearer {key}"
            else:
                out["x-api-key"] = key
        elif not forward_key:
            pass
        elif "x-api-key" in client:
            out["x-api-key"] = client["x-api-key"]
        elif _anthropic_key_as_bearer(client.get("Authorization", "")):
            out["x-api-key"] = client["Authorization"].partition(" ")[2].strip()  # an Anthropic key sent the OpenAI way
        elif "Authorization" in client:
            out["Authorization"] = client["Authorization"]
        return out

    async def open(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> UpstreamResponse:
        """Send the request; an error status is raised, a 2xx answer returned open. The caller ends it:
        ``with response:`` releases the connection, or closes it on an exception (the router's hot path
        holds no context manager of its own)."""
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        with map_errors():  # (redirects are never followed: they would resend the key and the prompt elsewhere)
            resp = await self.origin.request(method, path, headers, body)
        if resp.status >= 400:
            try:
                raise await status_error(resp)
            finally:
                resp.release()  # read to its end: the connection is kept (else it is closed)
        return UpstreamResponse(resp, self.settings.stream_idle_timeout, self.drains)

    @asynccontextmanager
    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[UpstreamResponse]:
        """``open()`` as a context manager."""
        with await self.open(method, path, headers, body) as response:
            yield response


def _anthropic_key_as_bearer(authorization: str) -> bool:
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith("sk-ant-api")


async def status_error(resp: Response) -> UpstreamStatusError:
    retry_after = resp.headers.get("retry-after")
    request_id = resp.headers.get("request-id")
    raw = b""  # read to its end (one read may hold only part of it), within bounds; what came is what there is
    with contextlib.suppress(asyncio.TimeoutError, HttpClientError):
        async with asyncio.timeout(ERROR_BODY_TIMEOUT):
            while len(raw) < MAX_ERROR_BODY and (data := await resp.content.read()):
                raw += data
    raw = raw[:MAX_ERROR_BODY]
    body: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):
        body = orjson.loads(raw)
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        kind = _STATUS_ERROR_TYPE.get(resp.status, "api_error")
        snippet = raw[:200].decode("utf-8", "replace").strip()
        message = f"upstream answered HTTP {resp.status} ({resp.content_type}): {snippet}"
        body = {"type": "error", "error": {"type": kind, "message": message}}
    return UpstreamStatusError(resp.status, body, retry_after=retry_after, request_id=request_id)


class map_errors:  # lower case: used like contextlib's context managers
    """HTTP client and asyncio failures -> our error tree."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return
        if isinstance(exc, (asyncio.TimeoutError, UpstreamTimedOut)):
            raise UpstreamTimeout(f"upstream timed out: {exc}" if str(exc) else "upstream timed out") from exc
        if isinstance(exc, HttpClientError):
            raise UpstreamUnavailable(f"upstream unavailable: {type(exc).__name__}: {exc}") from exc
