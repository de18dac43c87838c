"""Fixed-rate (open-loop) load, the way the compiled gateways publish their figures (TensorZero: an added p99 of
0.94 ms at 10,000 QPS on 4 vCPUs, 2,500 per vCPU; Bifrost: a mean overhead of 11 us at 5,000 RPS).

Requests start on a schedule, request i at i / rate seconds, whether or not earlier ones have finished (a
closed loop would slow down with the server and hide its queue). Each is timed from its write to its last
byte, on a keep-alive connection taken from a pool that grows as needed; how late each write was against
the schedule is kept too, to tell when the load generator itself fell behind. A run whose backlog passes
``rate x MAX_BACKLOG_S`` requests in flight stops there: the server cannot keep that rate.

Two parts: every route and ``direct`` at ``rate`` (default 2,500/s), non-streamed and 20-event streams;
then the search: the OpenAI route, non-streamed, at rising rates until the added p99 reaches 1 ms.
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
from bench.rawclient import Pool, encode_request
from bench.scenarios import CLAUDE, DIRECT, EXPECT, HEADERS, OPENAI, PATHS, RESPONSES

MAX_BACKLOG_S = 1.0
DRAIN_S = 10.0  # after the last write, how long answers are awaited (the rest count as unanswered)
TARGET_P99_MS = 1.0
# A load generator whose p99 write lateness passes this could not keep the schedule (its timers tick every
# millisecond under uvloop, so a write up to about 1 ms late is the schedule kept).
BEHIND_MS = 5.0
SATURATED = 0.9  # share of a CPU past which the load side counts as the run's limit
DISTURBED = 0.05  # a server runnable but waiting for a CPU this share of a run was held back by other work
KINDS = {"json": 0, "stream20": 20}


@dataclass(frozen=True, slots=True)
class RatePlan:
    rate: float = 2500.0
    seconds: float = 10.0
    routes: tuple[str, ...] = (OPENAI, CLAUDE, RESPONSES)
    search: tuple[float, ...] = (500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 7500, 10000)
    search_seconds: float = 5.0


def quick_plan() -> RatePlan:
    return RatePlan(rate=500.0, seconds=2.0, routes=(OPENAI,), search=(250, 500, 1000), search_seconds=1.5)


def schedule(rate: float, seconds: float) -> list[float]:
    """The send times, in seconds from the start: one every 1 / rate."""
    return [i / rate for i in range(int(rate * seconds))]


def due(offsets: list[float], start: int, elapsed: float) -> int:
    """The index past the last request due at ``elapsed`` seconds, from ``start`` on (every one due is sent at
    once, however late: the schedule never waits for the server)."""
    end = start
    while end < len(offsets) and offsets[end] <= elapsed:
        end += 1
    return end


@dataclass
class RateResult:
    latency: Histogram
    lateness: Histogram
    sent: int = 0
    errors: int = 0
    first_error: str | None = None
    overloaded: bool = False  # stopped: the backlog passed rate x MAX_BACKLOG_S
    elapsed_s: float = 0.0

    def fail(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message[:200]


class FixedRate:
    """One run: ``rate`` requests a second for ``seconds`` to one server."""

    def __init__(self, server: Child, route: str, body: bytes, streamed: bool) -> None:
        self.pool = Pool("127.0.0.1", server.port)
        self.request = encode_request(f"127.0.0.1:{server.port}", PATHS[route], body, HEADERS[route])
        self.expect = EXPECT[(route, streamed)]
        self.result = RateResult(Histogram(), Histogram())
        self.in_flight: set[asyncio.Task[None]] = set()

    async def run(self, rate: float, seconds: float) -> RateResult:
        offsets, sent, backlog = schedule(rate, seconds), 0, max(64, int(rate * MAX_BACKLOG_S))
        await self.pool.fill(min(256, max(8, int(rate / 100))))
        start = time.perf_counter()
        try:
            while sent < len(offsets) and not self.result.overloaded:
                elapsed = time.perf_counter() - start
                end = due(offsets, sent, elapsed)
                for i in range(sent, end):
                    self.result.lateness.add(elapsed - offsets[i])
                    self._launch()
                sent = end
                self.result.overloaded = len(self.in_flight) > backlog
                if sent < len(offsets):
                    await asyncio.sleep(max(0.0, offsets[sent] - (time.perf_counter() - start)))
            self.result.sent = sent
            if self.in_flight:
                await asyncio.wait(self.in_flight, timeout=DRAIN_S)
            self.result.elapsed_s = time.perf_counter() - start
        finally:
            for task in self.in_flight:
                task.cancel()
            self.pool.close()
        return self.result

    def _launch(self) -> None:
        task = asyncio.create_task(self._one())
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _one(self) -> None:
        try:
            conn = await self.pool.get()
            answer = await conn.exchange(self.request)
        except OSError as e:
            self.result.fail(f"{type(e).__name__}: {e}")
            return
        self.pool.put(conn)
        if answer.status != 200 or self.expect not in answer.tail:
            self.result.fail(f"HTTP {answer.status}: ...{answer.tail!r}")
            return
        self.result.latency.add(answer.done - answer.sent)


Proxy = Callable[[bool], Awaitable[Child]]  # the running proxy; True: a fresh one (warmed), after an overload
Log = Callable[[str], None]


async def measure(server: Child, upstream: Child, route: str, kind: str, rate: float,
                  seconds: float) -> dict[str, Any]:
    """One fixed-rate run, with the server's CPU (for ``direct``, the fake upstream's) and the load side's."""
    body = scenarios.simple_bodies(KINDS[kind])[route]
    run = FixedRate(server, route, body, KINDS[kind] > 0)
    before, up_before, load_before = (procstats.snapshot(server.pid), procstats.snapshot(upstream.pid),
                                      procstats.own_cpu_s())
    result = await run.run(rate, seconds)
    after, up_after = procstats.snapshot(server.pid), procstats.snapshot(upstream.pid)
    done, elapsed = result.latency.count, result.elapsed_s or math.nan
    load = (procstats.own_cpu_s() - load_before + up_after.cpu_s - up_before.cpu_s) / elapsed
    return {
        "route": route, "kind": kind, "rate": rate, "sent": result.sent, "ok": done, "errors": result.errors,
        "first_error": result.first_error, "overloaded": result.overloaded,
        "achieved_rps": done / elapsed,
        "latency": result.latency.summary(), "lateness": result.lateness.summary(),
        "generator_behind": result.lateness.percentile_ms(99) > BEHIND_MS,
        "server_cpu": (after.cpu_s - before.cpu_s) / elapsed,
        "server_wait": ((after.wait_ns or 0) - (before.wait_ns or 0)) / 1e9 / elapsed,
        "cpu_us_per_req": (after.cpu_s - before.cpu_s) / done * 1e6 if done else math.nan,
        "upstream_cpu": (up_after.cpu_s - up_before.cpu_s) / elapsed,
        "load_side_cpu": load,  # the load generator and the fake upstream (one CPU when pinned)
        "load_saturated": load >= SATURATED,
    }


def with_added(row: dict[str, Any], direct: dict[str, Any]) -> dict[str, Any]:
    """The proxy's run with what it adds over the direct run at the same rate. A direct run that could not keep
    the rate (overloaded, its generator behind, its load side saturated) marks the proxy's as load-bound too."""
    direct_failed = any(direct.get(flag) for flag in ("overloaded", "generator_behind", "load_saturated"))
    return {**row, "load_saturated": bool(row.get("load_saturated") or direct_failed),
            "added": {**added(row["latency"], direct["latency"]),
                      "mean_added_ms": row["latency"]["mean_ms"] - direct["latency"]["mean_ms"]}}


def step_met(row: dict[str, Any]) -> bool:
    """A rate the proxy keeps: every request answered, no backlog, and an added p99 under the target."""
    return (not row["overloaded"] and row["errors"] == 0 and row["ok"] == row["sent"]
            and row["added"].get("p99_added_ms", math.inf) < TARGET_P99_MS)


async def run(plan: RatePlan, upstream: Child, proxy: Proxy, log: Log) -> dict[str, Any]:
    """``proxy(fresh)``: the running proxy, restarted (and warmed) after a run that overloaded it."""
    fixed: list[dict[str, Any]] = []
    for kind in KINDS:
        direct = await measure(upstream, upstream, DIRECT, kind, plan.rate, plan.seconds)
        fixed.append(direct)
        log(_line(direct))
        for route in plan.routes:
            server = await proxy(any(r["overloaded"] for r in fixed[-1:]))
            row = with_added(await measure(server, upstream, route, kind, plan.rate, plan.seconds), direct)
            fixed.append(row)
            log(_line(row))
    search = await _search(plan, upstream, proxy, log)
    met = [s["rate"] for s in search if s["met"]]
    return {"plan": {"rate": plan.rate, "seconds": plan.seconds, "routes": list(plan.routes),
                     "search": list(plan.search), "search_seconds": plan.search_seconds},
            "fixed": fixed, "search": search, "highest_rate_met": max(met) if met else None,
            "targets": verdicts(plan, fixed, met)}


async def _search(plan: RatePlan, upstream: Child, proxy: Proxy, log: Log) -> list[Any]:
    """Rising rates, OpenAI route, non-streamed, until a rate is missed."""
    out: list[dict[str, Any]] = []
    for rate in plan.search:
        direct = await measure(upstream, upstream, DIRECT, "json", rate, plan.search_seconds)
        server = await proxy(True)  # every step on a fresh proxy: an earlier step's backlog is gone
        row = with_added(await measure(server, upstream, OPENAI, "json", rate, plan.search_seconds), direct)
        step = {"rate": rate, "direct": direct, "proxy": row, "met": step_met(row)}
        out.append(step)
        log(f"rate search {rate:.0f}/s: {_line(row)}")
        if not step["met"]:
            break
    return out


def verdicts(plan: RatePlan, fixed: list[dict[str, Any]], met: list[float]) -> list[dict[str, Any]]:
    out = [verdict(f"added p99 < {TARGET_P99_MS:.0f} ms at {plan.rate:.0f} req/s", f"{r['route']} {r['kind']}",
                   math.inf if r["overloaded"] else r["added"].get("p99_added_ms", math.nan), TARGET_P99_MS, "ms")
           for r in fixed if r["route"] != DIRECT]
    return out


def _line(row: dict[str, Any]) -> str:
    lat, add = row["latency"], row.get("added", {})
    extra = f", +p99 {add['p99_added_ms']:.2f} ms" if "p99_added_ms" in add else ""
    flags = "".join(f", {flag}" for flag in ("overloaded", "generator_behind", "load_saturated") if row[flag])
    return (f"fixed rate {row['rate']:.0f}/s {row['route']} {row['kind']}: {row['ok']}/{row['sent']} ok, "
            f"p50 {lat['p50_ms']:.2f} p99 {lat['p99_ms']:.2f} ms{extra}, server CPU {row['server_cpu']:.0%}, "
            f"errors {row['errors']}{flags}")


# --- report ---

def _row_cells(r: dict[str, Any]) -> list[str]:
    lat, add = r["latency"], r.get("added", {})
    notes = ", ".join(n.replace("_", " ") for n in ("overloaded", "generator_behind", "load_saturated") if r.get(n))
    if (r.get("server_wait") or 0) > DISTURBED:
        notes += f"{', ' if notes else ''}server waited {r['server_wait']:.0%} of the run for a CPU"
    return [r["route"], r["kind"], fmt(r["achieved_rps"], 0), fmt(lat["p50_ms"], 2), fmt(lat["p99_ms"], 2),
            fmt(add.get("p50_added_ms"), 3), fmt(add.get("p99_added_ms"), 3), fmt(add.get("p999_added_ms"), 3),
            fmt(add.get("mean_added_ms"), 3), _share(r["server_cpu"]), fmt(r["cpu_us_per_req"], 0),
            _share(r.get("load_side_cpu")), f"{r['ok']}/{r['sent']}", notes]


def _share(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.0%}"


HEAD = ["route", "kind", "req/s done", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "+p99.9 ms", "+mean ms",
        "server CPU", "CPU us/req", "load side CPU", "ok/sent", ""]


def markdown(section: dict[str, Any]) -> list[str]:
    plan = section["plan"]
    search = [[fmt(s["rate"], 0), *_row_cells(s["proxy"])[2:], "met" if s["met"] else "**missed**"]
              for s in section["search"]]
    highest = section["highest_rate_met"]
    found = f"**{highest:.0f} req/s**." if highest else "none of those tried."
    last = section["search"][-1] if section["search"] else None
    if last and not last["met"] and last["proxy"].get("load_saturated"):
        found += (f" At {last['rate']:.0f} req/s the load side could not keep the rate: it, not the proxy, ended "
                  "the search.")
    return [
        "## Fixed-rate load", "",
        f"Open loop: request i starts at i / rate, whatever the earlier ones are doing; {plan['seconds']:.0f} s per "
        "run; each request timed from its write to its last byte. `+`: over `direct` at the same rate. "
        "Overloaded: more than a second's worth of requests in flight, the run stopped. Generator behind: the "
        f"load generator's writes were more than {BEHIND_MS:.0f} ms late at p99. Load saturated: the load "
        f"generator and the fake upstream used {SATURATED:.0%} of their CPU, or the direct run at that rate could "
        "not keep it. Either way that run measures the load "
        "side, not the server. Peers' published figures: TensorZero (Rust) an added p99 of 0.94 ms at 10,000 QPS "
        "on 4 vCPUs (2,500 per vCPU), Bifrost (Go) a mean overhead of 11 us at 5,000 RPS.", "",
        f"At {plan['rate']:.0f} req/s:", "",
        *table(HEAD, [_row_cells(r) for r in section["fixed"]]),
        f"Highest rate with an added p99 under {TARGET_P99_MS:.0f} ms (OpenAI route, non-streamed, "
        f"{plan['search_seconds']:.0f} s a step): {found}",
        "",
        *table(["rate", *HEAD[2:], "verdict"], search),
        *targets_table(section["targets"]),
    ]
