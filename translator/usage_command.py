"""``translator usage [--key NAME] [--since DAY] [--until DAY] [--config FILE] [--url URL] [--json]``: the usage
per UTC day, key and model, and each budgeted key's standing, as a table in the terminal.

Where it reads from:

- with ``[redis] url`` in the settings (and no ``--url``): Redis itself, the store every replica records into;
- otherwise the running server's ``GET /v1/usage`` (in-memory usage lives in that process), at ``--url`` or
  ``http://<server.host>:<server.port>``, with the admin key in ``TRANSLATOR_ADMIN_KEY`` (needed once keys
  are configured).

The report itself is ``translator.gateway.usage_report``'s; this is only the command line around it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

import aiohttp
import orjson

from translator.config import Settings, load_settings
from translator.gateway.keys import KeyRing
from translator.gateway.usage import RedisUsageStore, UsageUnavailable
from translator.gateway.usage_report import default_range, usage_report

ADMIN_KEY_ENV = "TRANSLATOR_ADMIN_KEY"
_COLUMNS = (
    ("DATE", "date"), ("KEY", "key"), ("MODEL", "model"), ("REQUESTS", "requests"), ("INPUT", "input_tokens"),
    ("OUTPUT", "output_tokens"), ("CACHE READ", "cache_read_input_tokens"),
    ("CACHE WRITE", "cache_creation_input_tokens"), ("COST USD", "cost_usd"),
)
_SUMMED = ("requests", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
           "cost_usd")


class CommandFailed(Exception):
    """Something the operator can fix (an unreachable server, a missing admin key): one line, exit status 1."""


def usage_command(argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """``translator usage ...`` (``argv`` is what follows ``usage``); returns the exit status."""
    return asyncio.run(run_usage(argv, stdout=stdout, stderr=stderr))


async def run_usage(
    argv: list[str], *, stdout: TextIO | None = None, stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    env = os.environ if env is None else env
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on bad usage; the caller wants a status
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = load_settings(args.config, env=env)
        report = await _report(args, settings, env)
    except (OSError, ValueError) as exc:
        print(f"translator usage: cannot load the settings: {exc}", file=err)
        return 2
    except CommandFailed as exc:
        print(f"translator usage: {exc}", file=err)
        return 1
    out.write(orjson.dumps(report).decode() + "\n" if args.json else render(report))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="translator usage", description="usage per key and model, per UTC day")
    parser.add_argument("--key", help="only this key's usage")
    parser.add_argument("--since", type=_day, help="first UTC day, YYYY-MM-DD (default: the month's first)")
    parser.add_argument("--until", type=_day, help="last UTC day, YYYY-MM-DD (default: today)")
    parser.add_argument("--config", help="TOML settings file (default: $TRANSLATOR_CONFIG)")
    parser.add_argument("--url", help="ask this running server (default: Redis if configured, else the server "
                                      "at server.host:server.port)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON (GET /v1/usage's shape)")
    return parser


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day as YYYY-MM-DD: {value!r}") from None


async def _report(args: argparse.Namespace, settings: Settings, env: Mapping[str, str]) -> dict[str, Any]:
    if settings.redis.url and not args.url:
        return await _from_redis(args, settings)
    return await _from_server(args, args.url or _server_url(settings), env.get(ADMIN_KEY_ENV, ""))


async def _from_redis(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    first, today = default_range(now)
    store = RedisUsageStore(settings.redis.url, timeout=settings.redis.timeout_seconds)
    try:
        return await usage_report(store, KeyRing(settings.keys).keys, args.since or first, args.until or today,
                                  args.key, now)
    except UsageUnavailable as exc:
        raise CommandFailed(f"{exc.message} (redis: [redis] url)") from None
    finally:
        await store.close()


def _server_url(settings: Settings) -> str:
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # (a wildcard bind is reached on loopback)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.server.port}"


async def _from_server(args: argparse.Namespace, url: str, admin_key: str) -> dict[str, Any]:
    query = {name: str(value) for name in ("key", "since", "until") if (value := getattr(args, name))}
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(url.rstrip("/") + "/v1/usage", params=query, headers=headers) as resp:
            body = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise CommandFailed(f"cannot reach the server at {url}: {exc.__class__.__name__} (is it running? --url)") \
            from None
    return _answer(status, body, url)


def _answer(status: int, body: bytes, url: str) -> dict[str, Any]:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if status == 200 and isinstance(answer, dict):
        return answer
    error = answer.get("error") if isinstance(answer, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    hint = f" (set {ADMIN_KEY_ENV} to an admin key)" if status in (401, 403) else ""
    raise CommandFailed(f"{url} answered {status}: {message or 'not a usage report'}{hint}")


def render(report: dict[str, Any]) -> str:
    """The report as text tables: the rows and their total, then the budgets."""
    rows = report.get("data") or []
    lines = [f"Usage from {report.get('since')} to {report.get('until')} (UTC days)", ""]
    if rows:
        total = {name: sum(r.get(name, 0) for r in rows) for name in _SUMMED}
        lines += _table([title for title, _ in _COLUMNS],
                        [[_cell(r.get(field)) for _, field in _COLUMNS] for r in [*rows, {"date": "total", **total}]])
    else:
        lines.append("no usage recorded")
    budgets = report.get("budgets") or []
    if budgets:
        lines += ["", *_table(["KEY", "PERIOD", "BUDGET", "USED", "RENEWS AT"], [_budget_row(b) for b in budgets])]
    return "\n".join(lines) + "\n"


def _budget_row(budget: dict[str, Any]) -> list[str]:
    limits, used = [], []
    if budget.get("budget_tokens") is not None:
        limits.append(f"{budget['budget_tokens']} tokens")
        used.append(f"{budget.get('used_tokens', 0)} tokens")
    if budget.get("budget_usd") is not None:
        limits.append(f"${budget['budget_usd']:.2f}")
        used.append(f"${budget.get('used_usd', 0):.4f}")
    return [str(budget.get("key")), str(budget.get("period")), ", ".join(limits), ", ".join(used),
            str(budget.get("renews_at"))]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return "" if value is None else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns as wide as their widest cell; text left, numbers right."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True))

    return [line(header).rstrip(), *(line(row).rstrip() for row in rows)]


def _is_number(cell: str) -> bool:
    return cell.replace(".", "", 1).isdigit()
