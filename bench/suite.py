"""The benchmark's sections beyond the interleaved rounds (``throughput``), each selectable with ``--only``:
which exist, how each is run from the command line's settings, and how each is written into the report.

Each section module owns its scenario (what it runs, its figures, its targets and its Markdown); this module
only wires them to the processes that ``bench/__main__.py``'s ``Bench`` starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bench import bigcontext, longstreams, openloop, peers, report, runner, workers
from bench.fleet import Child, wait_ready
from bench.scenarios import OPENAI, Target

if TYPE_CHECKING:
    from bench.__main__ import Bench

THROUGHPUT = "throughput"
SECTIONS = (THROUGHPUT, "long-streams", "open-loop", "big-contexts", "peers", "workers")


def parse_counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", help=f"comma-separated sections to run (default all): {', '.join(SECTIONS)}; "
                                       "the others keep their figures from the results file, if it has them")
    parser.add_argument("--streams", type=parse_counts, help="long streams: the counts N (default 500,1000,2000)")
    parser.add_argument("--stream-seconds", type=float, help="long streams: each stream's length (default 60)")
    parser.add_argument("--stream-routes", help="long streams: routes (default openai,claude,responses)")
    parser.add_argument("--peers", action="store_true", help="only the peers section (same as --only peers)")
    parser.add_argument("--install-peers", action="store_true",
                        help=f"install LiteLLM and Portkey's gateway under {peers.PEERS_DIR} (or $BENCH_PEERS_DIR), "
                             "then exit")
    parser.add_argument("--rate", type=float, help="fixed-rate load: requests a second (default 2500)")
    parser.add_argument("--rate-seconds", type=float, help="fixed-rate load: seconds a run (default 10)")
    parser.add_argument("--rate-routes", help="fixed-rate load: routes (default openai,claude,responses)")


def selected(args: argparse.Namespace) -> list[str]:
    if args.peers and args.only is None:
        args.only = "peers"
    if args.only is None:
        return list(SECTIONS)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    return names


def _routes(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def rate_plan(args: argparse.Namespace) -> openloop.RatePlan:
    plan = openloop.quick_plan() if args.quick else openloop.RatePlan()
    changes: dict[str, Any] = {}
    if args.rate:
        changes["rate"] = args.rate
    if args.rate_seconds:
        changes["seconds"] = args.rate_seconds
        changes["search_seconds"] = min(plan.search_seconds, args.rate_seconds)
    if args.rate_routes:
        changes["routes"] = _routes(args.rate_routes)
    return dataclasses.replace(plan, **changes)


class OneProxy:
    """The proxy of a section: started on first use, and anew (warmed up) when asked."""

    def __init__(self, bench: Bench, routes: tuple[str, ...]) -> None:
        self.bench, self.routes = bench, routes
        self.child: Child | None = None

    async def __call__(self, fresh: bool = False) -> Child:
        if self.child is not None and fresh:
            self.stop()
        if self.child is None:
            self.child = self.bench.start("proxy")
            for route in self.routes:
                await _warm(self.child, route)
        return self.child

    def stop(self) -> None:
        if self.child is not None:
            self.bench.fleet.stop(self.child)
            self.child = None


async def run_open_loop(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    plan = rate_plan(args)
    assert bench.upstream is not None
    proxy = OneProxy(bench, plan.routes)
    try:
        return await openloop.run(plan, bench.upstream, proxy, bench.log)
    finally:
        proxy.stop()


async def run_big_contexts(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    plan = bigcontext.quick_plan() if args.quick else bigcontext.ContextPlan()
    assert bench.upstream is not None
    proxy, passthrough = OneProxy(bench, plan.routes), bench.start("passthrough")
    try:
        return await bigcontext.run(plan, bench.upstream, await proxy(), passthrough, bench.log)
    finally:
        proxy.stop()
        bench.fleet.stop(passthrough)


async def run_workers(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    plan = workers.quick_plan() if args.quick else workers.WorkersPlan()
    assert bench.upstream is not None

    async def start(count: int) -> Child:
        child = bench.start("proxy", workers=count)
        await _warm(child, plan.route)
        return child

    return await workers.run(plan, bench.upstream, start, bench.fleet.stop, bench.log)


async def run_peers(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    plan = peers.PeersPlan(seconds=3.0) if args.quick else peers.PeersPlan()
    assert bench.upstream is not None
    upstream = bench.upstream

    def start(peer: peers.Peer) -> Child | None:
        if not peer.installed(peers.PEERS_DIR):
            return None
        argv = peer.command(peers.PEERS_DIR, upstream.url, bench.fleet.workdir)
        child = bench.fleet.spawn(peer.name, argv, cpu=bench.server_cpu, env={**os.environ, **peer.env})
        try:
            wait_ready(child, peer.health, timeout=peer.start_timeout)
        except RuntimeError:
            bench.fleet.stop(child)
            raise
        return child

    proxy = OneProxy(bench, (OPENAI,))
    try:
        return await peers.run(plan, upstream, await proxy(), start, bench.fleet.stop, bench.log)
    finally:
        proxy.stop()


def long_plan(args: argparse.Namespace) -> longstreams.LongPlan:
    plan = longstreams.quick_plan() if args.quick else longstreams.LongPlan()
    changes: dict[str, Any] = {}
    if args.streams:
        changes["counts"] = args.streams
    if args.stream_seconds:
        changes["seconds"] = args.stream_seconds
        changes["ramp_s"] = min(plan.ramp_s, max(1.0, args.stream_seconds / 6))
    if args.stream_routes:
        changes["routes"] = _routes(args.stream_routes)
    return dataclasses.replace(plan, **changes)


async def run_long_streams(bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    plan = long_plan(args)
    assert bench.upstream is not None
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]  # raised to the hard limit; the children inherit it
    need = 2 * max(plan.counts) + 256  # the proxy holds a client and an upstream socket per stream
    if nofile != resource.RLIM_INFINITY and need > nofile:
        bench.log(f"long streams: {max(plan.counts)} streams need about {need} file descriptors, the limit is "
                  f"{nofile} (raise it: ulimit -n); streams past it will fail")
    shared_cpu = bench.load_cpu is not None and bench.load_cpu == bench.upstream_cpu
    data = await longstreams.run(plan, bench.upstream, lambda n: bench.start("proxy", streams=n), bench.fleet.stop,
                                 _warm, bench.log, shared_cpu=shared_cpu)
    return {"nofile": nofile, **data}


async def _warm(server: Child, route: str) -> None:
    await runner.warm_fresh(server, Target("proxy", route))


Runner = Callable[["Bench", argparse.Namespace], Awaitable[dict[str, Any]]]
RUNNERS: dict[str, Runner] = {"long-streams": run_long_streams, "open-loop": run_open_loop,
                              "big-contexts": run_big_contexts, "workers": run_workers, "peers": run_peers}


async def run(bench: Bench, names: list[str], args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The selected sections (but ``throughput``), each with when and how it ran. A section whose server would not
    start or whose connections failed is recorded as failed, and the next one runs."""
    out: dict[str, Any] = {}
    for name in names:
        if name == THROUGHPUT:
            continue
        started, load_before = time.monotonic(), report.loadavg()
        bench.log(f"section {name}")
        try:
            data = await RUNNERS[name](bench, args)
        except (RuntimeError, OSError, TimeoutError) as e:
            bench.log(f"section {name} failed: {type(e).__name__}: {e}")
            data = {"error": f"{type(e).__name__}: {e}"[:2000]}
        out[name] = {"run": {"command": command, "date": report.now(), "duration_s": time.monotonic() - started,
                             "loadavg_before": load_before, "loadavg_after": report.loadavg(),
                             "quick": bool(args.quick)}, **data}
    return out
