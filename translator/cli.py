"""Command line: ``translator serve [--config FILE] [--host H] [--port P] [--demo] [--workers N]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from translator.config import Settings, UpstreamSettings, load_settings
from translator.keys_command import keys_command
from translator.log import configure_logging, log
from translator.server import ProxyRunner, create_app, runner_kwargs
from translator.server.state import CLOSING, DRAINING, INFLIGHT


def _described(upstream: UpstreamSettings) -> str:
    """An upstream for the start-up line: its URL, and its proxy's host and port (never its credentials)."""
    if not upstream.proxy:
        return upstream.base_url
    proxy = urlsplit(upstream.proxy)
    host = f"[{proxy.hostname}]" if ":" in (proxy.hostname or "") else proxy.hostname
    return f"{upstream.base_url} via proxy {host}:{proxy.port or (443 if proxy.scheme == 'https' else 80)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        return keys_command(argv[1:])
    parser = argparse.ArgumentParser(prog="translator", description="OpenAI <-> Claude translation proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="create or hash client keys: translator keys create --name NAME")
    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="TOML settings file (default: $TRANSLATOR_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--demo", action="store_true", help="use the built-in offline demo upstream (no key needed)")
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            args.config, overrides={"server.host": args.host, "server.port": args.port, "demo": args.demo or None}
        )
    except (OSError, ValueError) as err:  # a config mistake (TOML, UTF-8, validation, shape), not a crash
        print(f"translator: cannot load the settings: {err}", file=sys.stderr)
        return 2
    configure_logging(settings.server.log_level)
    refusal = open_access_refusal(settings)
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    upstream = "built-in demo upstream" if settings.demo else ", ".join(_described(u) for u in settings.upstream_list)
    log.info("starting", host=settings.server.host, port=settings.server.port, upstream=upstream, workers=args.workers)
    for warning in config_warnings(settings, os.environ):
        log.warning(warning)
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"translator listening on http://{settings.server.host}:{settings.server.port} -> {upstream}",
        file=sys.stderr,
        flush=True,
    )
    if args.workers <= 1:
        _run(settings, reuse_port=False)
    else:
        _run_workers(settings, args.workers)
    return 0


LOOPBACK = ("127.", "::1", "localhost")


def open_access_refusal(settings: Settings) -> str | None:
    """With no client keys anyone who reaches the port spends the upstream key: loopback only, unless told."""
    exposed = not settings.server.host.startswith(LOOPBACK)
    if exposed and not settings.keys and not settings.server.allow_open_access:
        return (
            f"refusing to bind {settings.server.host} with no client keys configured: anyone who can reach it "
            "could use the upstream. Add [[keys]] (see `translator keys create`) or set "
            "server.allow_open_access = true."
        )
    return None


def config_warnings(settings: Settings, env: Mapping[str, str]) -> list[str]:
    """Settings that start fine but are probably not what was meant."""
    warnings = []
    if settings.upstreams and (env.get("ANTHROPIC_API_KEY") or env.get("ANTHROPIC_BASE_URL")):
        warnings.append("ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL set up [upstream], which [[upstreams]] replaces: "
                        "they are not used")
    keyless = [u.name for u in settings.upstream_list if not u.api_key]
    if settings.keys and not settings.demo and keyless:
        warnings.append(f"client keys are configured but upstream {', '.join(keyless)} has no api_key: our keys are "
                        "never forwarded, so requests reach it without credentials")
    return warnings


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
BIG_BLOCK = 128 * 1024


def return_big_blocks_to_the_os() -> bool:
    """Keep glibc's mmap threshold fixed at 128 KiB. By default it rises after a big block is freed, so the
    next big request bodies (images, long histories) come from the heap, whose memory stays in RSS; with
    a fixed threshold every big block is its own mapping, returned when freed. True if applied (glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl): nothing to do
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, BIG_BLOCK))


def _run(settings: Settings, *, reuse_port: bool) -> None:
    return_big_blocks_to_the_os()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(settings, reuse_port=reuse_port))


async def serve(settings: Settings, *, reuse_port: bool = False, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop``), then shut down gracefully:
    1. /readyz turns 503 and, for ``drain_seconds``, requests are still served while a load balancer notices;
    2. the listener closes and in-flight requests get ``shutdown_grace_seconds`` to finish;
    3. streams still open then end with an error event (not a cut connection), and the process exits."""
    app = create_app(settings)
    server = settings.server
    runner = ProxyRunner(app, access_log=None, shutdown_timeout=1.0, **runner_kwargs(settings))
    await runner.setup()
    # Start-up objects (modules, settings, the app) never die: keep them out of the collector's way, and
    # collect young objects less often; request bodies make many short-lived containers.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    site = web.TCPSite(runner, server.host, server.port, reuse_port=reuse_port or None)
    await site.start()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("shutting down", drain_seconds=server.drain_seconds, grace_seconds=server.shutdown_grace_seconds)
    app[DRAINING].set()
    await asyncio.sleep(server.drain_seconds)
    await site.stop()  # no new connections
    app[CLOSING].set()  # and no new requests on kept-alive ones
    tracked: set[asyncio.Task[Any]] = app[INFLIGHT]
    inflight = set(tracked)
    if inflight:
        await asyncio.wait(inflight, timeout=server.shutdown_grace_seconds)
    # Cancel what is left ourselves, while connections are still open, so each stream can write its farewell
    # error event (aiohttp's own shutdown would close the transports first).
    left = [t for t in tracked if not t.done()]
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=5)
    await runner.cleanup()


def _run_workers(settings: Settings, count: int) -> None:
    """N processes bind the same port with SO_REUSEPORT; the kernel spreads connections between them."""
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(settings,), daemon=False) for _ in range(count)]
    for w in workers:
        w.start()

    def forward(signum: int, _frame: object) -> None:
        for w in workers:
            if w.pid is not None and w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for w in workers:
        w.join()


def _worker(settings: Settings) -> None:
    configure_logging(settings.server.log_level)
    _run(settings, reuse_port=True)
