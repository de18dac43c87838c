"""Instructions per request, counted by valgrind's cachegrind: ``python -m bench.instructions [--route
openai|claude|responses] [--kind json|stream20|stream500|history] [--requests N]``.

Starts the fake upstream, then the proxy and the passthrough one at a time under ``valgrind --tool=cachegrind
--cache-sim=yes``, each twice: once sent N requests, once 5N. The difference between the two runs' counts,
over 4N, is what one request costs, start-up and shutdown cancelled out: instructions (``Ir``) and the
simulated first-level instruction and data cache misses (``I1mr``, ``D1mr``), with the functions whose
instructions differ most between the proxy and the passthrough.

Requests are sequential (concurrency 1) and ``PYTHONHASHSEED`` is fixed, so two runs of the same code agree
within about 3% (the rest is how reads happen to fall); CPU time varies more than that between two processes
of the same code, so this is the measure to compare two versions of the code by. Slow: under valgrind a
request takes about 50 times as long, and ``--requests 50`` (the default) takes about a minute. The
report also goes to bench/results/instructions-<route>-<kind>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.__main__ import RESULTS
from bench.fleet import Child, Fleet, python_module, translator_command, wait_ready
from bench.loadgen import LoadClient
from bench.profile import body_for, proxy_env
from bench.runner import request_for, warm_request
from bench.scenarios import OPENAI, ROUTES, Target

EVENTS = ("Ir", "I1mr", "D1mr")  # instructions; first-level instruction and data read misses (simulated)
LONGER = 5  # the second run sends this many times the first's requests
VALGRIND = shutil.which("valgrind")  # (a path: bench.launch execs it)


@dataclass(frozen=True, slots=True)
class Counts:
    """One cachegrind output file: its events' totals, and each function's instructions."""

    totals: dict[str, int]
    functions: Counter[str]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--route", choices=ROUTES, default=OPENAI)
    parser.add_argument("--kind", choices=["json", "stream20", "stream500", "history"], default="stream20")
    parser.add_argument("--requests", type=int, default=50, help="requests of the shorter run (default 50)")
    parser.add_argument("--top", type=int, default=25)
    return parser.parse_args(argv)


def read_counts(text: str) -> Counts:
    """cachegrind's output format: ``events:`` names the columns; ``fn=`` starts a function, whose lines
    (``<line> <count> <count> ...``) follow; ``summary:`` holds the totals."""
    names: list[str] = []
    totals: dict[str, int] = {}
    functions: Counter[str] = Counter()
    function = "?"
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("fn="):
            function = line[3:]
        elif line.startswith("summary:"):
            totals = dict(zip(names, map(int, line.split()[1:]), strict=True))
        elif line[:1].isdigit() and names:
            fields = line.split()
            if len(fields) > 1:
                functions[function] += int(fields[1])  # (Ir: the first event)
    return Counts(totals, functions)


def per_request(short: Counts, long: Counts, extra_requests: int) -> Counts:
    """What the longer run counted beyond the shorter, per request it sent beyond it."""
    totals = {name: round((long.totals.get(name, 0) - short.totals.get(name, 0)) / extra_requests)
              for name in EVENTS}
    functions = Counter({fn: round((n - short.functions.get(fn, 0)) / extra_requests)
                         for fn, n in long.functions.items()})
    return Counts(totals, functions)


def report(title: str, proxy: Counts, passthrough: Counts, top: int) -> str:
    out = [title, "", "per request     proxy  passthrough  ratio"]
    for name in EVENTS:
        ours, theirs = proxy.totals[name], passthrough.totals[name]
        out.append(f"{name:10} {ours:11,} {theirs:12,} {ours / theirs if theirs else 0:6.2f}x")
    out += ["", "instructions per request, the functions differing most (proxy - passthrough):"]
    names = set(proxy.functions) | set(passthrough.functions)
    diffs = sorted(names, key=lambda fn: passthrough.functions[fn] - proxy.functions[fn])
    for fn in diffs[:top]:
        out.append(f"{proxy.functions[fn]:10,} {passthrough.functions[fn]:10,} "
                   f"{proxy.functions[fn] - passthrough.functions[fn]:+10,}  {fn}")
    return "\n".join(out)


async def _drive(server: Child, target: Target, body: bytes, streamed: bool, requests: int) -> int:
    async with LoadClient() as client:
        await client.warm(warm_request(server, target), 1)
        result = await client.run(request_for(server, target, body, streamed), requests=requests,
                                  concurrency=1, time_cap=3600)
    if result.errors:
        raise RuntimeError(f"{server.name}: {result.errors} failed requests ({result.first_error})")
    return len(result.latencies)


def _stop(fleet: Fleet, child: Child) -> None:
    """Stop a process under valgrind and wait for it: cachegrind writes its file as the program exits, and
    that takes longer than Fleet.stop waits."""
    if child.proc.poll() is None:
        os.killpg(child.proc.pid, signal.SIGTERM)
    child.proc.wait(timeout=300)
    fleet.children.remove(child)


def measure(fleet: Fleet, upstream: Child, server: str, target: Target, args: argparse.Namespace, work: Path,
            valgrind_path: str) -> Counts:
    body, streamed = body_for(args.route, args.kind)
    runs = []
    for requests in (args.requests, args.requests * LONGER):
        out = work / f"{server}-{requests}.out"
        valgrind = [valgrind_path, "--tool=cachegrind", "--cache-sim=yes", f"--cachegrind-out-file={out}"]
        if server == "proxy":
            argv, env = translator_command("serve", "--port", "{port}"), proxy_env(upstream)
        else:
            argv = python_module("bench.passthrough", "--port", "{port}", "--upstream", upstream.url)
            env = dict(os.environ)
        child = fleet.spawn(server, valgrind + argv, cpu=None, env=env | {"PYTHONHASHSEED": "0"})
        wait_ready(child, timeout=300)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop:
            loop.run(_drive(child, target, body, streamed, requests))
        _stop(fleet, child)
        runs.append(read_counts(out.read_text()))
    return per_request(runs[0], runs[1], args.requests * (LONGER - 1))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if VALGRIND is None:
        print("bench.instructions needs valgrind on the PATH (apt install valgrind)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    with Fleet() as fleet:
        upstream = fleet.spawn("upstream", python_module("bench.upstream", "--port", "{port}"), cpu=None)
        wait_ready(upstream)
        proxy = measure(fleet, upstream, "proxy", Target("proxy", args.route), args, work, VALGRIND)
        passthrough = measure(fleet, upstream, "passthrough", Target("passthrough", args.route), args, work, VALGRIND)
    title = (f"instructions: {args.route} {args.kind}, {args.requests} and {args.requests * LONGER} sequential "
             f"requests under cachegrind")
    text = report(title, proxy, passthrough, args.top)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"instructions-{args.route}-{args.kind}.txt").write_text(text + "\n")
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
