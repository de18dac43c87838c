"""Profile the proxy under one scenario's load: ``python -m bench.profile [--route openai|claude|responses]
[--kind json|stream20|stream500|history] [--concurrency N] [--seconds S] [--tool py-spy|cprofile]``.

Starts the fake upstream and the proxy (pinned as in the benchmark), drives the chosen scenario for S
seconds, and prints the functions with the most samples: self time (the frame on top of the stack) and
inclusive time (the frame anywhere in it). ``py-spy`` (``pip install py-spy``) samples the running
``translator serve`` from outside; ``cprofile`` runs ``translator serve`` under ``python -m cProfile``
instead (slower, deterministic). The report also goes to bench/results/profile-<route>-<kind>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import uvloop

from bench import scenarios
from bench.__main__ import RESULTS
from bench.fleet import Child, Fleet, cpus, pin_self, python_module, translator_command, wait_ready
from bench.loadgen import LoadClient
from bench.runner import request_for, warm_request
from bench.scenarios import OPENAI, ROUTES, Target


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=ROUTES, default=OPENAI)
    parser.add_argument("--kind", choices=["json", "stream20", "stream500", "history"], default="stream500")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--tool", choices=["py-spy", "cprofile"], default="py-spy")
    parser.add_argument("--top", type=int, default=30)
    return parser.parse_args(argv)


def body_for(route: str, kind: str) -> tuple[bytes, bool]:
    if kind == "history":
        return scenarios.history_bodies()[route], False
    deltas = {"json": 0, "stream20": 20, "stream500": 500}[kind]
    return scenarios.simple_bodies(deltas)[route], deltas > 0


def proxy_env(upstream: Child) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSLATOR_", "ANTHROPIC_"))}
    return env | {"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "bench-key"}


async def drive(proxy: Child, target: Target, body: bytes, streamed: bool, concurrency: int, seconds: float) -> int:
    async with LoadClient() as client:
        await client.warm(warm_request(proxy, target), concurrency)
        result = await client.run(request_for(proxy, target, body, streamed), requests=10_000_000,
                                  concurrency=concurrency, time_cap=seconds)
    return len(result.latencies)


def summarize_raw(raw: Path, top: int) -> str:
    """py-spy's raw format: one ``frame;frame;...;frame count`` line per distinct stack."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_strip_line(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    return _tables(own, incl, total, top)


def _strip_line(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``: one row per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def _tables(own: Counter[str], incl: Counter[str], total: int, top: int) -> str:
    out = [f"{total} samples", "", "self %  function"]
    out += [f"{n / total * 100:6.1f}  {f}" for f, n in own.most_common(top)]
    out += ["", "incl %  function (translator code only)"]
    ours = [(f, n) for f, n in incl.most_common() if "translator/" in f or "translator." in f]
    out += [f"{n / total * 100:6.1f}  {f}" for f, n in ours[:top]]
    return "\n".join(out)


def summarize_pstats(path: Path, top: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("translator", top)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    available = cpus()
    load_cpu, server_cpu = (available[0], available[1]) if len(available) >= 2 else (None, None)
    pin_self(load_cpu)
    body, streamed = body_for(args.route, args.kind)
    target = Target("proxy", args.route)
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    with Fleet() as fleet:
        upstream = fleet.spawn("upstream", python_module("bench.upstream", "--port", "{port}"), cpu=load_cpu)
        wait_ready(upstream)
        serve = translator_command("serve", "--port", "{port}")
        if args.tool == "cprofile":
            serve = python_module("cProfile", "-o", str(work / "proxy.prof"), "-m", "translator",
                                  "serve", "--port", "{port}")
        proxy = fleet.spawn("proxy", serve, cpu=server_cpu, env=proxy_env(upstream))
        wait_ready(proxy)
        spy = None
        if args.tool == "py-spy":
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([exe, "record", "-p", str(proxy.pid), "-d", str(int(args.seconds)),
                                    "-r", "250", "-f", "raw", "--nonblocking", "-o", str(work / "proxy.raw")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
            done = loop.run(drive(proxy, target, body, streamed, args.concurrency, args.seconds))
        if spy is not None:
            spy.wait(timeout=60)
        fleet.stop(proxy)  # cProfile writes its file as the proxy exits
    header = (f"profile: proxy {args.route} {args.kind} c{args.concurrency}, {args.seconds:.0f} s, "
              f"{done} requests, tool {args.tool}\n\n")
    if args.tool == "py-spy":
        text = header + summarize_raw(work / "proxy.raw", args.top)
    else:
        text = header + summarize_pstats(work / "proxy.prof", args.top)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"profile-{args.route}-{args.kind}.txt").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
