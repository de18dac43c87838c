"""From raw samples to numbers: pooled statistics per scenario and target, the added latency over a
direct call, the proxy/passthrough ratios (and proxy/baseline with ``--baseline``), CPU per stream event,
memory, and the targets' verdicts.

Runs of one scenario and target from all rounds are pooled: latencies together (then p50/p99), CPU time
and request counts summed (CPU per request = total CPU / total successful requests).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from bench.runner import MemorySample, Sample
from bench.scenarios import PROBED_ROUTES, ROUTES, Plan

KB = 1024
MB = 1024 * 1024
# A reference (passthrough) added latency below max(ADDED_FLOOR_MS, ADDED_FLOOR_SHARE * direct's p99)
# (for p50, direct's p50) counts as that floor: at high concurrency the passthrough often adds nothing
# measurable, and a ratio to ~0 (or to a negative difference of two noisy p99s) means no more than "missed".
ADDED_FLOOR_MS = 0.1
ADDED_FLOOR_SHARE = 0.05
LIMITS = {
    "cpu_ratio": 1.5,
    "event_cpu_us": 25.0,
    "p99_added_ratio": 1.5,
    "big_body_growth": 4.0,
    "held_stream_kb": 64.0,
    "rss_start_mb": 80.0,
}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of unsorted values (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Stats:
    requests: int
    errors: int
    first_error: str | None
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    peak_rss_mb: float
    capped_runs: int
    added_p50_ms: float | None = None
    added_p99_ms: float | None = None


def pool(samples: list[Sample]) -> Stats:
    latencies = [x for s in samples for x in s.result.latencies]
    ok = len(latencies)
    elapsed = sum(s.result.elapsed for s in samples)
    cpu = sum(s.cpu_s for s in samples)
    return Stats(
        requests=ok,
        errors=sum(s.result.errors for s in samples),
        first_error=next((s.result.first_error for s in samples if s.result.first_error), None),
        rps=ok / elapsed if elapsed else math.nan,
        p50_ms=percentile(latencies, 50) * 1e3,
        p99_ms=percentile(latencies, 99) * 1e3,
        cpu_us_per_req=cpu / ok * 1e6 if ok else math.nan,
        peak_rss_mb=max(s.hwm_kb for s in samples) / KB,
        capped_runs=sum(s.result.capped for s in samples),
    )


def scenario_stats(samples: Iterable[Sample]) -> dict[str, dict[str, Stats]]:
    """scenario -> target -> pooled stats, with the latency each target adds over ``direct``."""
    grouped: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        grouped[s.scenario][s.target].append(s)
    out: dict[str, dict[str, Stats]] = {}
    for scenario, by_target in grouped.items():
        stats = {target: pool(group) for target, group in by_target.items()}
        direct = stats.get("direct")
        if direct is not None:
            for name, st in stats.items():
                if name != "direct":
                    st.added_p50_ms = st.p50_ms - direct.p50_ms
                    st.added_p99_ms = st.p99_ms - direct.p99_ms
        out[scenario] = stats
    return out


def _ratio(a: float | None, b: float | None, floor: float = 0.0) -> float:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return math.nan
    b = max(b, floor)
    if b <= 0:
        return math.nan
    return max(a, floor) / b if floor else a / b


def _floor(direct_ms: float | None) -> float:
    return max(ADDED_FLOOR_MS, ADDED_FLOOR_SHARE * direct_ms) if direct_ms is not None else ADDED_FLOOR_MS


Ratios = dict[str, dict[str, dict[str, float]]]  # scenario -> route -> figure -> proxy / reference


def ratios(stats: dict[str, dict[str, Stats]], reference: str = "passthrough") -> Ratios:
    """scenario -> route -> {cpu, rps, added_p50, added_p99}: proxy over ``reference`` (the passthrough, or
    the baseline), from the same rounds; a route without a ``reference`` target (a baseline from before that
    route) has none."""
    out: Ratios = {}
    for scenario, by_target in stats.items():
        direct = by_target.get("direct")
        for route in ROUTES:
            proxy, ref = by_target.get(f"proxy-{route}"), by_target.get(f"{reference}-{route}")
            if proxy is None or ref is None:
                continue
            out.setdefault(scenario, {})[route] = {
                "cpu": _ratio(proxy.cpu_us_per_req, ref.cpu_us_per_req),
                "rps": _ratio(proxy.rps, ref.rps),
                "added_p50": _ratio(proxy.added_p50_ms, ref.added_p50_ms, _floor(direct.p50_ms if direct else None)),
                "added_p99": _ratio(proxy.added_p99_ms, ref.added_p99_ms, _floor(direct.p99_ms if direct else None)),
            }
    return out


def event_cpu(stats: dict[str, dict[str, Stats]], concurrencies: Iterable[int]) -> dict[str, dict[str, float]]:
    """target -> "c<N>" -> microseconds of server CPU per stream event: (500-delta - 20-delta) / 480."""
    out: dict[str, dict[str, float]] = {}
    for c in concurrencies:
        long, short = stats.get(f"stream500-c{c}"), stats.get(f"stream20-c{c}")
        if long is None or short is None:
            continue
        for target in long:
            if target in short:
                per = (long[target].cpu_us_per_req - short[target].cpu_us_per_req) / 480
                out.setdefault(target, {})[f"c{c}"] = per
    return out


def memory(big: list[MemorySample], held: list[MemorySample]) -> dict[str, Any]:
    rss_start = {m.target: m.rss_start_kb / KB for m in [*big, *held]}
    return {
        "rss_start_mb": rss_start,
        "big_body": {m.target: {
            "body_mb": m.body_bytes / MB,
            "requests": len(m.result.latencies),
            "errors": m.result.errors,
            "first_error": m.result.first_error,
            "rss_before_mb": m.rss_before_kb / KB,
            "peak_mb": m.peak_kb / KB,
            "growth_mb": (m.peak_kb - m.rss_before_kb) / KB,
            "growth_x_body": (m.peak_kb - m.rss_before_kb) * KB / m.body_bytes,
            "p50_ms": percentile(m.result.latencies, 50) * 1e3,
        } for m in big},
        "held_streams": {m.target: {
            "streams_open": m.requests,
            "errors": m.result.errors,
            "first_error": m.result.first_error,
            "rss_before_mb": m.rss_before_kb / KB,
            "rss_open_mb": m.peak_kb / KB,
            "kb_per_stream": (m.peak_kb - m.rss_before_kb) / m.requests if m.requests else math.nan,
        } for m in held},
    }


@dataclass
class Verdict:
    target: str
    detail: str
    value: float
    limit: float
    unit: str
    met: bool


def _verdict(target: str, detail: str, value: float, limit: float, unit: str) -> Verdict:
    """Targets worded "<=" are "at most" the limit, those worded "<" strictly under it."""
    strict = "<=" not in target
    met = not math.isnan(value) and (value < limit if strict else value <= limit)
    return Verdict(target, detail, value, limit, unit, met)


def verdict(target: str, detail: str, value: float, limit: float, unit: str) -> dict[str, Any]:
    """A verdict as the report's JSON holds it (the targets of every section)."""
    return asdict(_verdict(target, detail, value, limit, unit))


def _worst(values: dict[str, float]) -> tuple[str, float]:
    if not values or any(math.isnan(v) for v in values.values()):
        return "n/a", math.nan
    key = max(values, key=lambda k: values[k])
    return key, values[key]


def verdicts(plan: Plan, stats: dict[str, dict[str, Stats]], mem: dict[str, Any]) -> list[Verdict]:
    rat = ratios(stats)
    concs = sorted({s.concurrency for s in plan.scenarios if s.kind != "history"})
    out: list[Verdict] = []
    for route in ROUTES:
        for label in ("json", "stream20", "stream500"):
            cpu = {f"c{c}": rat[f"{label}-c{c}"][route]["cpu"] for c in concs
                   if route in rat.get(f"{label}-c{c}", {})}
            worst, value = _worst(cpu)
            out.append(_verdict("CPU/request <= 1.5x passthrough", f"{route} {label} (worst: {worst})",
                                value, LIMITS["cpu_ratio"], "x"))
    per_event = event_cpu(stats, concs)
    for route in ROUTES:
        worst, value = _worst(per_event.get(f"proxy-{route}", {}))
        out.append(_verdict("CPU per stream event <= 25 us", f"{route} (worst: {worst})", value,
                            LIMITS["event_cpu_us"], "us"))
    top = max(concs)
    for route in ROUTES:
        for label in ("json", "stream20", "stream500"):
            value = rat.get(f"{label}-c{top}", {}).get(route, {}).get("added_p99", math.nan)
            out.append(_verdict(f"p99 added latency at c{top} <= 1.5x passthrough", f"{route} {label}", value,
                                LIMITS["p99_added_ratio"], "x"))
    for route in PROBED_ROUTES:
        big = mem["big_body"].get(f"proxy-{route}", {})
        out.append(_verdict("10 MB request: peak growth < 4x body", route, big.get("growth_x_body", math.nan),
                            LIMITS["big_body_growth"], "x"))
    for route in PROBED_ROUTES:
        held = mem["held_streams"].get(f"proxy-{route}", {})
        out.append(_verdict("memory per open idle stream < 64 KB", f"{route} ({held.get('streams_open', 0)} open)",
                            held.get("kb_per_stream", math.nan), LIMITS["held_stream_kb"], "KB"))
    starts = [v for k, v in mem["rss_start_mb"].items() if k.startswith("proxy")]
    out.append(_verdict("RSS at start < 80 MB", "proxy", max(starts) if starts else math.nan,
                        LIMITS["rss_start_mb"], "MB"))
    return out


def summarize(plan: Plan, samples: list[Sample], big: list[MemorySample], held: list[MemorySample]) -> dict[str, Any]:
    stats = scenario_stats(samples)
    mem = memory(big, held)
    concs = sorted({s.concurrency for s in plan.scenarios if s.kind != "history"})
    return {
        "scenarios": {name: {t: asdict(st) for t, st in by_target.items()} for name, by_target in stats.items()},
        "ratios": ratios(stats),
        **({"baseline_ratios": ratios(stats, "baseline")} if plan.baseline else {}),
        "event_cpu_us": event_cpu(stats, concs),
        "memory": mem,
        "targets": [asdict(v) for v in verdicts(plan, stats, mem)],
        "rounds": [{"scenario": s.scenario, "target": s.target, "round": s.round, "requests": s.ok,
                    "errors": s.result.errors, "elapsed_s": s.result.elapsed, "cpu_s": s.cpu_s,
                    "p50_ms": percentile(s.result.latencies, 50) * 1e3,
                    "p99_ms": percentile(s.result.latencies, 99) * 1e3} for s in samples],
    }
