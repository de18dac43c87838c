"""Command line: ``translator serve [--config FILE] [--host H] [--port P] [--demo] [--workers N]``, and
``translator reload [--config FILE] [--pid PID]`` (SIGHUP to the running server: it re-reads its config)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client.multiprocess import mark_process_dead

from translator.config import (
    Settings,
    UpstreamSettings,
    load_settings,
    one_line,
    open_access_refusal,
    workers_refusal,
)
from translator.gateway.metrics import MULTIPROC_DIR
from translator.keys_command import keys_command
from translator.log import configure_logging, log
from translator.server import ProxyRunner, create_app, runner_kwargs
from translator.server.app import reload_app
from translator.server.runtime import reloaded_settings
from translator.server.state import CLOSING, DRAINING, INFLIGHT
from translator.supervisor import Supervisor
from translator.upstream import tls_context
from translator.usage_command import usage_command


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
    if argv[:1] == ["usage"]:
        return usage_command(argv[1:])
    parser = argparse.ArgumentParser(prog="translator", description="OpenAI <-> Claude translation proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("keys", help="create or hash client keys: translator keys create --name NAME")
    sub.add_parser("usage", help="usage per key and model: translator usage [--key NAME] [--since DAY]")
    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="TOML settings file (default: $TRANSLATOR_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--demo", action="store_true", help="use the built-in offline demo upstream (no key needed)")
    serve.add_argument("--workers", type=_positive, default=1, help="processes sharing the port (SO_REUSEPORT)")
    reload = sub.add_parser("reload", help="make the running server re-read its config (sends it SIGHUP)")
    reload.add_argument("--config", help="its TOML settings file (default: $TRANSLATOR_CONFIG): checked first, "
                                         "and its server.pid_file names the process")
    reload.add_argument("--pid", type=_positive, help="the server's pid (the parent's, with workers)")
    args = parser.parse_args(argv)
    if args.command == "reload":
        return reload_command(args.config, args.pid)
    return serve_command(args)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


@dataclass(frozen=True)
class ConfigSource:
    """Where the settings come from, to read them again on SIGHUP (in each worker, too: it is pickled)."""

    path: str | None
    overrides: dict[str, Any]

    def load(self) -> Settings:
        return load_settings(self.path, overrides=self.overrides)


def serve_command(args: argparse.Namespace) -> int:
    """Every config mistake is one line on stderr and exit 2, before anything listens."""
    source = ConfigSource(args.config, {"server.host": args.host, "server.port": args.port, "demo": args.demo or None})
    try:
        settings = source.load()
        preflight(settings)
    except (OSError, ValueError) as err:  # a config mistake (TOML, UTF-8, validation, shape, TLS files)
        print(f"translator: cannot load the settings: {one_line(err)}", file=sys.stderr)
        return 2
    refusal = open_access_refusal(settings) or workers_refusal(settings, args.workers)
    if refusal:
        print(f"translator: {refusal}", file=sys.stderr)
        return 2
    try:
        sock = bound_socket(settings.server.host, settings.server.port, reuse_port=args.workers > 1)
    except OSError as err:
        print(f"translator: cannot listen on {settings.server.host} port {settings.server.port}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    # Once the pid file names us, `translator reload` may send SIGHUP, whose default would end the process: it
    # is ignored until the server (or, with workers, the parent's supervisor) handles it.
    hangup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        write_pid_file(settings.server.pid_file)
    except OSError as err:
        print(f"translator: cannot write server.pid_file: {one_line(err)}", file=sys.stderr)
        sock.close()
        signal.signal(signal.SIGHUP, hangup)
        return 2
    configure_logging(settings.server.log_level)
    upstream = "built-in demo upstream" if settings.demo else ", ".join(_described(u) for u in settings.upstream_list)
    log.info("starting", host=settings.server.host, port=settings.server.port, upstream=upstream, workers=args.workers)
    for warning in config_warnings(settings, os.environ):
        log.warning(warning)
        print(f"warning: {warning}", file=sys.stderr)
    listening = f"translator listening on http://{settings.server.host}:{settings.server.port} -> {upstream}"
    try:
        if args.workers <= 1:
            _run(settings, source, sock=sock, announce=Announcement(listening))
            return 0
        sock.close()  # (it showed the port free; each worker binds its own, sharing it with SO_REUSEPORT)
        return _run_workers(settings, source, args.workers, Announcement(listening, shared=True))
    finally:
        remove_pid_file(settings.server.pid_file)
        signal.signal(signal.SIGHUP, hangup)


def preflight(settings: Settings) -> None:
    """What the settings' types cannot check but the start would trip on: the TLS files must be PEM."""
    for upstream in settings.upstream_list:
        tls_context(upstream)


def bound_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """The listening address, bound now so that a port in use is a start-up error, not a crash later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def write_pid_file(path: str) -> None:
    """``server.pid_file`` holds this process's pid while it serves (for ``translator reload``)."""
    if path:
        Path(path).write_text(f"{os.getpid()}\n")


def remove_pid_file(path: str) -> None:
    if path:
        with contextlib.suppress(OSError):
            Path(path).unlink()


def reload_command(config: str | None, pid: int | None) -> int:
    """Check the config, then send SIGHUP to the server: the pid given, else the one in server.pid_file."""
    try:
        settings = load_settings(config)
        preflight(settings)
    except (OSError, ValueError) as err:
        print(f"translator: not reloading, the config has a mistake: {one_line(err)}", file=sys.stderr)
        return 2
    refusal = open_access_refusal(settings)  # (the server would refuse it too: say so here, and send nothing)
    if refusal:
        print(f"translator: not reloading: {refusal}", file=sys.stderr)
        return 2
    if pid is None:
        if not settings.server.pid_file:
            print("translator: which server? Give --pid PID, or set server.pid_file in the config", file=sys.stderr)
            return 2
        try:
            pid = int(Path(settings.server.pid_file).read_text().strip())
        except (OSError, ValueError) as err:
            print(f"translator: cannot read the pid file {settings.server.pid_file}: {one_line(err)}",
                  file=sys.stderr)
            return 1
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as err:
        print(f"translator: cannot signal process {pid}: {err.strerror or err}", file=sys.stderr)
        return 1
    print(f"translator: asked process {pid} to reload; its log says whether the config was applied",
          file=sys.stderr)
    return 0


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


def return_big_blocks_to_the_os(env: Mapping[str, str] = os.environ) -> bool:
    """Keep glibc's mmap threshold fixed at 128 KiB. By default it rises after a big block is freed, so the
    next big request bodies (images, long histories) come from the heap, whose memory stays in RSS; with
    a fixed threshold every big block is its own mapping, returned when freed. True if applied (glibc).

    An operator's own threshold (glibc's ``MALLOC_MMAP_THRESHOLD_`` or the ``glibc.malloc.mmap_threshold``
    tunable) stands: on a machine where page faults are dear, a higher one (with a trim threshold to match)
    trades RSS for CPU on big bodies."""
    if not sys.platform.startswith("linux") or _operator_threshold(env):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # another C library (musl): nothing to do
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, BIG_BLOCK))


def _operator_threshold(env: Mapping[str, str]) -> bool:
    return "MALLOC_MMAP_THRESHOLD_" in env or "glibc.malloc.mmap_threshold" in env.get("GLIBC_TUNABLES", "")


class Announcement:
    """The "listening" line on stderr, said once the port accepts connections (a script may wait for it):
    by the server, or, with workers, by the first of them to listen (``shared``: across the processes)."""

    def __init__(self, line: str, *, shared: bool = False) -> None:
        self.line = line
        self._said = multiprocessing.get_context("spawn").Value("b", 0) if shared else None

    def __call__(self) -> None:
        if self._said is None:
            print(self.line, file=sys.stderr, flush=True)
            return
        with self._said.get_lock():
            if not self._said.value:
                self._said.value = 1
                print(self.line, file=sys.stderr, flush=True)


def _run(
    settings: Settings,
    source: ConfigSource,
    *,
    sock: socket.socket | None = None,
    workers: int = 1,
    announce: Callable[[], None] | None = None,
) -> None:
    # Until serve() handles SIGHUP (its default would end the process) one that comes waits, and is handled then.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    return_big_blocks_to_the_os()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(settings, sock=sock, load=source.load, workers=workers, on_listening=announce))


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    stop: asyncio.Event | None = None,
    load: Callable[[], Settings] | None = None,
    workers: int = 1,
    on_listening: Callable[[], None] | None = None,
) -> None:
    """Serve on ``sock`` (else bind host and port, sharing them with SO_REUSEPORT when ``workers`` > 1)
    until SIGTERM/SIGINT (or ``stop``); on SIGHUP apply ``load()``'s settings (``reload_app``).
    ``on_listening()`` once the port accepts connections. Then shut
    down gracefully:
    1. /readyz turns 503 and, for ``drain_seconds``, requests are still served while a load balancer notices;
    2. the listener closes and in-flight requests get ``shutdown_grace_seconds`` to finish;
    3. streams still open then end with an error event (not a cut connection), and the process exits."""
    app = create_app(settings, workers=workers)
    server = settings.server
    runner = ProxyRunner(app, access_log=None, shutdown_timeout=1.0, **runner_kwargs(settings))
    await runner.setup()
    # Start-up objects (modules, settings, the app) never die: keep them out of the collector's way, and
    # collect young objects less often; request bodies make many short-lived containers.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, server.host, server.port, reuse_port=workers > 1 or None)
    await site.start()
    if on_listening is not None:
        on_listening()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[bool]] = set()
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, _start_reload, app, load, reloads)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # (one that waited is handled now)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if load is not None:  # (a SIGHUP while draining is ignored: its default would end the process)
            loop.remove_signal_handler(signal.SIGHUP)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
    await asyncio.gather(*reloads, return_exceptions=True)
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


def _start_reload(app: web.Application, load: Callable[[], Settings], reloads: set[asyncio.Task[bool]]) -> None:
    task = asyncio.create_task(reload_app(app, load))
    reloads.add(task)
    task.add_done_callback(reloads.discard)


def _run_workers(settings: Settings, source: ConfigSource, count: int, announce: Announcement) -> int:
    """N processes bind the same port with SO_REUSEPORT; the kernel spreads connections between them. Their
    metrics go to files in a directory of ours (prometheus_client's multiprocess mode), so that any worker's
    /metrics shows them all; it goes when the server stops."""
    ctx = multiprocessing.get_context("spawn")
    latest = [settings]  # what a restarted worker starts with: the last config that loaded

    def spawn() -> BaseProcess:
        worker = ctx.Process(target=_worker, args=(latest[0], source, count, os.getpid(), announce), daemon=False)
        worker.start()  # (with SIGHUP blocked, by the supervisor: see its docstring)
        return worker

    def reread() -> None:
        with contextlib.suppress(OSError, ValueError):  # (a refusal: each worker logs and counts it)
            latest[0] = reloaded_settings(settings, source.load(), workers=count)[0]

    metrics_dir = tempfile.mkdtemp(prefix="translator-metrics-")
    os.environ[MULTIPROC_DIR] = metrics_dir  # (before the workers start: they read it at import)
    try:
        supervisor = Supervisor(
            spawn, count, on_exit=lambda pid: mark_process_dead(pid, metrics_dir),  # type: ignore[no-untyped-call]
            on_reload=reread,
        )
        return supervisor.run()
    finally:
        del os.environ[MULTIPROC_DIR]
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _worker(settings: Settings, source: ConfigSource, workers: int, parent: int, announce: Announcement) -> None:
    stop_with_the_parent(parent)
    configure_logging(settings.server.log_level)
    _run(settings, source, workers=workers, announce=announce)


PR_SET_PDEATHSIG = 1  # Linux prctl(2): a signal for this process when its parent dies


def stop_with_the_parent(parent: int) -> None:
    """A worker whose parent was killed (``kill -9``: it could not stop them) gets SIGTERM and drains, rather
    than serving on, unsupervised, on a port the next server cannot take. Linux only."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # (it died before that was set)
        raise SystemExit(0)
