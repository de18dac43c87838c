"""Big contexts: long tool-using histories (100 KB, 1 MB with 500 messages, 4 MB) and an 8 MB request of images,
on the chat route and the Claude route: the latency the proxy adds and its CPU per request.

Two checks come with it. The chat route converts the whole history, so its cost should grow linearly with
the size (a straight line through the three histories, each point within ``LINEAR_TOLERANCE`` of it). The
Claude route is a relay: what it spends on a big body beyond what the passthrough's plain byte relay spends
(each above its own small request) should stay below what one full parse of the body costs (orjson, timed
here in the benchmark's own process on the same body: a floor for any parse).

Requests are sequential (concurrency 1), on one freshly started proxy, after an untimed one of each body.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from bench import procstats, scenarios
from bench.analysis import percentile, verdict
from bench.fleet import Child
from bench.loadgen import LoadClient
from bench.markdown import fmt, table, targets_table
from bench.runner import request_for
from bench.scenarios import CLAUDE, DIRECT, OPENAI, Target

MB = 2**20
LINEAR_TOLERANCE = 0.15
HELLO = "hello"


@dataclass(frozen=True, slots=True)
class ContextPlan:
    history_sizes: tuple[int, ...] = (100 * 1024, MB, 4 * MB)
    image_size: int = 8 * MB
    routes: tuple[str, ...] = (OPENAI, CLAUDE)
    requests_per_mb: float = 12.0  # requests at each size: this many per MB, between 4 and 40
    hello_requests: int = 100


def quick_plan() -> ContextPlan:
    return ContextPlan(history_sizes=(100 * 1024, 512 * 1024, MB), image_size=2 * MB, requests_per_mb=4.0,
                       hello_requests=20)


def cases(plan: ContextPlan) -> dict[str, dict[str, bytes]]:
    """name -> route -> body: a small request, the histories, the images."""
    out = {HELLO: scenarios.simple_bodies(0)}
    for size in plan.history_sizes:
        out[f"history-{_label(size)}"] = scenarios.sized_history_bodies(size)
    out[f"images-{_label(plan.image_size)}"] = scenarios.big_bodies(plan.image_size)
    return out


def _label(size: int) -> str:
    return f"{size // MB}MB" if size >= MB else f"{size // 1024}KB"


def requests_for(plan: ContextPlan, size: int) -> int:
    return max(4, min(40, round(plan.requests_per_mb * MB / max(size, 1))))


def parse_cost_us(body: bytes, tries: int = 5) -> float:
    """The fastest of ``tries`` full parses of ``body`` (orjson), in microseconds."""
    best = math.inf
    for _ in range(tries):
        t0 = time.perf_counter()
        orjson.loads(body)
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


RELAY = "passthrough-claude"  # the passthrough's plain byte relay, the reference of the Claude route


async def measure(server: Child, route: str, body: bytes, requests: int) -> dict[str, Any]:
    target = Target("upstream" if route == DIRECT else "proxy", CLAUDE if route == RELAY else route)
    req = request_for(server, target, body, False)
    async with LoadClient(timeout=300) as client:
        await client.run(req, requests=1, concurrency=1, time_cap=120)  # untimed
        before = procstats.snapshot(server.pid)
        result = await client.run(req, requests=requests, concurrency=1, time_cap=120)
        after = procstats.snapshot(server.pid)
    ok = len(result.latencies)
    return {"bytes": len(body), "requests": ok, "errors": result.errors, "first_error": result.first_error,
            "p50_ms": percentile(result.latencies, 50) * 1e3,
            "cpu_us_per_req": (after.cpu_s - before.cpu_s) / ok * 1e6 if ok else math.nan}


async def run(plan: ContextPlan, upstream: Child, proxy: Child, passthrough: Child,
              log: Callable[[str], None]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for name, bodies in cases(plan).items():
        count = plan.hello_requests if name == HELLO else requests_for(plan, len(bodies[OPENAI]))
        direct = await measure(upstream, DIRECT, bodies[DIRECT], count)
        row: dict[str, Any] = {"direct": direct}
        for route in (*plan.routes, RELAY):
            server, body = (passthrough, bodies[CLAUDE]) if route == RELAY else (proxy, bodies[route])
            m = await measure(server, route, body, count)
            m["added_p50_ms"] = m["p50_ms"] - direct["p50_ms"]
            m["parse_us"] = parse_cost_us(body)
            row[route] = m
            log(f"big context {name} {route}: {m['bytes'] / MB:.2f} MB, +p50 {m['added_p50_ms']:.2f} ms, "
                f"CPU {m['cpu_us_per_req']:.0f} us/req (a parse: {m['parse_us']:.0f} us), errors {m['errors']}")
        rows[name] = row
    above_hello(rows)
    return {"plan": {"history_sizes": list(plan.history_sizes), "image_size": plan.image_size,
                     "routes": list(plan.routes)},
            "rows": rows, "linear": linearity(rows), "targets": verdicts(rows)}


def above_hello(rows: dict[str, dict[str, Any]]) -> None:
    """Each route's CPU per request above its CPU for a small request: what the size costs."""
    hello = rows.get(HELLO, {})
    for row in rows.values():
        for route, m in row.items():
            if route != DIRECT and route in hello:
                m["cpu_above_small_us"] = m["cpu_us_per_req"] - hello[route]["cpu_us_per_req"]


def linear_fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares line through (x, y) points: (slope, intercept)."""
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else math.nan
    return slope, my - slope * mx


def max_deviation(points: list[tuple[float, float]]) -> float:
    """The largest distance of a point from the fitted line, relative to the point's own y (0 = a line)."""
    slope, intercept = linear_fit(points)
    return max(abs(y - (slope * x + intercept)) / abs(y) if y else math.inf for x, y in points)


def linearity(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The chat route's CPU above a small request against the history's size in MB."""
    points = [(m["bytes"] / MB, m["cpu_above_small_us"]) for name, row in rows.items()
              if name.startswith("history-") and (m := row.get(OPENAI)) and "cpu_above_small_us" in m]
    if len(points) < 3:
        return {"points": points, "us_per_mb": math.nan, "max_deviation": math.nan}
    slope, intercept = linear_fit(points)
    return {"points": points, "us_per_mb": slope, "intercept_us": intercept, "max_deviation": max_deviation(points)}


def verdicts(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = [verdict(f"chat route: conversion cost linear in size (deviation < {LINEAR_TOLERANCE:.0%})", "histories",
                   linearity(rows)["max_deviation"] * 100, LINEAR_TOLERANCE * 100, "%")]
    for name, row in rows.items():
        claude, relay = row.get(CLAUDE), row.get(RELAY)
        if name != HELLO and claude and relay and "cpu_above_small_us" in claude:
            beyond = claude["cpu_above_small_us"] - relay["cpu_above_small_us"]
            out.append(verdict("Claude route: a relay (CPU beyond a plain relay's < 1 full parse)", name,
                               beyond / claude["parse_us"], 1.0, "parses"))
    return out


# --- report ---

def markdown(section: dict[str, Any]) -> list[str]:
    rows = []
    for name, row in section["rows"].items():
        for route, m in row.items():
            rows.append([name, route, fmt(m["bytes"] / MB, 2), str(m["requests"]), fmt(m["p50_ms"], 2),
                         fmt(m.get("added_p50_ms"), 2), fmt(m["cpu_us_per_req"], 0),
                         fmt(m.get("cpu_above_small_us"), 0), fmt(m.get("parse_us"), 0), str(m["errors"])])
    lin = section["linear"]
    return [
        "## Big contexts", "",
        "Sequential requests, one proxy. Histories: tool-using conversations of 500 messages a megabyte (tool "
        "calls and results), the same make-up at every size; images: base64 PNG parts. `+p50`: over `direct` "
        "(the fake upstream, same Claude body). `passthrough-claude`: the passthrough's plain byte relay of the "
        "Claude route. CPU above small: CPU per request minus the same route's for a small request. One parse: "
        "the fastest of five `orjson.loads` of the same body in the benchmark's own "
        "process, the least any full parse costs.", "",
        *table(["case", "route", "MB", "requests", "p50 ms", "+p50 ms", "CPU us/req", "CPU above small us",
                "one parse us", "errors"], rows),
        f"Chat route, CPU above a small request against size: {fmt(lin['us_per_mb'], 0)} us per MB; the points "
        f"are within {fmt(lin['max_deviation'] * 100, 1)}% of a straight line.", "",
        *targets_table(section["targets"]),
    ]
