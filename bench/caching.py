"""``python -m bench.caching``: what automatic prompt caching saves, in billed input tokens.

Runs the real proxy (in process, on 127.0.0.1) in front of the caching fake upstream
(``bench/caching_upstream.py``, Claude's caching rules), and replays four workloads through the chat route,
each twice: ``[caching] auto = false``, then ``true``, each time on a fresh proxy and a fresh upstream cache.
The billed input cost is Claude's: plain input tokens 1x, cache writes 1.25x (5 minutes; 2x for an hour),
cache reads 0.1x. It writes ``bench/results/caching.md`` (``--out`` to change it); a run takes seconds.

The workloads are replayed: every request's history is built here, as a client would send it, whatever the
fake answers. Text is made of pseudo-words from a seeded generator, so every run sends the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.caching_upstream import CachingUpstream
from translator.config import Settings
from translator.log import configure_logging
from translator.server import create_app, runner_kwargs

MODEL = "claude-sonnet-4-5"  # minimum cacheable prompt: 1,024 tokens
WRITE_5M, WRITE_1H, READ = 1.25, 2.0, 0.1  # Claude's multipliers of the input price
RESULTS = Path(__file__).parent / "results" / "caching.md"
Request = dict[str, Any]


# --- the workloads ---


def words(rng: random.Random, n: int) -> str:
    """``n`` pseudo-words (about ``n`` tokens to the fake's tokenizer), in sentences."""
    out = []
    for i in range(n):
        word = "".join(rng.choice("abcdefghiklmnoprstuvw") for _ in range(rng.randint(2, 8)))
        out.append(word + ("." if i % 12 == 11 else ""))
    return " ".join(out)


def _tools(rng: random.Random) -> list[dict[str, Any]]:
    names = ["read_file", "write_file", "run_tests", "search_code", "list_directory", "git_diff"]
    return [{"type": "function", "function": {
        "name": name, "description": words(rng, 60),
        "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": words(rng, 12)},
                                                         "limit": {"type": "integer"}}, "required": ["path"]}}}
            for name in names]


def agent_loop(turns: int = 20, calls_per_turn: int = 1, seed: int = 1) -> list[Request]:
    """An agent: a system prompt of about 3,000 tokens, 6 tools, and every turn a tool call and its result."""
    rng = random.Random(seed)
    tools = _tools(rng)
    messages: list[dict[str, Any]] = [{"role": "system", "content": words(rng, 2900)},
                                      {"role": "user", "content": "Fix the failing test. " + words(rng, 40)}]
    requests = []
    for turn in range(turns):
        requests.append({"model": MODEL, "messages": list(messages), "tools": tools})
        calls = [{"id": f"call_{turn}_{i}", "type": "function", "function": {
            "name": tools[(turn + i) % 6]["function"]["name"],
            "arguments": orjson.dumps({"path": f"src/module_{turn}_{i}.py"}).decode()}}
            for i in range(calls_per_turn)]
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        messages += [{"role": "tool", "tool_call_id": c["id"], "content": words(rng, 150)} for c in calls]
    return requests


def chat(turns: int = 10, seed: int = 2) -> list[Request]:
    """A chat with a long system prompt (about 2,500 tokens): questions and answers."""
    rng = random.Random(seed)
    messages: list[dict[str, Any]] = [{"role": "system", "content": words(rng, 2500)}]
    requests = []
    for _ in range(turns):
        messages.append({"role": "user", "content": words(rng, 25) + "?"})
        requests.append({"model": MODEL, "messages": list(messages)})
        messages.append({"role": "assistant", "content": words(rng, 120)})
    return requests


def shared_system(n: int = 40, seed: int = 3) -> list[Request]:
    """Single-shot requests, one long system prompt (about 2,000 tokens), a different question each."""
    rng = random.Random(seed)
    system = words(rng, 2000)
    return [{"model": MODEL, "messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": words(rng, 20) + "?"}]} for _ in range(n)]


def unrelated(n: int = 100, seed: int = 4) -> list[Request]:
    """Single-shot requests sharing nothing: half short prompts, half long ones (about 1,500 tokens)."""
    rng = random.Random(seed)
    requests: list[Request] = []
    for i in range(n):
        if i % 2:
            messages = [{"role": "system", "content": words(rng, 1500)}, {"role": "user", "content": words(rng, 20)}]
        else:
            messages = [{"role": "user", "content": words(rng, 30)}]
        requests.append({"model": MODEL, "messages": messages})
    return requests


@dataclass(frozen=True)
class Workload:
    name: str
    requests: Callable[[], list[Request]]
    target: float  # the largest cost ratio (with / without caching) that meets it
    target_text: str


WORKLOADS = [
    Workload("20-turn agent loop (3,000-token system prompt, 6 tools, a tool call a turn)", agent_loop, 0.40,
             "at least 60% below"),
    Workload("10-turn chat, long system prompt", chat, 0.40, "at least 60% below"),
    Workload("40 single-shot requests sharing one long system prompt", shared_system, 0.40, "at least 60% below"),
    Workload("100 unrelated single-shot requests (short and long)", unrelated, 1.05, "at most 5% above"),
    Workload("8-turn tool loop, 12 parallel tool calls a turn (past the lookback)",
             lambda: agent_loop(turns=8, calls_per_turn=12, seed=5), 0.40, "(not a target)"),
]


# --- the run ---


@dataclass
class Billed:
    plain: int = 0
    written_5m: int = 0
    written_1h: int = 0
    read: int = 0
    reported_cached: int = 0  # what the client was told: usage.prompt_tokens_details.cached_tokens

    @property
    def cost(self) -> float:
        return self.plain + WRITE_5M * self.written_5m + WRITE_1H * self.written_1h + READ * self.read

    def add(self, usage: dict[str, Any]) -> None:
        self.plain += usage["input_tokens"]
        self.written_5m += usage["cache_creation"]["ephemeral_5m_input_tokens"]
        self.written_1h += usage["cache_creation"]["ephemeral_1h_input_tokens"]
        self.read += usage["cache_read_input_tokens"]


async def replay(requests: list[Request], *, auto: bool) -> Billed:
    """The requests through a fresh proxy (``[caching] auto``) in front of a fresh caching upstream."""
    upstream = CachingUpstream()
    upstream_runner = web.AppRunner(upstream.app(), access_log=None)
    await upstream_runner.setup()
    upstream_site = web.TCPSite(upstream_runner, "127.0.0.1", 0)
    await upstream_site.start()
    upstream_port = upstream_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    settings = Settings.model_validate({"upstream": {"base_url": f"http://127.0.0.1:{upstream_port}"},
                                        "caching": {"auto": auto}})
    proxy_runner = web.AppRunner(create_app(settings), access_log=None, **runner_kwargs(settings))
    await proxy_runner.setup()
    proxy_site = web.TCPSite(proxy_runner, "127.0.0.1", 0)
    await proxy_site.start()
    proxy_port = proxy_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    billed = Billed()
    try:
        async with aiohttp.ClientSession() as session:
            for body in requests:
                async with session.post(f"http://127.0.0.1:{proxy_port}/v1/chat/completions", json=body) as resp:
                    answer = await resp.json()
                    if resp.status != 200:
                        raise RuntimeError(f"the proxy answered {resp.status}: {answer}")
                billed.reported_cached += answer["usage"]["prompt_tokens_details"]["cached_tokens"]
    finally:
        await proxy_runner.cleanup()
        await upstream_runner.cleanup()
    for usage in upstream.usages:
        billed.add(usage)
    return billed


@dataclass
class Row:
    workload: Workload
    requests: int
    prompt_tokens: int
    off: Billed
    on: Billed

    @property
    def ratio(self) -> float:
        return self.on.cost / self.off.cost

    @property
    def met(self) -> bool:
        return self.ratio <= self.workload.target


async def run() -> list[Row]:
    rows = []
    for workload in WORKLOADS:
        requests = workload.requests()
        off = await replay(requests, auto=False)
        on = await replay(requests, auto=True)
        assert on.reported_cached == on.read and off.read == 0, "usage reported to the client must be exact"
        rows.append(Row(workload, len(requests), off.plain, off, on))
    return rows


def report(rows: list[Row]) -> str:
    lines = [
        "# Automatic prompt caching: billed input tokens",
        "",
        "`python -m bench.caching`: the proxy's chat route in front of the caching fake upstream "
        "(`bench/caching_upstream.py`: Claude's prompt-caching rules, a stand-in tokenizer), each workload "
        f"replayed with `[caching] auto = false`, then `true`, model `{MODEL}` (minimum 1,024 tokens). "
        f"Cost in input-token units: plain 1x, cache write {WRITE_5M}x (5 minutes), cache read {READ}x.",
        "",
        "| workload | requests | cost without caching | cost with auto caching | change | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        change = (row.ratio - 1) * 100
        met = "yes" if row.met else "**no**"
        if row.workload.target_text.startswith("("):
            met = "-"
        lines.append(f"| {row.workload.name} | {row.requests} | {row.off.cost:,.0f} | {row.on.cost:,.0f} | "
                     f"{change:+.1f}% | {row.workload.target_text} | {met} |")
    lines += ["", "With auto caching, in tokens:", "",
              "| workload | plain input | cache writes | cache reads | cached_tokens reported to the client |",
              "|---|---|---|---|---|"]
    for row in rows:
        on = row.on
        lines.append(f"| {row.workload.name} | {on.plain:,} | {on.written_5m + on.written_1h:,} | {on.read:,} | "
                     f"{on.reported_cached:,} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.caching", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="the report's path (markdown)")
    args = parser.parse_args(argv)
    configure_logging("warning")  # (no request lines)
    rows = asyncio.run(run())
    text = report(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(row.met or row.workload.target_text.startswith("(") for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

