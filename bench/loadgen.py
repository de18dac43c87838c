"""The load generator: an aiohttp client that sends one prepared request again and again.

``LoadClient.run`` keeps ``concurrency`` requests in flight until ``requests`` are done or ``time_cap``
seconds have passed (no new request starts after that; those in flight finish), and times each from
send to the last byte of the answer. ``warm`` opens the pool's connections first, so connection set-up
is not timed. ``HeldStreams`` opens many streams and keeps them open until the upstream ends them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

_TAIL = 64


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]
    expect: bytes = b""  # the answer must end with bytes containing this (b"" = any 200 answer)


@dataclass(slots=True)
class RunResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests only
    errors: int = 0
    first_error: str | None = None
    elapsed: float = 0.0
    capped: bool = False  # the time cap ended the run before its request count

    def fail(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


class BadAnswer(Exception):
    pass


def _session(timeout: float) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout),
        auto_decompress=False,
    )


async def fetch(session: aiohttp.ClientSession, req: Request) -> int:
    """One request read to its end; the number of body bytes. Raises BadAnswer on a wrong answer."""
    async with session.post(req.url, data=req.body, headers=req.headers) as resp:
        tail, size = b"", 0
        async for chunk in resp.content.iter_any():
            size += len(chunk)
            tail = chunk[-_TAIL:] if len(chunk) >= _TAIL else (tail + chunk)[-_TAIL:]
        if resp.status != 200:
            raise BadAnswer(f"HTTP {resp.status}: {tail!r}")
        if req.expect not in tail:
            raise BadAnswer(f"answer does not end with {req.expect!r}: ...{tail!r}")
        return size


class LoadClient:
    def __init__(self, timeout: float = 120.0) -> None:
        self._timeout = timeout
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoadClient:
        self.session = _session(self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()

    def _s(self) -> aiohttp.ClientSession:
        assert self.session is not None, "use LoadClient as an async context manager"
        return self.session

    async def warm(self, req: Request, concurrency: int) -> RunResult:
        """``concurrency`` requests at once, untimed: opens the connections the run will reuse."""
        return await self.run(req, requests=concurrency, concurrency=concurrency, time_cap=30.0)

    async def run(self, req: Request, *, requests: int, concurrency: int, time_cap: float) -> RunResult:
        result = RunResult()
        session = self._s()
        started = time.perf_counter()
        deadline = started + time_cap
        remaining = requests

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                if time.perf_counter() >= deadline:
                    result.capped = True
                    return
                remaining -= 1
                t0 = time.perf_counter()
                try:
                    await fetch(session, req)
                except (TimeoutError, aiohttp.ClientError, BadAnswer) as e:
                    result.fail(f"{type(e).__name__}: {e}")
                    continue
                result.latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, requests))))
        result.elapsed = time.perf_counter() - started
        return result


class HeldStreams:
    """``count`` streams opened ``ramp`` at a time (a stream counts as open at the first body bytes of a
    200 answer), then read to their end, which the upstream decides."""

    def __init__(self, req: Request, count: int, ramp: int = 64, timeout: float = 120.0) -> None:
        self.req, self.count = req, count
        self.opened = 0
        self.result = RunResult()
        self._gate = asyncio.Semaphore(ramp)
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def open_all(self, timeout: float) -> bool:
        """Start every stream; True once all are open (False: some failed, or ``timeout`` passed)."""
        self._session = _session(self._timeout)
        self._tasks = [asyncio.create_task(self._one()) for _ in range(self.count)]
        deadline = time.perf_counter() + timeout
        while self.opened + self.result.errors < self.count and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return self.opened == self.count

    async def finish(self, timeout: float) -> RunResult:
        try:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
                self.result.fail("stream still open at the end of the wait")
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            if self._session is not None:
                await self._session.close()
        return self.result

    async def _one(self) -> None:
        assert self._session is not None
        t0 = time.perf_counter()
        try:
            await self._gate.acquire()
            opened = False
            try:
                async with self._session.post(self.req.url, data=self.req.body, headers=self.req.headers) as resp:
                    tail = b""
                    async for chunk in resp.content.iter_any():
                        if not opened and resp.status == 200:
                            opened = True  # a refusal (503 ...) is an error, not an open stream
                            self.opened += 1
                            self._gate.release()
                        tail = (tail + chunk)[-_TAIL:]
                    if resp.status != 200 or self.req.expect not in tail:
                        raise BadAnswer(f"HTTP {resp.status}: ...{tail!r}")
            finally:
                if not opened:
                    self._gate.release()
        except (TimeoutError, aiohttp.ClientError, BadAnswer) as e:
            self.result.fail(f"{type(e).__name__}: {e}")
            return
        self.result.latencies.append(time.perf_counter() - t0)
