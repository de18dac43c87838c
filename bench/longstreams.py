"""Long streams: N concurrent streams, each paced by the fake upstream at one event every 50 ms for 60 s (the way
a model writes 20 tokens a second), through each route and directly; what the proxy adds to the gap between
two events (p50, p99), its CPU, its RSS and its memory per open stream.

Each (route, N) gets a freshly started proxy. The streams are started evenly over ``ramp_s`` seconds on
connections opened beforehand; gaps are counted only in the window where every stream is open (from the end
of the ramp plus a second, to the end of the first stream), and the proxy's CPU and RSS are read at that
window's edges. The load side (this process, the load generator, and the fake upstream) is measured over the
same window: when it is busy nearly all of its CPU, it is what limits the run, and the report says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import procstats, scenarios
from bench.analysis import verdict
from bench.fleet import Child
from bench.histogram import Histogram, added
from bench.markdown import fmt, table, targets_table
from bench.rawclient import Answer, Connection, Pool, encode_request
from bench.scenarios import CLAUDE, DIRECT, EXPECT, HEADERS, OPENAI, PATHS, RESPONSES

PACED_MODEL = "bench-paced"  # bench/upstream.py paces these streams
SETTLE_S = 1.0  # after the ramp, before gaps count
FINISH_S = 30.0  # after the window, how long the streams may take to end (their gaps are counted already)
SATURATED = 0.9  # share of a CPU past which a process counts as the run's limit
PACE_DELIVERED, PACE_SLACK = 0.95, 1.2  # a direct run that sees fewer events, or a longer median gap, fell behind
TARGET_STREAMS, TARGET_P99_MS, TARGET_RSS_MB = 2000, 5.0, 250.0


@dataclass(frozen=True, slots=True)
class LongPlan:
    counts: tuple[int, ...] = (500, 1000, 2000)
    seconds: float = 60.0
    interval: float = 0.05
    ramp_s: float = 5.0
    routes: tuple[str, ...] = (OPENAI, CLAUDE, RESPONSES)

    @property
    def events(self) -> int:
        return max(1, round(self.seconds / self.interval))


def quick_plan() -> LongPlan:
    return LongPlan(counts=(200,), seconds=8.0, ramp_s=2.0)


def paced_bodies(events: int) -> dict[str, bytes]:
    return scenarios.simple_bodies(events, model=PACED_MODEL)


class GapTimer:
    """``on_body`` of one stream: at each read that brings whole events, the gap since the previous such read
    (what a user waits between two updates), counted when both fall in the window; ``events`` counts the
    events (SSE events, each ended by an empty line) that arrived in the window. Events that arrive in one
    read arrive together: a proxy that falls behind shows as a longer gap before them."""

    __slots__ = ("end", "events", "hist", "last", "start")

    def __init__(self, hist: Histogram, start: float, end: float) -> None:
        self.hist, self.start, self.end, self.last, self.events = hist, start, end, 0.0, 0

    def __call__(self, now: float, data: bytes) -> None:
        events = data.count(b"\n\n")
        if not events:
            return
        if self.last and self.start <= self.last and now <= self.end:
            self.hist.add(now - self.last)
            self.events += events
        self.last = now


@dataclass
class Usage:
    """CPU seconds and memory over the window."""

    server_cpu_s: float = 0.0
    server_wait_s: float = 0.0  # runnable but waiting for a CPU: other work held the server back
    upstream_cpu_s: float = 0.0
    load_cpu_s: float = 0.0
    rss_before_kb: int = 0
    rss_open_kb: int = 0
    hwm_kb: int = 0


async def _open(pool: Pool, count: int, batch: int = 100) -> None:
    """``count`` connections, ``batch`` at a time (a burst of thousands of SYNs overflows a listen backlog)."""
    for done in range(0, count, batch):
        await pool.fill(min(count, done + batch))


class StreamRun:
    """One (target, N) run: open, ramp, measure the window, wait for the end."""

    def __init__(self, plan: LongPlan, server: Child, upstream: Child, route: str, count: int) -> None:
        self.plan, self.server, self.upstream, self.route, self.count = plan, server, upstream, route, count
        body = paced_bodies(plan.events)[route]
        self.request = encode_request(f"127.0.0.1:{server.port}", PATHS[route], body, HEADERS[route])
        self.expect = EXPECT[(route, True)]
        self.hist = Histogram()
        self.timers: list[GapTimer] = []
        self.usage = Usage()
        self.errors: list[str] = []
        self.late_starts = 0
        self.unfinished = 0  # streams still open FINISH_S after the window

    async def run(self) -> dict[str, Any]:
        pool = Pool("127.0.0.1", self.server.port)
        try:
            await _open(pool, self.count)
            self.usage.rss_before_kb = procstats.memory_kb(self.server.pid)[0]
            procstats.reset_peak(self.server.pid)
            start = time.perf_counter() + 0.2
            window = (start + self.plan.ramp_s + SETTLE_S, start + self.plan.seconds)
            conns = [await pool.get() for _ in range(self.count)]
            tasks = [asyncio.create_task(self._one(conn, start + i * self.plan.ramp_s / self.count, window))
                     for i, conn in enumerate(conns)]
            await self._watch(window)
            await self._finish(tasks)
            for conn in conns:
                conn.close()
        finally:
            pool.close()
        return self._summary(window[1] - window[0])

    async def _finish(self, tasks: list[asyncio.Task[None]]) -> None:
        """Wait for the streams to end. A saturated proxy delivers late: past ``FINISH_S`` the streams still open
        are counted as unfinished (their gaps in the window are counted already) and their connections closed."""
        _, pending = await asyncio.wait(tasks, timeout=FINISH_S)
        for task in pending:
            task.cancel()
        self.unfinished = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)

    async def _one(self, conn: Connection, at: float, window: tuple[float, float]) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        if time.perf_counter() > window[0] - SETTLE_S / 2:
            self.late_starts += 1  # not open, or barely, when gaps start to count
        try:
            timer = GapTimer(self.hist, *window)
            self.timers.append(timer)
            answer: Answer = await conn.exchange(self.request, timer)
        except ConnectionError as e:
            self.errors.append(str(e))
            return
        if answer.status != 200 or self.expect not in answer.tail:
            self.errors.append(f"HTTP {answer.status}: ...{answer.tail!r}")

    async def _watch(self, window: tuple[float, float]) -> None:
        """The processes' CPU and memory at the window's edges."""
        await asyncio.sleep(max(0.0, window[0] - time.perf_counter()))
        server0, upstream0, load0 = (procstats.snapshot(self.server.pid), procstats.snapshot(self.upstream.pid),
                                     procstats.own_cpu_s())
        await asyncio.sleep(max(0.0, window[1] - time.perf_counter()))
        server1, upstream1 = procstats.snapshot(self.server.pid), procstats.snapshot(self.upstream.pid)
        u = self.usage
        u.server_cpu_s, u.upstream_cpu_s = server1.cpu_s - server0.cpu_s, upstream1.cpu_s - upstream0.cpu_s
        u.server_wait_s = ((server1.wait_ns or 0) - (server0.wait_ns or 0)) / 1e9
        u.load_cpu_s = procstats.own_cpu_s() - load0
        u.rss_open_kb, u.hwm_kb = server1.rss_kb, server1.hwm_kb

    def _summary(self, window_s: float) -> dict[str, Any]:
        u, expected = self.usage, self.count * window_s / self.plan.interval
        return {
            "streams": self.count,
            "window_s": window_s,
            "gaps": self.hist.summary(),
            "delivered": sum(t.events for t in self.timers) / expected if expected else math.nan,
            "errors": len(self.errors),
            "first_error": self.errors[0][:200] if self.errors else None,
            "late_starts": self.late_starts,
            "unfinished": self.unfinished,
            "server_cpu": u.server_cpu_s / window_s,
            "server_wait": u.server_wait_s / window_s,
            "upstream_cpu": u.upstream_cpu_s / window_s,
            "load_cpu": u.load_cpu_s / window_s,
            "rss_before_mb": u.rss_before_kb / 1024,
            "rss_open_mb": u.rss_open_kb / 1024,
            "peak_rss_mb": u.hwm_kb / 1024,
            "kb_per_stream": (u.rss_open_kb - u.rss_before_kb) / self.count,
        }


StartProxy = Callable[[int], Child]  # a fresh proxy able to hold N streams
Log = Callable[[str], None]


async def run(plan: LongPlan, upstream: Child, start_proxy: StartProxy, stop: Callable[[Child], None],
              warm: Callable[[Child, str], Awaitable[None]], log: Log, *, shared_cpu: bool) -> dict[str, Any]:
    """Every N: directly, then through each route on a fresh proxy."""
    rows: dict[str, dict[str, Any]] = {}
    for count in plan.counts:
        direct = await StreamRun(plan, upstream, upstream, DIRECT, count).run()
        direct["load_saturated"] = not pace_kept(direct, plan.interval) or load_saturated(direct, shared=shared_cpu)
        rows.setdefault(str(count), {})["direct"] = direct
        log(_line("direct", direct))
        for route in plan.routes:
            proxy = start_proxy(count)
            try:
                await warm(proxy, route)
                row = await StreamRun(plan, proxy, upstream, route, count).run()
            finally:
                stop(proxy)
            row["added"] = added(row["gaps"], direct["gaps"])
            row["load_saturated"] = direct["load_saturated"] or load_saturated(row, shared=shared_cpu)
            rows[str(count)][route] = row
            log(_line(route, row))
    return {"plan": {"counts": list(plan.counts), "seconds": plan.seconds, "interval_s": plan.interval,
                     "ramp_s": plan.ramp_s, "routes": list(plan.routes)},
            "rows": rows, "targets": verdicts(rows)}


def pace_kept(direct: dict[str, Any], interval: float) -> bool:
    """Whether the direct run kept the pace: nearly every event seen, and the median gap near the interval (the
    fake upstream and the load generator alone could serve N streams)."""
    return bool(direct["delivered"] >= PACE_DELIVERED and direct["gaps"]["p50_ms"] <= interval * 1e3 * PACE_SLACK)


def load_saturated(row: dict[str, Any], *, shared: bool) -> bool:
    """Whether the load side (load generator and fake upstream, which share a CPU when pinned) was busy enough
    to be the run's limit, or fell behind (streams started late)."""
    busy = row["load_cpu"] + row["upstream_cpu"] if shared else max(row["load_cpu"], row["upstream_cpu"])
    return bool(busy >= SATURATED or row["late_starts"] > 0)


def _line(target: str, row: dict[str, Any]) -> str:
    g = row["gaps"]
    extra = "".join(f", +{k.split('_')[0]} {v:.2f} ms" for k, v in row.get("added", {}).items())
    return (f"long streams {row['streams']} {target}: gap p50 {g['p50_ms']:.2f} p99 {g['p99_ms']:.2f} ms{extra}, "
            f"server CPU {row['server_cpu']:.0%}, load {row['load_cpu']:.0%} + upstream {row['upstream_cpu']:.0%}, "
            f"RSS {row['rss_open_mb']:.0f} MB, {row['kb_per_stream']:.1f} KB/stream, errors {row['errors']}")


def verdicts(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """At the target's stream count (or, in a shorter run, the largest run), per route: the added p99 gap and
    the RSS."""
    if not rows:
        return []
    count = str(TARGET_STREAMS) if str(TARGET_STREAMS) in rows else max(rows, key=int)
    out = []
    for route, row in rows[count].items():
        if route == "direct":
            continue
        out.append(verdict(f"{count} streams: added p99 gap <= {TARGET_P99_MS:.0f} ms", route,
                           row["added"].get("p99_added_ms", math.nan), TARGET_P99_MS, "ms"))
        out.append(verdict(f"{count} streams: RSS < {TARGET_RSS_MB:.0f} MB", route, row["rss_open_mb"],
                           TARGET_RSS_MB, "MB"))
    return out




# --- report ---

def markdown(section: dict[str, Any]) -> list[str]:
    plan, rows = section["plan"], section["rows"]
    table_rows = []
    for count, by_target in rows.items():
        for target, r in by_target.items():
            add = r.get("added", {})
            notes = ["load side saturated"] if r.get("load_saturated") else []
            if r.get("unfinished"):
                notes.append(f"{r['unfinished']} streams unfinished {FINISH_S:.0f} s after the window")
            note = ", ".join(notes)
            table_rows.append([count, target, fmt(r["gaps"]["p50_ms"], 2), fmt(r["gaps"]["p99_ms"], 2),
                               fmt(add.get("p50_added_ms"), 2), fmt(add.get("p99_added_ms"), 2),
                               f"{r['server_cpu']:.0%}", f"{r.get('server_wait', 0):.0%}", fmt(r["rss_open_mb"], 0),
                               fmt(r["kb_per_stream"], 1),
                               f"{r['load_cpu']:.0%} + {r['upstream_cpu']:.0%}", f"{r['delivered']:.0%}",
                               str(r["errors"]), note])
    head = ["streams", "target", "gap p50 ms", "gap p99 ms", "+p50 ms", "+p99 ms", "server CPU", "CPU wait", "RSS MB",
            "KB/stream", "load gen + upstream CPU", "events seen", "errors", ""]
    return [
        "## Long streams", "",
        f"N concurrent streams, one event every {plan['interval_s'] * 1e3:.0f} ms for {plan['seconds']:.0f} s, "
        f"started over {plan['ramp_s']:.0f} s; gaps between the reads that bring events, counted while every stream "
        "is open. `+p50`/`+p99`: "
        "the gap percentile through the proxy minus the same directly (`direct`). Server CPU: share of one core "
        "(for `direct`, the fake upstream's); CPU wait: share of the window it was ready to run but waited for a "
        "CPU (other work on the machine: above a few percent, the run is disturbed). RSS: with every stream "
        "open; KB/stream = (RSS open - RSS before) / N. "
        "Events seen: events in the window over N x window / interval (an event late past the window's end is "
        "missing). Load side saturated: the load generator and the fake upstream together (each, when not pinned "
        "to one CPU) used 90% of their CPU, or streams started too late to be open when the window began, or "
        "the direct run at that N did not keep "
        "the pace (fewer than 95% of the events, or a median gap 20% over the interval): that run measures the "
        "load side, not the proxy." + (f" File descriptors: limit {section['nofile']} a process."
                                        if section.get("nofile") else ""), "",
        *table(head, table_rows),
        *targets_table(section["targets"]),
    ]
