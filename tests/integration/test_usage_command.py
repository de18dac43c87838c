"""``translator usage``: the table an operator reads, from the running server (in-memory usage) or from Redis."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import orjson
import pytest

from tests.conftest import CLIENT_KEYS
from tests.fakes import FakeUpstream
from translator.cli import main
from translator.gateway.keys import hash_key
from translator.gateway.usage import Counts, RedisUsageStore
from translator.usage_command import render, run_usage

ALICE = "sk-tr-usage-cmd-alice-0123456789abcdef"
ADMIN = "sk-tr-usage-cmd-admin-0123456789abcdef"
CLIENT_KEYS.update({ALICE, ADMIN})
KEYS = [{"name": "alice", "hash": hash_key(ALICE), "budget_tokens": 100000, "budget_usd": 5.0},
        {"name": "ops", "hash": hash_key(ADMIN), "models": [], "admin": True}]
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
           "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
           "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 1000}}
CLAUDE = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
REPORT = {"object": "usage", "since": "2026-12-01", "until": "2026-12-07", "data": [
    {"date": "2026-12-07", "key": "alice", "model": "claude-sonnet-4-5", "requests": 2, "input_tokens": 6,
     "output_tokens": 4, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 0, "cost_usd": 0.000678},
    {"date": "2026-12-07", "key": "bob", "model": "claude-haiku-4-5", "requests": 1, "input_tokens": 3,
     "output_tokens": 2, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "cost_usd": 0.000013}],
    "budgets": [{"key": "alice", "period": "month", "budget_tokens": 100000, "budget_usd": 5.0,
                 "used_tokens": 2010, "used_usd": 0.000678, "renews_at": "2027-01-01T00:00:00Z"}]}
TABLE = """\
Usage from 2026-12-01 to 2026-12-07 (UTC days)

DATE        KEY    MODEL              REQUESTS  INPUT  OUTPUT  CACHE READ  CACHE WRITE  COST USD
2026-12-07  alice  claude-sonnet-4-5         2      6       4        2000            0  0.000678
2026-12-07  bob    claude-haiku-4-5          1      3       2           0            0  0.000013
total                                        3      9       6        2000            0  0.000691

KEY    PERIOD  BUDGET                USED                  RENEWS AT
alice  month   100000 tokens, $5.00  2010 tokens, $0.0007  2027-01-01T00:00:00Z
"""


def test_the_report_as_a_table() -> None:
    assert render(REPORT) == TABLE
    assert render({**REPORT, "data": [], "budgets": []}) == (
        "Usage from 2026-12-01 to 2026-12-07 (UTC days)\n\nno usage recorded\n")


async def command(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await run_usage(list(argv), stdout=out, stderr=err, env=env or {})
    return status, out.getvalue(), err.getvalue()


async def test_it_asks_the_running_server_with_the_admin_key(make_proxy, fake_upstream: FakeUpstream) -> None:
    proxy = await make_proxy(keys=KEYS, upstream={"api_key": "sk-upstream-secret"})
    for _ in range(2):
        fake_upstream.json(MESSAGE)
        assert (await proxy.post("/v1/messages", json=CLAUDE, headers={"x-api-key": ALICE})).status == 200
    url = str(proxy.make_url("")).rstrip("/")
    status, out, err = await command("--url", url, "--key", "alice", env={"TRANSLATOR_ADMIN_KEY": ADMIN})
    assert (status, err) == (0, "")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    lines = out.splitlines()
    assert lines[0] == f"Usage from {today[:8]}01 to {today} (UTC days)"
    assert lines[3].split() == [today, "alice", "claude-sonnet-4-5", "2", "6", "4", "2000", "0", "0.000678"]
    assert lines[7].split()[:7] == ["alice", "month", "100000", "tokens,", "$5.00", "2010", "tokens,"]
    status, out, _ = await command("--url", url, "--json", env={"TRANSLATOR_ADMIN_KEY": ADMIN})
    served = await (await proxy.get("/v1/usage", headers={"x-api-key": ADMIN})).json()
    assert status == 0
    assert orjson.loads(out) == served


@pytest.mark.parametrize("env,answer", [
    ({}, "answered 401: missing API key: send it as 'x-api-key' or 'Authorization: Bearer <key>' "
         "(set TRANSLATOR_ADMIN_KEY to an admin key)"),
    ({"TRANSLATOR_ADMIN_KEY": ALICE}, "answered 403: key 'alice' is not an admin key ([[keys]] admin = true) "
                                      "(set TRANSLATOR_ADMIN_KEY to an admin key)"),
])
async def test_without_an_admin_key_it_says_so(make_proxy, env: dict[str, str], answer: str) -> None:
    proxy = await make_proxy(keys=KEYS)
    url = str(proxy.make_url("")).rstrip("/")
    status, out, err = await command("--url", url, env=env)
    assert (status, out) == (1, "")
    assert err == f"translator usage: {url} answered {answer.removeprefix('answered ')}\n"


def test_a_server_that_is_not_there_is_one_line_and_status_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--url", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == ("translator usage: cannot reach the server at http://127.0.0.1:1: "
                                       "ClientConnectorError (is it running? --url)\n")
    assert main(["usage", "--since", "yesterday"]) == 2


async def test_it_reads_redis_when_the_config_has_it(tmp_path: Path, redis_url: str) -> None:
    store = RedisUsageStore(redis_url)
    now = dt.datetime.now(dt.UTC)
    for key, model, counts in (("alice", "claude-sonnet-4-5", Counts(2, 6, 4, 2000, 0, 0.000678)),
                               ("bob", "claude-haiku-4-5", Counts(1, 3, 2, 0, 0, 0.000013))):
        await store.record(key, model, counts, now)
    await store.close()
    config = tmp_path / "config.toml"
    keys = "".join(f'[[keys]]\nname = "{k["name"]}"\nhash = "{k["hash"]}"\n' for k in KEYS)
    config.write_text(f'[redis]\nurl = "{redis_url}"\n{keys}')
    status, out, err = await command("--config", str(config), "--json")
    assert (status, err) == (0, "")
    today = now.date().isoformat()
    report = orjson.loads(out)
    assert [(r["date"], r["key"], r["model"], r["requests"], r["cost_usd"]) for r in report["data"]] == [
        (today, "alice", "claude-sonnet-4-5", 2, 0.000678), (today, "bob", "claude-haiku-4-5", 1, 0.000013)]
    status, out, _ = await command("--config", str(config), "--key", "bob", "--since", today, "--until", today)
    assert status == 0
    assert out.splitlines()[3].split() == [today, "bob", "claude-haiku-4-5", "1", "3", "2", "0", "0", "0.000013"]
