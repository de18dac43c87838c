"""``python -m bench [--quick] [--only SECTIONS] [--peers] [--baseline REF]``: start the fake upstream, the proxy
and the passthrough (and the proxy as it was at REF, and the peers), run the selected sections (``suite.py``),
and write bench/results/latest.{json,md} (``--quick``: quick.{json,md}). See bench/README.md."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from bench import analysis, baseline, peers, report, runner, scenarios, suite
from bench.baseline import Baseline
from bench.fleet import Child, Fleet, cpus, pin_self, python_module, translator_command, wait_ready
from bench.runner import MemorySample, Sample, Servers
from bench.scenarios import Plan, Target

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="translator proxy benchmark")
    parser.add_argument("--quick", action="store_true", help="every section, small (about 6 minutes)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 12, --quick 1)")
    parser.add_argument("--budget", type=float,
                        help="seconds: no round starts that would end later (default 540, --quick 90)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default bench/results)")
    parser.add_argument("--name", help="results file name without extension (default latest, --quick quick)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--upstream-cpu", choices=["load", "server"], default="load",
                        help="the fake upstream's CPU on a 2-core machine: the load generator's (default) or the "
                             "proxy's and passthrough's (see bench/README.md, Caveats)")
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure the proxy as it was at this git ref (targets baseline-openai, "
                             "baseline-claude and, if it has that route, baseline-responses), built into a "
                             "virtualenv of its own before round 1")
    suite.add_arguments(parser)
    return parser.parse_args(argv)


class Bench:
    def __init__(self, fleet: Fleet, plan: Plan, load_cpu: int | None, server_cpu: int | None,
                 upstream_cpu: int | None = None, baseline: Baseline | None = None) -> None:
        self.fleet, self.plan, self.baseline = fleet, plan, baseline
        self.load_cpu, self.server_cpu = load_cpu, server_cpu
        self.upstream_cpu = load_cpu if upstream_cpu is None else upstream_cpu
        self.started = time.monotonic()
        self.upstream: Child | None = None
        self.rounds_done = 0
        self.rounds_s = 0.0  # how long the throughput section took

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:5.0f}s] {message}", file=sys.stderr, flush=True)

    # --- processes ---

    def start_upstream(self) -> Child:
        argv = python_module("bench.upstream", "--port", "{port}")
        child = self.fleet.spawn("upstream", argv, cpu=self.upstream_cpu)
        wait_ready(child)
        return child

    def start(self, server: str, *, streams: int | None = None, workers: int = 1) -> Child:
        """Start and await a server: proxy, baseline (the proxy at --baseline REF, from its own virtualenv) or
        passthrough. ``streams``: the streams it must hold at once (default: the held-stream probe's count);
        ``workers`` > 1: ``translator serve --workers N``, not pinned (its processes share every CPU)."""
        assert self.upstream is not None
        cpu = self.server_cpu if workers == 1 else None
        if server in ("proxy", "baseline"):
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSLATOR_", "ANTHROPIC_"))}
            env |= {"ANTHROPIC_BASE_URL": self.upstream.url, "ANTHROPIC_API_KEY": "bench-key"}
            if server == "baseline":
                env.pop("PYTHONPATH", None)  # it runs its own copy, never a working tree on the path
            python, has_limit = self._translator(server)
            more = ["--workers", str(workers)] if workers > 1 else []
            config = self.proxy_config(server, has_limit, self.plan.held_streams if streams is None else streams)
            argv = translator_command("serve", "--port", "{port}", *config, *more, python=python)
            child = self.fleet.spawn(server, argv, cpu=cpu, env=env)
        else:
            argv = python_module("bench.passthrough", "--port", "{port}", "--upstream", self.upstream.url)
            child = self.fleet.spawn("passthrough", argv, cpu=cpu)
        wait_ready(child)
        return child

    def _translator(self, server: str) -> tuple[str, bool]:
        """The Python whose translator ``server`` runs, and whether that translator has the in-flight limit."""
        if server == "baseline":
            assert self.baseline is not None
            return str(self.baseline.python), self.baseline.has_limit
        return sys.executable, current_has_limit()

    def proxy_config(self, server: str, has_limit: bool, streams: int) -> list[str]:
        """``--config FILE`` raising the proxy's in-flight limit above ``streams`` (its default, 1024, answers
        503 past that); nothing when that translator has no such setting."""
        settings = proxy_settings(streams, has_limit)
        if not settings:
            return []
        path = self.fleet.workdir / f"{server}.toml"
        path.write_text("[server]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        return ["--config", str(path)]

    # --- phases ---

    async def run(self) -> tuple[list[Sample], list[MemorySample], list[MemorySample]]:
        """The interleaved rounds and the two memory probes (section ``throughput``)."""
        self.upstream = self.upstream or self.start_upstream()
        big = await self.big_bodies()
        held = await self.held_streams()
        samples = await self.throughput()
        return samples, big, held

    async def run_all(self, names: list[str], args: argparse.Namespace, command: str) -> Outcome:
        """Every selected section: ``throughput`` (the rounds and the memory probes) first, then the others."""
        self.upstream = self.start_upstream()
        started = time.monotonic()
        rounds = await self.run() if suite.THROUGHPUT in names else None
        self.rounds_s = time.monotonic() - started
        return rounds, await suite.run(self, names, args, command)

    async def big_bodies(self) -> list[MemorySample]:
        bodies = scenarios.big_bodies(self.plan.big_body_bytes)
        out = []
        for target in self.plan.probed:
            m = await self._fresh(target, lambda server, t: runner.big_body_probe(
                server, t, bodies[t.route], self.plan.big_requests))
            self.log(f"big body {target.name}: {m.body_bytes / 2**20:.1f} MB, peak growth "
                     f"{(m.peak_kb - m.rss_before_kb) / 1024:.1f} MB, errors {m.result.errors}")
            out.append(m)
        return out

    async def held_streams(self) -> list[MemorySample]:
        assert self.upstream is not None
        upstream, bodies, count = self.upstream, scenarios.held_bodies(), self.plan.held_streams
        out = []
        for target in self.plan.probed:
            m = await self._fresh(target, lambda server, t: runner.held_probe(
                server, t, bodies[t.route], count, upstream, self.log))
            self.log(f"held streams {target.name}: {m.requests} open, "
                     f"{(m.peak_kb - m.rss_before_kb) / max(m.requests, 1):.1f} KB/stream, errors {m.result.errors}")
            out.append(m)
        return out

    async def _fresh(self, target: Target, probe: Callable[[Child, Target], Awaitable[MemorySample]]) -> MemorySample:
        """Run ``probe`` against a freshly started server of the target's kind, stopped afterwards."""
        server = self.start(target.server)
        try:
            return await probe(server, target)
        finally:
            self.fleet.stop(server)

    async def throughput(self) -> list[Sample]:
        """The interleaved rounds. The proxy and the passthrough (and the baseline) are started anew every
        ``ROUNDS_PER_PROCESS`` rounds (and warmed up, untimed): one process's memory layout (hash seed,
        allocations) moves its CPU per request by 5 to 15% against an identical process, and pooling a
        process of each per round averages that out instead of leaving the ratios to a few draws."""
        assert self.upstream is not None
        bodies = {s.name: scenarios.bodies_for(s) for s in self.plan.scenarios}
        samples: list[Sample] = []
        servers: Servers | None = None
        last_round = 0.0
        try:
            for round_no in range(self.plan.rounds):
                round_started = time.monotonic()
                if round_started + last_round - self.started > self.plan.budget_s:
                    self.log(f"stopping after {round_no} round(s): one more would pass the "
                             f"{self.plan.budget_s:.0f} s budget")
                    break
                if round_no % ROUNDS_PER_PROCESS == 0:
                    self._stop(servers)
                    servers = self._start_servers()
                    await runner.warm_servers(servers, self.plan.compared, self.plan.scenarios, bodies)
                assert servers is not None
                samples += await self._round(servers, bodies, round_no)
                last_round = time.monotonic() - round_started
                self.rounds_done = round_no + 1
        finally:
            self._stop(servers)
        return samples

    def _start_servers(self) -> Servers:
        assert self.upstream is not None
        proxy, passthrough = self.start("proxy"), self.start("passthrough")
        baseline = self.start("baseline") if self.plan.baseline else None
        return Servers(self.upstream, proxy, passthrough, baseline)

    def _stop(self, servers: Servers | None) -> None:
        if servers is not None:
            self.fleet.stop(servers.proxy)
            self.fleet.stop(servers.passthrough)
            if servers.baseline is not None:
                self.fleet.stop(servers.baseline)

    async def _round(self, servers: Servers, bodies: dict[str, dict[str, bytes]], round_no: int) -> list[Sample]:
        """Every scenario once against every target; the target order rotates from round to round."""
        targets = self.plan.targets
        shift = round_no % len(targets)
        order = targets[shift:] + targets[:shift]
        samples = []
        for scenario in self.plan.scenarios:
            for target in order:
                sample = await runner.measure(servers, target, scenario, bodies[scenario.name][target.route],
                                              round_no)
                self._log_sample(sample)
                samples.append(sample)
        return samples

    def _log_sample(self, s: Sample) -> None:
        lat = sorted(s.result.latencies)
        p99 = lat[int(len(lat) * 0.99) - 1] * 1e3 if lat else float("nan")
        cpu = s.cpu_s / s.ok * 1e6 if s.ok else float("nan")
        err = f", {s.result.errors} errors ({s.result.first_error})" if s.result.errors else ""
        self.log(f"r{s.round + 1} {s.scenario:<14} {s.target:<18} {s.ok:5d} req {s.ok / s.result.elapsed:7.0f}/s "
                 f"p99 {p99:7.2f} ms cpu {cpu:7.0f} us/req{err}")


ROUNDS_PER_PROCESS = 1
Outcome = tuple[tuple[list[Sample], list[MemorySample], list[MemorySample]] | None, dict[str, Any]]


def proxy_settings(held_streams: int, has_limit: bool) -> dict[str, int]:
    return {"max_concurrent_requests": 2 * held_streams + 256} if has_limit else {}


def current_has_limit() -> bool:
    """Whether the translator under test has the in-flight limit setting (bench/baseline.py asks the
    baseline's own virtualenv)."""
    try:
        from translator.config import ServerSettings
    except ImportError:
        return False
    return "max_concurrent_requests" in getattr(ServerSettings, "model_fields", {})


def build_baseline(ref: str, workdir: Path) -> Baseline:
    print(f"building the proxy at {ref} into its own virtualenv (about a minute)", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        built = baseline.build(ref, workdir)
    except RuntimeError as e:
        raise SystemExit(f"--baseline {ref}: {e}") from e
    missing = [scenarios.PATHS[route] for route in scenarios.ROUTES if route not in built.routes]
    skipped = f" (it has no {', '.join(missing)}: no baseline target there)" if missing else ""
    print(f"baseline {built.commit} built in {time.monotonic() - started:.0f} s{skipped}", file=sys.stderr, flush=True)
    return built


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.install_peers:
        for line in peers.install():
            print(line, file=sys.stderr)
        return 0
    available = cpus()
    pinned = len(available) >= 2 and not args.no_pin
    load_cpu, server_cpu = (available[0], available[1]) if pinned else (None, None)
    upstream_cpu = server_cpu if args.upstream_cpu == "server" else load_cpu
    servers = "proxy, baseline and passthrough" if args.baseline else "proxy and passthrough"
    pinning = (f"load generator on CPU {load_cpu}, fake upstream on CPU {upstream_cpu}, {servers} on "
               f"CPU {server_cpu}" if pinned else "none")
    pin_self(load_cpu)
    raise_nofile()
    load_before = report.loadavg()
    names = suite.selected(args)
    command = ("python -m bench" + (" --quick" if args.quick else "")
               + (" --upstream-cpu server" if args.upstream_cpu == "server" else "")
               + (f" --baseline {args.baseline}" if args.baseline else "")
               + (f" --only {','.join(names)}" if args.only else ""))
    try:
        with Fleet() as fleet:  # its work directory, the baseline's build included, is removed on the way out
            built = build_baseline(args.baseline, fleet.workdir) if args.baseline else None
            plan = scenarios.plan(quick=args.quick, rounds=args.rounds, budget=args.budget,
                                  baseline_routes=built.routes if built else ())
            bench = Bench(fleet, plan, load_cpu, server_cpu, upstream_cpu, built)
            bench.log(f"{'quick' if plan.quick else 'full'} run of {', '.join(names)}; {pinning}")
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
                rounds, sections = loop.run(bench.run_all(names, args, command))
    except KeyboardInterrupt:
        print("interrupted: every benchmark process has been stopped", file=sys.stderr)
        return 130
    name = args.name or ("quick" if args.quick else "latest")
    results = report.read(args.out, name) if args.only else {}
    results["machine"] = report.machine(len(available), pinning)
    if rounds is not None:
        samples, big, held = rounds
        results |= {
            "run": {"command": command, "quick": plan.quick, "rounds": bench.rounds_done,
                    "rounds_planned": plan.rounds, "duration_s": bench.rounds_s,
                    "upstream_cpu": args.upstream_cpu if pinned else None,
                    "held_streams": plan.held_streams, "big_body_bytes": plan.big_body_bytes,
                    "translator": report.git_state("translator"), "loadavg_before": load_before,
                    "loadavg_after": report.loadavg(),
                    **({"baseline": {"ref": built.ref, "commit": built.commit, "routes": list(built.routes)}}
                       if built else {})},
            **analysis.summarize(plan, samples, big, held),
        }
    for section in sections.values():
        section["run"]["translator"] = report.git_state("translator")
    results["sections"] = {**results.get("sections", {}), **sections}
    json_path, md_path = report.write(args.out, results, name)
    print(md_path.read_text())
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0

if __name__ == "__main__":
    sys.exit(main())
