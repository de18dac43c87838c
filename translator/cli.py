"""Command line: ``translator serve [--config FILE] [--host H] [--port P] [--demo]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from aiohttp import web

from translator.config import load_settings
from translator.log import configure_logging, log
from translator.server import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="translator", description="OpenAI <-> Claude translation proxy")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="TOML settings file (default: $TRANSLATOR_CONFIG)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--demo", action="store_true", help="use the built-in offline demo upstream (no key needed)")
    args = parser.parse_args(argv)
    settings = load_settings(
        args.config, overrides={"server.host": args.host, "server.port": args.port, "demo": args.demo or None}
    )
    configure_logging(settings.server.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    upstream = "built-in demo upstream" if settings.demo else settings.upstream.base_url
    log.info("starting", host=settings.server.host, port=settings.server.port, upstream=upstream)
    print(
        f"translator listening on http://{settings.server.host}:{settings.server.port} -> {upstream}",
        file=sys.stderr,
        flush=True,
    )
    web.run_app(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        handler_cancellation=True,  # a client that goes away cancels its handler, and so the upstream call
        access_log=None,
        print=None,
    )
    return 0
