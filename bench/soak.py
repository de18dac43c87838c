"""A soak: the real proxy (``translator serve``) under mixed load for minutes, watching its memory and
everything it writes.

``python -m bench.soak --minutes 30`` starts the benchmark's fake upstream (``bench/upstream.py``) and the
proxy, each in its own process, and drives the proxy over ``--connections`` connections (32) with a mix of
requests: the chat, Claude and Responses routes, streamed and not; clients that leave mid-stream (10%) or
right after sending (before the stream's head can go out); bodies that are not JSON; and requests the HTTP
parser rejects, with a key in the offending header. It samples the proxy's RSS every few seconds and, at
the end, reads all the proxy wrote.

It reports, and fails (exit status 1) unless all hold:
- RSS after warm-up (the first ``--warmup`` fraction of the run, half by default: on a busy machine the
  first minutes are warm-up) grows by less than 5%;
- no error: every answer is what its request should get (200 and a complete answer, or the 400);
- every line on stdout is JSON, none of them a warning or an error; nothing on stderr but the start-up line;
- the key is nowhere in the output.

``run(Options(...))`` is the same from Python; the test suite runs a few seconds of it
(tests/integration/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.fleet import Child, free_port, translator_command, wait_ready
from bench.procstats import memory_kb

KEY = "sk-ant-api03-SoakSecretNeverLogged0123456789"
MODEL = "claude-bench"
LONG = 5000  # events in a stream a client leaves: it is still under way when the client goes
WEIGHTS = {
    "chat": 13, "chat_stream": 13, "messages": 13, "messages_stream": 13, "responses": 13, "responses_stream": 13,
    "leave_mid_stream": 10, "leave_early": 4, "bad_json": 5, "malformed_http": 3,
}
ROUTES = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
# How a complete stream's last event starts, by route.
LAST_EVENT = {"chat": b"data: [DONE]", "messages": b"event: message_stop\n",
              "responses": b"event: response.completed\n"}
MAX_GROWTH = 0.05


@dataclass
class Options:
    seconds: float
    connections: int = 32
    warmup: float = 0.5  # the fraction of the run before RSS is taken as the baseline
    sample_seconds: float = 5.0


@dataclass
class Report:
    seconds: float
    requests: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few unexpected answers
    error_count: int = 0
    rss_kb: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, RSS)
    warmup_seconds: float = 0.0
    log_lines: int = 0
    request_lines: int = 0
    stream_ends: Counter[str] = field(default_factory=Counter)
    non_json_lines: list[str] = field(default_factory=list)
    problem_lines: list[str] = field(default_factory=list)  # warnings, errors, exceptions (their events only)
    stderr_lines: list[str] = field(default_factory=list)
    key_in_output: bool = False

    @property
    def sent(self) -> int:
        return sum(self.requests.values())

    def rss_growth(self) -> float | None:
        """RSS at the end against RSS after warm-up (medians of three samples each)."""
        after = [rss for t, rss in self.rss_kb if t >= self.warmup_seconds]
        if len(after) < 6:
            return None
        base, end = statistics.median(after[:3]), statistics.median(after[-3:])
        return (end - base) / base

    def failures(self) -> list[str]:
        growth = self.rss_growth() or 0.0
        checks = {
            f"RSS grew {growth:.1%} after warm-up": growth >= MAX_GROWTH,
            f"{self.error_count} unexpected answers": self.error_count > 0,
            f"{len(self.non_json_lines)} lines on stdout that are not JSON": bool(self.non_json_lines),
            f"{len(self.problem_lines)} warning or error lines": bool(self.problem_lines),
            f"{len(self.stderr_lines)} lines on stderr": bool(self.stderr_lines),
            "the key reached the output": self.key_in_output,
        }
        return [name for name, failed in checks.items() if failed]

    def rss_by_tenth(self) -> list[float]:
        """RSS (MB) at the start and after each tenth of the run: the curve, in eleven numbers."""
        if not self.rss_kb:
            return []
        marks = [self.seconds * tenth / 10 for tenth in range(11)]
        return [round(min(self.rss_kb, key=lambda sample: abs(sample[0] - mark))[1] / 1024, 1) for mark in marks]

    def summary(self) -> dict[str, Any]:
        rss = [kb for _, kb in self.rss_kb]
        data = asdict(self)
        data.update(requests=dict(self.requests), stream_ends=dict(self.stream_ends))
        data.update(sent=self.sent, rss_growth=self.rss_growth(), failures=self.failures(),
                    rss_mb={"start": _mb(rss[:1]), "max": _mb([max(rss)] if rss else []), "end": _mb(rss[-1:])},
                    rss_mb_by_tenth=self.rss_by_tenth())
        return data


def _mb(values: list[int]) -> float | None:
    return round(values[0] / 1024, 1) if values else None


# --- the load ---

def _body(route: str, stream: bool, tokens: int) -> dict[str, Any]:
    if route == "responses":  # store: false, as Codex sends: the soak watches the proxy, not its store
        return {"model": MODEL, "input": "hi", "max_output_tokens": tokens, "store": False, "stream": stream}
    return {"model": MODEL, "max_tokens": tokens, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}


class Load:
    def __init__(self, base: str, port: int, report: Report, rng: random.Random) -> None:
        self.base, self.port, self.report, self.rng = base, port, report, rng
        self.kinds, self.weights = list(WEIGHTS), list(WEIGHTS.values())

    async def worker(self, session: aiohttp.ClientSession, deadline: float) -> None:
        while time.monotonic() < deadline:
            kind = self.rng.choices(self.kinds, self.weights)[0]
            self.report.requests[kind] += 1
            try:
                problem = await self.one(session, kind)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                self.report.error_count += 1
                if len(self.report.errors) < 20:
                    self.report.errors.append(f"{kind}: {problem}")

    async def one(self, session: aiohttp.ClientSession, kind: str) -> str | None:
        route, _, streamed = kind.partition("_")
        if route in ROUTES:
            return await self.answer(session, route, bool(streamed))
        if kind == "leave_mid_stream":
            return await self.leave_mid_stream(session)
        if kind == "leave_early":
            return await self.leave_early()
        if kind == "bad_json":
            return await self.bad_json(session)
        return await self.malformed_http()

    async def answer(self, session: aiohttp.ClientSession, route: str, stream: bool) -> str | None:
        async with session.post(self.base + ROUTES[route], json=_body(route, stream, 20),
                                headers={"x-api-key": KEY}) as resp:
            raw = await resp.read()
        if resp.status != 200:
            return f"status {resp.status}"
        if stream and not raw.rstrip(b"\n").rsplit(b"\n\n", 1)[-1].startswith(LAST_EVENT[route]):
            return f"stream without its end: {raw[-120:]!r}"
        return None

    async def leave_mid_stream(self, session: aiohttp.ClientSession) -> str | None:
        route = self.rng.choice(list(ROUTES))
        async with session.post(self.base + ROUTES[route], json=_body(route, True, LONG)) as resp:
            if resp.status != 200:
                return f"status {resp.status}"
            await resp.content.readany()
            resp.close()  # gone, with the stream under way
        return None

    async def leave_early(self) -> None:
        """Sends a streamed request and goes at once: before the stream's head can go out."""
        body = orjson.dumps(_body("chat", True, LONG))
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def bad_json(self, session: aiohttp.ClientSession) -> str | None:
        async with session.post(self.base + ROUTES["chat"], data=b'{"model": "claude-bench", "messages": [',
                                headers={"Content-Type": "application/json"}) as resp:
            body = await resp.json()
        if resp.status != 400 or body["error"]["type"] != "invalid_request_error":
            return f"bad JSON answered {resp.status} {body}"
        return None

    async def malformed_http(self) -> str | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: soak\r\nx-api-key: %s\x01\r\n\r\n" % KEY.encode())
        try:
            answer = await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()
        if not answer.startswith(b"HTTP/1.0 400") or b'"type":"error"' not in answer or KEY.encode() in answer:
            return f"malformed HTTP answered {answer[:200]!r}"
        return None


async def _sample(pid: int, report: Report, started: float, every: float, deadline: float) -> None:
    while time.monotonic() < deadline:
        report.rss_kb.append((round(time.monotonic() - started, 1), memory_kb(pid)[0]))
        await asyncio.sleep(every)


async def _drive(options: Options, port: int, pid: int, report: Report) -> None:
    started = time.monotonic()
    deadline = started + options.seconds
    load = Load(f"http://127.0.0.1:{port}", port, report, random.Random(17))
    connector = aiohttp.TCPConnector(limit=options.connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(
            _sample(pid, report, started, options.sample_seconds, deadline),
            *(load.worker(session, deadline) for _ in range(options.connections)),
        )


# --- the processes and their output ---

@contextlib.contextmanager
def _processes(workdir: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The fake upstream and the proxy, started, ready, and stopped at the end (SIGTERM: a clean shutdown)."""
    upstream_port, port = free_port(), free_port()
    launch = [sys.executable, "-m", "bench.launch", "--"]  # dies with us, even on SIGKILL
    upstream = subprocess.Popen([*launch, sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)],
                                stdout=subprocess.DEVNULL, stderr=(workdir / "upstream.err").open("wb"))
    config = workdir / "soak.toml"
    config.write_text("[server]\ndrain_seconds = 0\nshutdown_grace_seconds = 2\n"
                      f'[upstream]\nbase_url = "http://127.0.0.1:{upstream_port}"\napi_key = "{KEY}"\n')
    proxy = subprocess.Popen([*launch, *translator_command("serve", "--port", str(port), "--config", str(config))],
                             stdout=(workdir / "proxy.out").open("wb"), stderr=(workdir / "proxy.err").open("wb"))
    try:
        wait_ready(Child("upstream", upstream, upstream_port, workdir / "upstream.err"))
        wait_ready(Child("proxy", proxy, port, workdir / "proxy.err"))
        yield proxy, port
    finally:
        for process in (proxy, upstream):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def read_output(report: Report, stdout: bytes, stderr: bytes) -> None:
    """What the proxy wrote: one JSON line per request on stdout, and nothing on stderr but its start."""
    report.key_in_output = KEY.encode() in stdout or KEY.encode() in stderr
    report.stderr_lines = [line.decode(errors="replace") for line in stderr.splitlines()
                           if not line.startswith(b"translator listening on ")]
    for raw in stdout.splitlines():
        report.log_lines += 1
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            report.non_json_lines.append(raw[:200].decode(errors="replace"))
            continue
        if line.get("level") not in ("debug", "info") or "exception" in line:
            report.problem_lines.append(f"{line.get('level')}: {line.get('event')} {line.get('logger', '')}".strip())
        if line.get("event") == "request" and line.get("path") != "/healthz":
            report.request_lines += 1
            if "stream_end" in line:
                report.stream_ends[line["stream_end"]] += 1


def run(options: Options) -> Report:
    report = Report(options.seconds, warmup_seconds=options.seconds * options.warmup)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        with _processes(workdir) as (proxy, port):
            asyncio.run(_drive(options, port, proxy.pid, report))
        read_output(report, (workdir / "proxy.out").read_bytes(), (workdir / "proxy.err").read_bytes())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=0.5, help="fraction of the run before RSS is compared")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    report = run(Options(args.minutes * 60, args.connections, args.warmup))
    summary = summary_text(report)
    print(summary)
    if args.json:
        args.json.write_bytes(orjson.dumps(report.summary(), option=orjson.OPT_INDENT_2))
    return 1 if report.failures() else 0


def summary_text(report: Report) -> str:
    data = report.summary()
    growth = data["rss_growth"]
    lines = [
        f"soak: {report.seconds / 60:g} min, {report.sent} requests ({report.sent / report.seconds:.0f}/s): "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(report.requests.items())),
        f"RSS: {data['rss_mb']['start']} MB at start, {data['rss_mb']['max']} MB at most, {data['rss_mb']['end']} MB "
        f"at the end; after warm-up ({report.warmup_seconds:.0f} s) it grew "
        + (f"{growth:.1%}" if growth is not None else "(too few samples)"),
        "RSS (MB) at the start and after each tenth of the run: " + " ".join(map(str, data["rss_mb_by_tenth"])),
        f"unexpected answers: {report.error_count}" + "".join(f"\n  {e}" for e in report.errors[:5]),
        f"log: {report.log_lines} lines, {report.request_lines} request lines (streams: "
        + ", ".join(f"{end} {n}" for end, n in sorted(report.stream_ends.items())) + ")",
        f"not JSON: {len(report.non_json_lines)}; warnings/errors: {len(report.problem_lines)}; "
        f"stderr: {len(report.stderr_lines)}; key in output: {report.key_in_output}",
        "result: " + ("; ".join(report.failures()) or "pass"),
    ]
    lines += [f"  {line}" for line in (report.non_json_lines + report.problem_lines + report.stderr_lines)[:10]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
