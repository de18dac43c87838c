"""Measuring: one timed run of one scenario against one target (with the server's CPU time and memory
read around it), and the two memory probes (a 10 MB request; thousands of held streams), which each get
a freshly started server so that nothing an earlier run left in its heap hides their growth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from bench import procstats
from bench.fleet import Child
from bench.loadgen import HeldStreams, LoadClient, Request, RunResult
from bench.scenarios import EXPECT, HEADERS, PATHS, Scenario, Target, simple_bodies

WARM_BODIES = simple_bodies(0)


@dataclass
class Servers:
    upstream: Child
    proxy: Child
    passthrough: Child
    baseline: Child | None = None  # the proxy at --baseline REF

    def child(self, target: Target) -> Child:
        child = {"upstream": self.upstream, "proxy": self.proxy, "passthrough": self.passthrough,
                 "baseline": self.baseline}[target.server]
        assert child is not None, f"no {target.server} server running"
        return child


@dataclass
class Sample:
    """One timed run."""

    scenario: str
    target: str
    round: int
    result: RunResult
    cpu_s: float
    rss_before_kb: int
    hwm_kb: int

    @property
    def ok(self) -> int:
        return len(self.result.latencies)


@dataclass
class MemorySample:
    target: str
    body_bytes: int
    requests: int
    rss_start_kb: int  # right after start-up, before any request
    rss_before_kb: int  # after a few small warm-up requests
    peak_kb: int  # VmHWM during the probe (or VmRSS with the streams open)
    result: RunResult = field(default_factory=RunResult)


def request_for(server: Child, target: Target, body: bytes, streamed: bool) -> Request:
    return Request(server.url + PATHS[target.route], body, HEADERS[target.route], EXPECT[(target.route, streamed)])


def warm_request(server: Child, target: Target) -> Request:
    return request_for(server, target, WARM_BODIES[target.route], False)


async def measure(servers: Servers, target: Target, scenario: Scenario, body: bytes, round_no: int) -> Sample:
    server = servers.child(target)
    req = request_for(server, target, body, scenario.streamed)
    async with LoadClient() as client:
        await client.warm(warm_request(server, target), scenario.concurrency)
        procstats.reset_peak(server.pid)
        before = procstats.snapshot(server.pid)
        result = await client.run(req, requests=scenario.requests, concurrency=scenario.concurrency,
                                  time_cap=scenario.time_cap)
        after = procstats.snapshot(server.pid)
    return Sample(scenario.name, target.name, round_no, result, after.cpu_s - before.cpu_s,
                  before.rss_kb, after.hwm_kb)


WARM_EACH = 10  # untimed requests of each kind a fresh server is sent


async def warm_servers(servers: Servers, targets: Sequence[Target], scenarios: Sequence[Scenario],
                       bodies: dict[str, dict[str, bytes]], count: int = WARM_EACH) -> None:
    """Freshly started servers (the ``targets``' own), sent ``count`` sequential requests of every scenario's
    kind on each route, untimed: the first requests of a process pay for its first use of every code path
    (imports on first use, the interpreter specializing its bytecode, the allocator growing its arenas), which
    a long-running server has long paid; measured, they would count against whichever server has more code."""
    for target in targets:
        server = servers.child(target)
        seen = set()
        async with LoadClient() as client:
            for scenario in scenarios:
                body = bodies[scenario.name][target.route]
                if (body, scenario.streamed) in seen:
                    continue
                seen.add((body, scenario.streamed))
                await client.run(request_for(server, target, body, scenario.streamed), requests=count,
                                 concurrency=1, time_cap=10)


async def warm_fresh(server: Child, target: Target, count: int = 4) -> None:
    """A few small requests, non-streamed and streamed, untimed: a fresh process's first requests pay for its
    first use of each code path."""
    async with LoadClient() as client:
        await client.run(warm_request(server, target), requests=count, concurrency=1, time_cap=10)
        stream = request_for(server, target, simple_bodies(5)[target.route], True)
        await client.run(stream, requests=count, concurrency=1, time_cap=10)


async def big_body_probe(server: Child, target: Target, body: bytes, requests: int) -> MemorySample:
    """Sequential requests with a big body; the peak RSS growth over the RSS before them."""
    start = procstats.snapshot(server.pid)
    await warm_fresh(server, target)
    procstats.reset_peak(server.pid)
    before = procstats.snapshot(server.pid)
    async with LoadClient() as client:
        result = await client.run(request_for(server, target, body, False), requests=requests, concurrency=1,
                                  time_cap=60)
    after = procstats.snapshot(server.pid)
    return MemorySample(target.name, len(body), requests, start.rss_kb, before.rss_kb, after.hwm_kb, result)


async def held_probe(server: Child, target: Target, body: bytes, count: int, upstream: Child,
                     log: Callable[[str], None]) -> MemorySample:
    """``count`` streams held open at once; the RSS with all of them open over the RSS before."""
    start = procstats.snapshot(server.pid)
    await warm_fresh(server, target)
    before = procstats.snapshot(server.pid)
    held = HeldStreams(request_for(server, target, body, True), count)
    try:
        all_open = await held.open_all(timeout=90)
        await asyncio.sleep(0.5)  # let the last ones settle (their first ping, buffers)
        during = procstats.snapshot(server.pid)
        if not all_open:
            log(f"  only {held.opened} of {count} streams opened ({held.result.first_error})")
    finally:
        await _release(upstream)
        result = await held.finish(timeout=60)
    return MemorySample(target.name, len(body), held.opened, start.rss_kb, before.rss_kb, during.rss_kb, result)


async def _release(upstream: Child) -> None:
    async with aiohttp.ClientSession() as session, session.post(upstream.url + "/bench/release") as resp:
        await resp.read()
