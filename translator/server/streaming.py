"""The stream relay every streaming route uses: an upstream's Claude event stream, read as it comes, each
event handed to the route's ``EventStream`` and what it gives written to the client at once.

The relay owns what every stream needs, so that a route writes only its conversion:
- the response's head (with the request's extra headers) and time to first token;
- the idle clock: no event for ``stream_idle_timeout`` seconds fails the stream (a byte drip does not
  reset it);
- errors mid-stream (a broken event, a reset, a timeout) end the stream with an error in the client's
  shape, after what came before it;
- a farewell when shutdown's grace period cuts the stream, so the client reads an error, not a cut;
- the usage, stop reason and error for the log line and the rate limiter, kept in the request's context
  however the stream ended (cancelled included), and how it ended (``stream_end``: completed, upstream_error,
  shutdown; the middleware notes client_gone);
- the connection back to the pool when the upstream stream ended cleanly;
- several upstream streams interleaved onto one response (OpenAI's ``n`` > 1).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import orjson
from aiohttp import web

from translator.convert.fastpath import TextRun
from translator.convert.usage import sum_claude_usage
from translator.errors import ProxyOverloaded, TranslatorError, UpstreamProtocolError, UpstreamTimeout
from translator.server.context import CONTEXT
from translator.server.state import DRAINING
from translator.sse import SSEEvent
from translator.upstream import Upstream

STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
Write = Callable[[bytes], Awaitable[None]]


class EventStream(Protocol):
    """One upstream stream's conversion into the client's bytes, fed one event at a time."""

    @property
    def done(self) -> bool:
        """Its last event came (``message_stop``, or an error): nothing more is read."""

    @property
    def failed(self) -> bool:
        """It ended in an error (then the upstream connection is not reused)."""

    @property
    def usage(self) -> dict[str, Any]:
        """The usage so far, in Claude's shape."""

    @property
    def stop_reason(self) -> str | None: ...

    @property
    def error_type(self) -> str | None:
        """The Claude error type it ended with, if it did."""

    def feed(self, event: SSEEvent) -> bytes:
        """The client's bytes for one upstream event (a ``TranslatorError`` for a broken one)."""

    def end(self) -> bytes:
        """The upstream's body ended before the stream was done: what tells the client it was cut short."""

    def fail(self, err: TranslatorError) -> bytes:
        """An error mid-stream, in the client's shape; the stream is then done and failed."""


class Converter(Protocol):
    """A pure stream converter (``translator.convert``): Claude events in, the client's objects out."""

    done: bool
    failed: bool
    claude_usage: dict[str, Any]
    stop_reason: str | None
    error_type: str | None

    def feed(self, event: Mapping[str, Any]) -> Sequence[Any]: ...

    def finish(self) -> Sequence[Any]: ...

    def fail(self, err: TranslatorError) -> Sequence[Any]: ...


class ConvertedStream:
    """An ``EventStream`` over a ``Converter``: each event parsed as JSON and fed to it (a ``ping`` skipped
    by its name, unread, as the Anthropic SDKs skip it), what it gives written by ``encode``."""

    def __init__(self, converter: Converter, encode: Callable[[Any], bytes]) -> None:
        self.converter = converter
        self._encode = encode

    @property
    def done(self) -> bool:
        return self.converter.done

    @property
    def failed(self) -> bool:
        return self.converter.failed

    @property
    def usage(self) -> dict[str, Any]:
        return self.converter.claude_usage

    @property
    def stop_reason(self) -> str | None:
        return self.converter.stop_reason

    @property
    def error_type(self) -> str | None:
        return self.converter.error_type

    def feed(self, event: SSEEvent) -> bytes:
        if event.event == "ping":
            return b""
        return self._encoded(self.converter.feed(event_json(event.data)))

    def end(self) -> bytes:
        return self._encoded(self.converter.finish())

    def fail(self, err: TranslatorError) -> bytes:
        return self._encoded(self.converter.fail(err))

    def _encoded(self, items: Sequence[Any]) -> bytes:
        return b"".join(map(self._encode, items))


class RunConverter(Converter, Protocol):
    """A converter with a fast path for runs of text deltas (``translator.convert.fastpath``)."""

    def takes_text(self, index: int) -> bool: ...

    def write_texts(self, texts: Sequence[str], encode: Callable[[Any], bytes]) -> bytes: ...


class FastConvertedStream(ConvertedStream):
    """A ``ConvertedStream`` the relay also gives ``TextRun``s, undecoded: written by the converter's fast
    path once it takes them, event by event on the plain path until it does (a run's first delta may open a
    message)."""

    def __init__(self, converter: RunConverter, encode: Callable[[Any], bytes]) -> None:
        super().__init__(converter, encode)
        self._runs = converter

    def feed_run(self, run: TextRun) -> bytes:
        """What feeding the run's deltas one by one gives (a broken one ends the stream, as ``_feed`` ends
        it), in one ``write_texts`` from the first the converter takes."""
        out: list[bytes] = []
        for n, text in enumerate(run.texts):
            if self._runs.takes_text(run.block):
                out.append(self._runs.write_texts(run.texts[n:], self._encode))
                break
            try:
                out.append(self._encoded(self.converter.feed(run.event(text))))
            except TranslatorError as err:
                out.append(self.fail(err))
                break
        return b"".join(out)


class Events(Protocol):
    """An upstream stream as the relay reads it (an ``UpstreamResponse``, or ``resume.Resumed``'s rounds)."""

    async def next_events(self, *, runs: bool = False) -> Sequence[SSEEvent | TextRun] | None: ...

    def abort(self, error: Exception) -> None: ...

    def finish(self) -> None: ...


class Source(Protocol):
    """What the relay reads from: an ``Attempted``, or ``resume.Resumed``."""

    @property
    def upstream(self) -> Upstream: ...

    @property
    def response(self) -> Events: ...


def event_json(data: bytes) -> dict[str, Any]:
    """An upstream event's data: a JSON object, or the stream is broken."""
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise UpstreamProtocolError(f"upstream stream event is not JSON: {data[:100]!r}") from e
    if not isinstance(payload, dict):
        raise UpstreamProtocolError("upstream stream event is not a JSON object")
    return payload


async def relay(
    request: web.Request,
    sources: Sequence[Source],
    streams: list[EventStream],
    *,
    headers: dict[str, str],
    closing: Callable[[bool], bytes] = lambda clean: b"",
    before_end: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    """Relay ``sources`` (opened, up to their first content event) through ``streams`` onto one response.
    ``closing(clean)``: the route's last bytes; ``before_end()``: what must be done, when the streams ended
    cleanly, before the client has the last bytes (and may act on them)."""
    ctx = request[CONTEXT]
    ctx.first_token()
    resp = web.StreamResponse(headers={**STREAM_HEADERS, **headers})
    await prepare_stream(request, resp)
    try:
        async with farewell_on_shutdown(request, resp, streams[0]):
            if len(sources) == 1:
                end = await pump(sources[0], streams[0], resp.write, ctx.failed_with)
            else:
                end = await _pump_all(sources, streams, resp.write, ctx.failed_with)
            clean = not any(stream.failed for stream in streams)
            ctx.stream_end = "completed" if clean else "upstream_error"
            if clean and before_end is not None:
                await before_end()
            # The last chunks and the response's end in one send: each send wakes the client up again.
            await resp.write_eof(end + closing(clean))
    finally:  # also when cancelled: what was generated counts against the key's limits
        _report(request, sources, streams)
    if clean:  # the upstream streams ended as they should: their connections are kept for reuse
        for source in sources:
            source.response.finish()
    return resp


async def prepare_stream(request: web.Request, resp: web.StreamResponse) -> None:
    """The head goes out, with the request's extra headers (its rate limits); from here on an error ends
    the stream, as no other answer is possible."""
    ctx = request[CONTEXT]
    ctx.stamp(resp.headers)
    ctx.prepared, ctx.stream_response = True, resp
    await resp.prepare(request)


async def pump(
    source: Source, stream: EventStream, write: Write, failed: Callable[[TranslatorError], None] = lambda err: None
) -> bytes:
    """One upstream stream onto the client: the events each upstream read completes are converted and
    written at once (one write per read, not per event). Returns the stream's last bytes, unwritten, for the
    caller to send with the response's end. ``failed(err)``: told of an upstream failure that ends it (a
    reset, a timeout), whose whole text the client's error event does not tell."""
    seconds = source.upstream.settings.stream_idle_timeout
    timeout = UpstreamTimeout(f"upstream stream sent no event for {seconds:g} s")
    clock = IdleClock(seconds, lambda: source.response.abort(timeout))
    runs = isinstance(stream, FastConvertedStream)
    try:
        while (events := await source.response.next_events(runs=runs)) is not None:
            clock.tick()
            out = _feed(stream, events)
            if stream.done:
                return out
            if out:
                await write(out)
    except TranslatorError as err:  # the idle clock's timeout too: the upstream's read raises it
        failed(err)
        return stream.fail(err)
    finally:
        clock.stop()
    return stream.end()  # the upstream's body ended before the stream was done: cut short


class IdleClock:
    """Calls ``on_idle`` whenever no ``tick()`` (an event) has come for ``seconds``. One timer, moved only when it
    fires while the stream is not idle: ``tick()`` just notes the time (a timer moved on every read of every
    stream would cost more than the read's own work)."""

    def __init__(self, seconds: float, on_idle: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._seconds = seconds
        self._on_idle = on_idle
        self._last = self._loop.time()
        self._timer = self._loop.call_at(self._last + seconds, self._check)

    def tick(self) -> None:
        self._last = self._loop.time()

    def stop(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        now, due = self._loop.time(), self._last + self._seconds
        if now >= due:
            self._on_idle()
            # (watched anew: a source that goes on, a paused turn's next round being asked for, is idle again
            # only after as long)
            self._last, due = now, now + self._seconds
        self._timer = self._loop.call_at(due, self._check)


def _feed(stream: EventStream, events: Sequence[SSEEvent | TextRun]) -> bytes:
    """The events' bytes for the client, up to the stream's end; a broken event ends it in an error,
    after what came before it. (Runs come only to a ``FastConvertedStream``, which asked for them.)"""
    out: list[bytes] = []
    for event in events:
        try:
            if isinstance(event, TextRun):
                out.append(cast(FastConvertedStream, stream).feed_run(event))
            else:
                out.append(stream.feed(event))
        except TranslatorError as err:
            out.append(stream.fail(err))
        if stream.done:
            break
    return b"".join(out)


class _ChoiceFailed(Exception):
    pass


async def _pump_all(
    sources: Sequence[Source], streams: list[EventStream], write_out: Write, failed: Callable[[TranslatorError], None]
) -> bytes:
    """Several streams interleaved onto one response, each write whole; the first to fail ends the
    response there (nothing may follow its error), and the others stop."""
    lock = asyncio.Lock()
    stopped = False

    async def write(data: bytes) -> None:
        async with lock:
            if stopped:
                raise _ChoiceFailed
            await write_out(data)

    async def one(source: Source, stream: EventStream) -> None:
        nonlocal stopped
        end = await pump(source, stream, write, failed)
        if end:
            await write(end)
        if stream.failed:
            stopped = True
            raise _ChoiceFailed

    try:
        async with asyncio.TaskGroup() as group:
            for source, stream in zip(sources, streams, strict=True):
                group.create_task(one(source, stream))
    except* _ChoiceFailed:
        pass
    except* ConnectionResetError:
        raise ConnectionResetError("the client went away") from None  # logged as such, not as a bug
    return b""


@asynccontextmanager
async def farewell_on_shutdown(
    request: web.Request, resp: web.StreamResponse, stream: EventStream
) -> AsyncIterator[None]:
    """A stream still open when shutdown's grace period ends is cancelled; it ends with a proper error event
    in the client's shape (the client can retry elsewhere) instead of a cut connection."""
    try:
        yield
    except asyncio.CancelledError:
        if request.app[DRAINING].is_set():
            ctx = request[CONTEXT]
            ctx.shutdown, ctx.stream_end = True, "shutdown"
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await resp.write(stream.fail(ProxyOverloaded("the proxy is shutting down; retry the request")))
                    await resp.write_eof()
        raise


def _usage(source: Source, stream: EventStream) -> dict[str, Any]:
    """The stream's usage; a source of several rounds (``resume.Resumed``) knows the earlier rounds' too."""
    rounds_usage: Callable[[], dict[str, Any] | None] | None = getattr(source, "rounds_usage", None)
    return (rounds_usage() if rounds_usage is not None else None) or stream.usage


def _report(request: web.Request, sources: Sequence[Source], streams: list[EventStream]) -> None:
    """What the streams say, for the log line, the metrics and the rate limiter."""
    ctx = request[CONTEXT]
    ctx.usage = sum_claude_usage([_usage(source, stream) for source, stream in zip(sources, streams, strict=True)])
    ctx.stop_reason = streams[0].stop_reason
    ctx.stream_error = next((s.error_type for s in streams if s.error_type is not None), None)
