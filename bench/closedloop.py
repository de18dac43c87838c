"""Closed-loop load on the lean client (``bench/rawclient.py``): a fixed number of connections, each sending its
next request as soon as its last answer is in. The timed rounds of ``runner.py`` use aiohttp's client; the
sections that compare servers at concurrency 64 (workers) or side by side (peers) use this one, so that the
load generator stays cheap beside them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.histogram import Histogram
from bench.rawclient import Connection, Pool


@dataclass
class Loop:
    latency: Histogram
    errors: int = 0
    first_error: str | None = None


async def closed_loop(port: int, request: bytes, expect: bytes, concurrency: int,
                      seconds: float) -> tuple[Loop, float]:
    """``concurrency`` keep-alive connections to ``port`` on 127.0.0.1, each sending ``request`` again when its
    last answer is in, for ``seconds``; the result and the time it took. An answer is good when it is a 200
    whose last bytes contain ``expect``."""
    pool, loop = Pool("127.0.0.1", port), Loop(Histogram())
    await pool.fill(concurrency)
    conns = [await pool.get() for _ in range(concurrency)]
    started = time.perf_counter()
    deadline = started + seconds

    async def one(conn: Connection) -> None:
        while time.perf_counter() < deadline:
            try:
                if conn.closed.done():  # the server closed it after the last answer: a new one
                    conns.append(conn := await pool.get())
                answer = await conn.exchange(request)
            except OSError as e:
                loop.errors += 1
                loop.first_error = loop.first_error or f"{type(e).__name__}: {e}"
                await asyncio.sleep(0.01)  # not a spin against a server that refuses
                continue
            if answer.status != 200 or expect not in answer.tail:
                loop.errors += 1
                loop.first_error = loop.first_error or f"HTTP {answer.status}: ...{answer.tail!r}"
            else:
                loop.latency.add(answer.done - answer.sent)

    try:
        await asyncio.gather(*(one(c) for c in conns))
    finally:
        for conn in conns:
            conn.close()
    return loop, time.perf_counter() - started
