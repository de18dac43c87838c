"""``GET /v1/usage``: the usage table per UTC day, key and model, and each key's budget, for an admin
(the report's shape: ``translator.gateway.usage_report``).

Query: ``key`` (one key's rows), ``since`` and ``until`` (UTC days, ``YYYY-MM-DD``, both included; by default
the current month up to today). It needs an admin key once keys are configured (``KeyRing.require_admin``),
as ``/metrics`` does: both show every key's name and traffic.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web

from translator.errors import InvalidRequest
from translator.gateway.keys import presented_keys
from translator.gateway.usage_report import default_range, usage_report
from translator.server.spend import utc_now
from translator.server.state import KEYRING, USAGE


async def get_usage(request: web.Request) -> web.Response:
    ring = request.app[KEYRING]
    ring.require_admin(presented_keys(request.headers))
    now = utc_now()
    first, today = default_range(now)
    since = _day(request, "since", first)
    until = _day(request, "until", today)
    if since > until:
        raise InvalidRequest("since: a day no later than until", param="since")
    report = await usage_report(request.app[USAGE], ring.keys, since, until, request.query.get("key") or None, now)
    return web.json_response(report)


def _day(request: web.Request, name: str, default: dt.date) -> dt.date:
    value = request.query.get(name)
    if not value:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: a day as YYYY-MM-DD", param=name) from None
