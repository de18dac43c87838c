"""Peers in the same run: LiteLLM's proxy (pip ``litellm[proxy]``) and Portkey's gateway (npm
``@portkey-ai/gateway``) against the same fake upstream as ours, on the chat route, each pinned to the server
CPU like the proxy: CPU per request, requests a second, added p50/p99 over ``direct``, and RSS.

Neither is a dependency of the project or its tests. ``python -m bench --install-peers`` installs both under
``PEERS_DIR`` (``$BENCH_PEERS_DIR``, default ``~/.cache/translator-bench/peers``): LiteLLM into a virtualenv
of its own, Portkey with npm into a folder of its own. A peer that is not installed there is reported as "not
installed" and its rows stay empty.

Portkey's gateway 1.15.2 pins ``@hono/node-server`` 1.14.2 here: later versions make every answer fail with
``TypeError: immutable`` (Portkey-AI/gateway#1389). Its streamed answers from the Anthropic provider still
fail that way on Node 20 (the class of Portkey-AI/gateway#1550), which the report shows as errors.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import procstats, scenarios
from bench.closedloop import closed_loop
from bench.fleet import Child
from bench.histogram import added
from bench.markdown import fmt, table, targets_table
from bench.rawclient import encode_request
from bench.scenarios import EXPECT, HEADERS, OPENAI, PATHS

PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", Path.home() / ".cache" / "translator-bench" / "peers"))
MASTER_KEY = "sk-bench-5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d"  # LiteLLM refuses to start without one
KINDS = {"json": 0, "stream20": 20}
TARGETS = {"litellm": 20.0, "portkey": 3.0}  # at least this many times our CPU per request
PORTKEY_PACKAGES = {"@portkey-ai/gateway": "1.15.2", "@hono/node-server": "1.14.2"}


@dataclass(frozen=True)
class Peer:
    name: str
    health: str  # a GET path that answers 200 once it is ready
    headers: Callable[[str], dict[str, str]]  # the request headers, given the fake upstream's URL
    start_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)

    def installed(self, root: Path) -> bool:
        return self.entry(root).exists()

    def entry(self, root: Path) -> Path:
        if self.name == "litellm":
            return root / "litellm" / "bin" / "litellm"
        return root / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"

    def command(self, root: Path, upstream: str, workdir: Path) -> list[str]:
        if self.name == "litellm":
            config = workdir / "litellm.yaml"
            config.write_text(litellm_config(upstream))
            return [str(self.entry(root)), "--config", str(config), "--host", "127.0.0.1", "--port", "{port}",
                    "--num_workers", "1"]
        node = shutil.which("node") or "node"
        return [node, str(self.entry(root)), "--port={port}", "--headless"]


def litellm_config(upstream: str) -> str:
    return (f"model_list:\n  - model_name: {scenarios.MODEL}\n    litellm_params:\n"
            f"      model: anthropic/{scenarios.MODEL}\n      api_base: {upstream}\n      api_key: bench-key\n")


PEERS = (
    Peer("litellm", "/health/liveliness", lambda upstream: {
        "Content-Type": "application/json", "Authorization": f"Bearer {MASTER_KEY}"},
        start_timeout=180.0,
        env={"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}),
    Peer("portkey", "/", lambda upstream: {
        "Content-Type": "application/json", "Authorization": "Bearer bench", "x-portkey-provider": "anthropic",
        "x-portkey-custom-host": f"{upstream}/v1"}),
)


# --- installing ---

def install(root: Path = PEERS_DIR) -> list[str]:
    """Install both peers under ``root``; what happened, one line each."""
    root.mkdir(parents=True, exist_ok=True)
    return [_install_litellm(root), _install_portkey(root)]


def _run(argv: list[str], cwd: Path) -> str | None:
    """None when it worked, else the tail of its output."""
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=1800, check=False)
    return None if done.returncode == 0 else (done.stdout + done.stderr)[-800:]


def _install_litellm(root: Path) -> str:
    venv = root / "litellm"
    failed = _run([sys.executable, "-m", "venv", str(venv)], root) or _run(
        [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], root)
    return f"litellm: {'installed in ' + str(venv) if failed is None else 'failed: ' + failed}"


def _install_portkey(root: Path) -> str:
    if shutil.which("npm") is None:
        return "portkey: npm not found (Node.js is needed)"
    folder = root / "portkey"
    folder.mkdir(exist_ok=True)
    package = {"private": True, "dependencies": PORTKEY_PACKAGES,
               "overrides": {"@hono/node-server": PORTKEY_PACKAGES["@hono/node-server"]}}
    (folder / "package.json").write_bytes(orjson.dumps(package, option=orjson.OPT_INDENT_2))
    failed = _run(["npm", "install", "--no-audit", "--no-fund"], folder)
    return f"portkey: {'installed in ' + str(folder) if failed is None else 'failed: ' + failed}"


# --- measuring ---

Start = Callable[[Peer], Child | None]  # a started, ready peer (None: not installed; RuntimeError: failed)


async def measure(server: Child, upstream: Child, headers: dict[str, str], kind: str, concurrency: int,
                  seconds: float) -> dict[str, Any]:
    """A closed loop at ``concurrency`` on the chat route (``direct``: the Claude body to the fake upstream)."""
    route = scenarios.DIRECT if server is upstream else OPENAI
    body = scenarios.simple_bodies(KINDS[kind])[route]
    request = encode_request(f"127.0.0.1:{server.port}", PATHS[route], body, headers)
    expect = EXPECT[(route, KINDS[kind] > 0)]
    await closed_loop(server.port, request, expect, concurrency, min(1.0, seconds))  # untimed
    before = procstats.tree_snapshot(server.pid)
    loop, elapsed = await closed_loop(server.port, request, expect, concurrency, seconds)
    after = procstats.tree_snapshot(server.pid)
    done = loop.latency.count
    return {"requests": done, "errors": loop.errors, "first_error": loop.first_error, "rps": done / elapsed,
            "latency": loop.latency.summary(), "cpu_us_per_req": (after.cpu_s - before.cpu_s) / done * 1e6
            if done else math.nan, "rss_mb": after.rss_kb / 1024}


@dataclass(frozen=True, slots=True)
class PeersPlan:
    concurrency: int = 16
    seconds: float = 10.0


async def run(plan: PeersPlan, upstream: Child, proxy: Child, start: Start, stop: Callable[[Child], None],
              log: Callable[[str], None]) -> dict[str, Any]:
    rows: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        rows[kind] = {"direct": await measure(upstream, upstream, HEADERS[scenarios.DIRECT], kind,
                                              plan.concurrency, plan.seconds),
                      "translator": await measure(proxy, upstream, HEADERS[OPENAI], kind, plan.concurrency,
                                                  plan.seconds)}
    status = {}
    for peer in PEERS:
        try:
            child = start(peer)
        except RuntimeError as e:  # it exited, or was not ready in time
            status[peer.name] = f"failed to start ({str(e).splitlines()[0][:120]})"
            log(f"peers: {peer.name} {status[peer.name]}")
            continue
        status[peer.name] = "measured" if child is not None else "not installed"
        if child is None:
            log(f"peers: {peer.name} not installed (python -m bench --install-peers)")
            continue
        try:
            for kind in KINDS:
                rows[kind][peer.name] = await measure(child, upstream, peer.headers(upstream.url), kind,
                                                      plan.concurrency, plan.seconds)
                log(f"peers: {peer.name} {kind}: {_line(rows[kind][peer.name])}")
        finally:
            stop(child)
    for by_server in rows.values():
        for name, row in by_server.items():
            if name != "direct":
                row["added"] = added(row["latency"], by_server["direct"]["latency"])
    return {"plan": {"concurrency": plan.concurrency, "seconds": plan.seconds}, "status": status, "rows": rows,
            "targets": verdicts(rows)}


def _line(row: dict[str, Any]) -> str:
    return (f"{row['rps']:.0f} req/s, CPU {row['cpu_us_per_req']:.0f} us/req, p99 {row['latency']['p99_ms']:.1f} ms, "
            f"RSS {row['rss_mb']:.0f} MB, errors {row['errors']}")


def verdicts(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per peer measured and kind: the peer's CPU per request over ours, which should be at least ``TARGETS``'s
    (a peer not installed has no verdict; one that gave no good answer misses)."""
    out = []
    for kind, by_server in rows.items():
        ours = by_server.get("translator", {}).get("cpu_us_per_req", math.nan)
        for name, least in TARGETS.items():
            theirs = by_server.get(name)
            if theirs is None:
                continue
            value = theirs["cpu_us_per_req"] / ours if theirs["requests"] else math.nan
            detail = kind if theirs["requests"] else f"{kind} (no good answer from {name})"
            out.append({"target": f"{name}'s CPU/request >= {least:.0f}x ours", "detail": detail, "value": value,
                        "limit": least, "unit": "x", "met": not math.isnan(value) and value >= least})
    return out


# --- report ---

def markdown(section: dict[str, Any]) -> list[str]:
    plan, rows = section["plan"], []
    for kind, by_server in section["rows"].items():
        ours = by_server.get("translator", {}).get("cpu_us_per_req")
        for name, r in by_server.items():
            add = r.get("added", {})
            cpu = r["cpu_us_per_req"]  # None in a results file where it was NaN (no good answer)
            rel = cpu / ours if cpu is not None and ours and name != "direct" else None
            errors = str(r["errors"]) + (f" ({r['first_error'][:50]})" if r.get("first_error") else "")
            rows.append([kind, name, fmt(r["rps"], 0), fmt(r["cpu_us_per_req"], 0), fmt(rel, 1),
                         fmt(add.get("p50_added_ms"), 2), fmt(add.get("p99_added_ms"), 2), fmt(r["rss_mb"], 0),
                         errors])
    status = ", ".join(f"{name}: {state}" for name, state in section["status"].items())
    return [
        "## Peers", "",
        f"Same fake upstream, chat route, concurrency {plan['concurrency']} (closed loop), {plan['seconds']:.0f} s "
        "a run; each server pinned to the server CPU (LiteLLM with one worker). CPU: the server's process tree; "
        f"`x ours`: its CPU per request over translator's. `+`: over `direct`. Peers: {status}.", "",
        *table(["kind", "server", "req/s", "CPU us/req", "x ours", "+p50 ms", "+p99 ms", "RSS MB", "errors"], rows),
        *targets_table(section["targets"]),
    ]
