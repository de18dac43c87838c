"""Writing results: the machine header, ``latest.json`` (everything, per round too) and ``latest.md``
(the tables a person reads; with ``--baseline``, also the proxy beside the baseline)."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from bench import bigcontext, longstreams, openloop, peers, workers
from bench.analysis import ADDED_FLOOR_MS, ADDED_FLOOR_SHARE
from bench.markdown import fmt, table, targets_table
from bench.scenarios import ROUTES


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def machine(nproc: int, pinning: str) -> dict[str, Any]:
    """``nproc``: the CPUs the benchmark could use (taken before it pinned itself to one)."""
    return {
        "date": now(),
        "nproc": nproc,
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "aiohttp": _version("aiohttp"),
        "uvloop": _version("uvloop"),
        "orjson": _version("orjson"),
        "pinning": pinning,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def loadavg() -> str:
    """The 1/5/15-minute load averages: other work on the machine shows up here."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


def git_state(path: str) -> str:
    """The commit of the code under test, and whether ``path`` has uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", path], cwd=root, capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (f" + uncommitted changes in {path}/" if dirty else "")


def read(out_dir: Path, name: str) -> dict[str, Any]:
    """An earlier results file (to update the sections run again), or nothing."""
    try:
        data = orjson.loads((out_dir / f"{name}.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def write(out_dir: Path, results: dict[str, Any], name: str = "latest") -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    md_path.write_text(markdown(results))
    return json_path, md_path


# --- Markdown ---

_f, _table = fmt, table


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# translator benchmark - {m['date']}",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']}, Linux {m['kernel']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, orjson {m['orjson']}. Pinning: {m['pinning']}.",
        "",
        *_summary(results),
        *(_rounds(results) if "run" in results else []),
        *_sections(results.get("sections", {})),
    ]
    return "\n".join(lines)


def _summary(results: dict[str, Any]) -> list[str]:
    """Targets met per section, the rounds (``throughput``) first."""
    counts = [("throughput", results["targets"])] if "targets" in results else []
    counts += [(name, s.get("targets", [])) for name, s in results.get("sections", {}).items()]
    parts = [f"{name} {sum(t['met'] for t in targets)} of {len(targets)}" for name, targets in counts if targets]
    return [f"Targets met: {'; '.join(parts)}.", ""] if parts else []


def _rounds(results: dict[str, Any]) -> list[str]:
    """The interleaved rounds and the memory probes (section ``throughput``)."""
    run = results["run"]
    return [
        f"Rounds ({'quick' if run['quick'] else 'full'}): `{run['command']}`, {run['rounds']} of "
        f"{run['rounds_planned']} round(s), {run['duration_s']:.0f} s; translator at {run['translator']}"
        f"{_baseline_at(run)}; load average before {run['loadavg_before']}, after {run['loadavg_after']}.",
        "",
        *_targets(results["targets"]),
        *_scenarios(results["scenarios"]),
        *_ratios(results["ratios"]),
        *_baseline(results),
        *_events(results["event_cpu_us"]),
        *_memory(results["memory"]),
        *_method(run.get("upstream_cpu"), run.get("baseline")),
    ]


SECTION_MARKDOWN: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "long-streams": longstreams.markdown,
    "open-loop": openloop.markdown,
    "big-contexts": bigcontext.markdown,
    "peers": peers.markdown,
    "workers": workers.markdown,
}


def _sections(sections: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for name, section in sections.items():
        render = SECTION_MARKDOWN.get(name)
        if render is None:
            continue
        run = section["run"]
        body = [f"## {name}", "", f"**Failed**: {section['error']}", ""] if "error" in section else render(section)
        lines += [body[0], "",
                  f"Run: `{run['command']}`{' (quick)' if run.get('quick') else ''}, {run['date']}, "
                  f"{run['duration_s']:.0f} s; translator at {run.get('translator', '-')}; load average before "
                  f"{run['loadavg_before']}, after {run['loadavg_after']}.", *body[1:]]
    return lines


def _targets(targets: list[dict[str, Any]]) -> list[str]:
    met = sum(t["met"] for t in targets)
    return ["## Targets", "", f"{met} of {len(targets)} met.", "", *targets_table(targets)]


def _scenarios(scenarios: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    rows = []
    for name, by_target in scenarios.items():
        for target, s in by_target.items():
            errors = str(s["errors"]) + (f" ({s['first_error'][:60]})" if s["first_error"] else "")
            rows.append([name, target, _f(s["rps"], 0), _f(s["p50_ms"], 2), _f(s["p99_ms"], 2),
                         _f(s["added_p50_ms"], 2), _f(s["added_p99_ms"], 2), _f(s["cpu_us_per_req"], 0),
                         _f(s["peak_rss_mb"], 1), str(s["requests"]), errors])
    head = ["scenario", "target", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "CPU us/req",
            "peak RSS MB", "requests", "errors"]
    return ["## Throughput, latency, CPU", "",
            "`+p50`/`+p99`: latency added over `direct` (the fake upstream called without a proxy). "
            "CPU: the server process's own CPU time per request (for `direct`, the fake upstream's).", "",
            *_table(head, rows)]


def _ratios(ratios: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    rows = [[name, route, _f(r["cpu"], 2), _f(r["rps"], 2), _f(r["added_p99"], 2)]
            for name, by_route in ratios.items() for route, r in by_route.items()]
    return ["## Proxy / passthrough (same rounds)", "",
            f"`+p99` ratio: a passthrough added p99 below {ADDED_FLOOR_SHARE:.0%} of `direct`'s p99 (at least "
            f"{ADDED_FLOOR_MS} ms) counts as that floor; at concurrency 64 the passthrough often adds almost "
            "nothing, and a ratio to ~0 says only 'missed'.", "",
            *_table(["scenario", "route", "CPU/req", "req/s", "+p99"], rows)]


def _baseline_at(run: dict[str, Any]) -> str:
    base = run.get("baseline")
    return f", baseline at {base['commit']} (`--baseline {base['ref']}`)" if base else ""


def _baseline(results: dict[str, Any]) -> list[str]:
    """Proxy beside baseline: CPU per request of each, and proxy/baseline ratios; nothing without --baseline."""
    if "baseline_ratios" not in results:
        return []
    scenarios, rows = results["scenarios"], []
    for name, by_route in results["baseline_ratios"].items():
        for route, r in by_route.items():
            proxy, base = scenarios[name][f"proxy-{route}"], scenarios[name][f"baseline-{route}"]
            rows.append([name, route, _f(proxy["cpu_us_per_req"], 0), _f(base["cpu_us_per_req"], 0), _f(r["cpu"], 2),
                         _f(r["added_p50"], 2), _f(r["added_p99"], 2), _f(r["rps"], 2)])
    base = results["run"]["baseline"]
    missing = [route for route in ROUTES if route not in base.get("routes", ROUTES)]
    skipped = f" The baseline has no {', '.join(missing)} route: no rows for it here." if missing else ""
    return [f"## Proxy / baseline at {base['commit']} (same rounds)", "",
            "The proxy beside itself as it was at the baseline commit, run the same way in the same rounds. "
            "Below 1: the proxy costs less CPU or adds less latency than the baseline (for req/s: served fewer). "
            f"`+p50`/`+p99`: added latency over `direct`, floored as above.{skipped}", "",
            *_table(["scenario", "route", "proxy CPU us/req", "baseline CPU us/req", "CPU/req", "+p50", "+p99",
                     "req/s"], rows)]


def _events(events: dict[str, dict[str, float]]) -> list[str]:
    cols = sorted({c for v in events.values() for c in v}, key=lambda c: int(c[1:]))
    rows = [[target, *[_f(v.get(c), 2) for c in cols]] for target, v in events.items()]
    return ["## CPU per stream event (us)", "", "(CPU/request of 500 deltas - of 20 deltas) / 480.", "",
            *_table(["target", *cols], rows)]


def _memory(mem: dict[str, Any]) -> list[str]:
    start = [[t, _f(v, 1)] for t, v in mem["rss_start_mb"].items()]
    big = [[t, _f(v["body_mb"], 1), _f(v["rss_before_mb"], 1), _f(v["peak_mb"], 1), _f(v["growth_mb"], 1),
            _f(v["growth_x_body"], 2), _f(v["p50_ms"], 1), str(v["errors"])] for t, v in mem["big_body"].items()]
    held = [[t, str(v["streams_open"]), _f(v["rss_before_mb"], 1), _f(v["rss_open_mb"], 1),
             _f(v["kb_per_stream"], 1), str(v["errors"])] for t, v in mem["held_streams"].items()]
    return [
        "## Memory", "", "RSS right after start-up (fresh process, no request yet):", "",
        *_table(["target", "RSS MB"], start),
        "Big request (base64 images), sequential, fresh process; growth = peak RSS (VmHWM) - RSS before:", "",
        *_table(["target", "body MB", "RSS before MB", "peak MB", "growth MB", "growth / body", "p50 ms",
                 "errors"], big),
        "Held streams, fresh process; per stream = (RSS with all open - RSS before) / streams:", "",
        *_table(["target", "streams open", "RSS before MB", "RSS open MB", "KB/stream", "errors"], held),
    ]


_PLACEMENT = {
    "load": "- With 2 CPUs, the load generator and the fake upstream share one: at concurrency 16 and 64 that CPU is "
            "the bottleneck, which caps req/s for every target, and a server's CPU per streamed request then "
            "depends on how its reads fall against a starved upstream (bench/README.md, Caveats).",
    "server": "- With 2 CPUs and `--upstream-cpu server`, the fake upstream shares the servers' CPU: at concurrency "
              "16 and 64 that CPU is the bottleneck, so each server is measured saturated, and its latency "
              "includes waiting for the fake upstream's turns on the CPU (bench/README.md, Caveats).",
}


def _method(upstream_cpu: str | None, baseline: dict[str, str] | None = None) -> list[str]:
    return [
        "## Method", "",
        "- Processes: fake upstream (`bench/upstream.py`), proxy (`translator serve`), passthrough "
        "(`bench/passthrough.py`), each its own process; the load generator runs in the benchmark process.",
        "- Each run: a fresh client session, untimed warm-up requests to open `concurrency` connections, then "
        "the timed requests; CPU = utime+stime of the server (schedstat ns where available) read before and "
        "after; peak RSS = VmHWM, reset before each run.",
        "- Runs are interleaved (every target for one scenario, then the next scenario; the target order "
        "rotates every round) and pooled over rounds. The proxy and the passthrough are started anew (and "
        "warmed up, untimed) every round, so that the pooled numbers average a process of each per round (one "
        "process's memory layout moves its CPU per request by 5 to 15%).",
        *([_PLACEMENT[upstream_cpu]] if upstream_cpu in _PLACEMENT else []),
        *([f"- Baseline: `translator serve` at {baseline['commit']}, installed (not editable) into a virtualenv of "
           "its own before round 1, started, pinned, warmed up and restarted exactly as the proxy."]
          if baseline else []),
        "",
    ]
