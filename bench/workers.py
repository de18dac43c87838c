"""Cores: ``translator serve --workers 2`` against one worker, at concurrency 64 (closed loop), non-streamed and
20-event streams on the chat route: requests a second, latency, CPU of the whole process tree, and the scaling
ratio (2 workers' requests a second over 1 worker's).

Neither server is pinned: the workers share every CPU, with the load generator and the fake upstream (pinned
to CPU 0 on a 2-core machine), so on 2 cores the ratio says what a second worker buys where the load side
competes for the same cores, not what it would on a machine with a core to spare. The load side's CPU is
reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench import procstats, scenarios
from bench.closedloop import closed_loop
from bench.fleet import Child
from bench.markdown import fmt, table
from bench.rawclient import encode_request
from bench.scenarios import EXPECT, HEADERS, OPENAI, PATHS

KINDS = {"json": 0, "stream20": 20}


@dataclass(frozen=True, slots=True)
class WorkersPlan:
    workers: tuple[int, ...] = (1, 2)
    concurrency: int = 64
    seconds: float = 10.0
    route: str = OPENAI


def quick_plan() -> WorkersPlan:
    return WorkersPlan(seconds=3.0)


async def measure(server: Child, upstream: Child, plan: WorkersPlan, kind: str) -> dict[str, Any]:
    body = scenarios.simple_bodies(KINDS[kind])[plan.route]
    request = encode_request(f"127.0.0.1:{server.port}", PATHS[plan.route], body, HEADERS[plan.route])
    expect = EXPECT[(plan.route, KINDS[kind] > 0)]
    await closed_loop(server.port, request, expect, plan.concurrency, 0.5)  # untimed
    before, up_before, load_before = (procstats.tree_snapshot(server.pid), procstats.snapshot(upstream.pid),
                                      procstats.own_cpu_s())
    loop, elapsed = await closed_loop(server.port, request, expect, plan.concurrency, plan.seconds)
    after, up_after = procstats.tree_snapshot(server.pid), procstats.snapshot(upstream.pid)
    done = loop.latency.count
    return {"kind": kind, "requests": done, "errors": loop.errors, "first_error": loop.first_error,
            "rps": done / elapsed, "p50_ms": loop.latency.percentile_ms(50), "p99_ms": loop.latency.percentile_ms(99),
            "server_cpu": (after.cpu_s - before.cpu_s) / elapsed,
            "cpu_us_per_req": (after.cpu_s - before.cpu_s) / done * 1e6 if done else math.nan,
            "rss_mb": after.rss_kb / 1024,
            "load_side_cpu": (procstats.own_cpu_s() - load_before + up_after.cpu_s - up_before.cpu_s) / elapsed}


async def run(plan: WorkersPlan, upstream: Child, start: Callable[[int], Awaitable[Child]],
              stop: Callable[[Child], None], log: Callable[[str], None]) -> dict[str, Any]:
    """``start(n)``: a warmed-up ``translator serve --workers n``."""
    rows: dict[str, dict[str, Any]] = {}
    for count in plan.workers:
        server = await start(count)
        try:
            for kind in KINDS:
                row = await measure(server, upstream, plan, kind)
                rows.setdefault(kind, {})[str(count)] = row
                log(f"workers {count} {kind} c{plan.concurrency}: {row['rps']:.0f} req/s, p99 {row['p99_ms']:.1f} ms, "
                    f"CPU {row['server_cpu']:.0%} ({row['cpu_us_per_req']:.0f} us/req), errors {row['errors']}")
        finally:
            stop(server)
    return {"plan": {"workers": list(plan.workers), "concurrency": plan.concurrency, "seconds": plan.seconds,
                     "route": plan.route}, "rows": rows, "scaling": scaling(rows)}


def scaling(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """kind -> requests a second with the most workers over with one."""
    out = {}
    for kind, by_count in rows.items():
        most = max(by_count, key=int)
        if "1" in by_count and most != "1" and by_count["1"]["rps"]:
            out[kind] = by_count[most]["rps"] / by_count["1"]["rps"]
    return out


# --- report ---

def markdown(section: dict[str, Any]) -> list[str]:
    plan = section["plan"]
    rows = [[kind, count, fmt(r["rps"], 0), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), f"{r['server_cpu']:.0%}",
             fmt(r["cpu_us_per_req"], 0), fmt(r["rss_mb"], 0), f"{r['load_side_cpu']:.0%}", str(r["errors"])]
            for kind, by_count in section["rows"].items() for count, r in by_count.items()]
    ratios = ", ".join(f"{kind} {ratio:.2f}x" for kind, ratio in section["scaling"].items()) or "-"
    return [
        "## Cores: workers", "",
        f"`translator serve --workers N`, not pinned, chat route, concurrency {plan['concurrency']} (closed loop), "
        f"{plan['seconds']:.0f} s a run. CPU: the whole process tree's, in cores; RSS: summed over its processes. "
        "Load side CPU: the load generator and the fake upstream, which share the same cores.", "",
        *table(["kind", "workers", "req/s", "p50 ms", "p99 ms", "server CPU", "CPU us/req", "RSS MB",
                "load side CPU", "errors"], rows),
        f"Scaling (req/s with {max(plan['workers'])} workers over 1): {ratios}.", "",
    ]
