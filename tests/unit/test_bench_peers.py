"""bench.peers and bench.suite: the peers are optional (not installed: reported so, never a dependency), the
targets are read as "at least N times our CPU per request", and every section can be run alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import suite
from bench.__main__ import parse_args
from bench.peers import PEERS, litellm_config, markdown, verdicts


def _row(cpu: float, requests: int = 100) -> dict[str, Any]:
    return {"cpu_us_per_req": cpu, "requests": requests, "rps": 10.0, "rss_mb": 50.0, "errors": 0,
            "first_error": None, "added": {"p50_added_ms": 1.0, "p99_added_ms": 2.0}}


def test_peers_are_not_installed_in_an_empty_folder(tmp_path: Path) -> None:
    assert [p.name for p in PEERS] == ["litellm", "portkey"]
    assert not any(p.installed(tmp_path) for p in PEERS)
    portkey = PEERS[1]
    entry = portkey.entry(tmp_path)
    entry.parent.mkdir(parents=True)
    entry.write_text("")
    assert portkey.installed(tmp_path)
    assert portkey.command(tmp_path, "http://127.0.0.1:1", tmp_path)[-2:] == ["--port={port}", "--headless"]
    assert portkey.headers("http://127.0.0.1:1")["x-portkey-custom-host"] == "http://127.0.0.1:1/v1"


def test_litellm_is_pointed_at_the_fake_upstream() -> None:
    config = litellm_config("http://127.0.0.1:9")
    assert "api_base: http://127.0.0.1:9" in config and "model: anthropic/claude-sonnet-4-5" in config


def test_targets_are_at_least_n_times_our_cpu() -> None:
    rows = {"json": {"direct": _row(100), "translator": _row(500), "litellm": _row(12_000), "portkey": _row(1000)},
            "stream20": {"direct": _row(100), "translator": _row(1000), "portkey": _row(0, requests=0)}}
    got = {(v["target"].split("'")[0], v["detail"]): (v["value"], v["met"]) for v in verdicts(rows)}
    assert got[("litellm", "json")] == (24.0, True)
    assert got[("portkey", "json")] == (2.0, False)
    assert got[("portkey", "stream20 (no good answer from portkey)")][1] is False
    assert ("litellm", "stream20") not in got  # not measured: no verdict
    section = {"plan": {"concurrency": 16, "seconds": 10.0}, "status": {"litellm": "not installed"},
               "rows": rows, "targets": verdicts(rows)}
    assert "litellm: not installed" in "\n".join(markdown(section))


def test_sections_are_selected_by_name() -> None:
    assert suite.selected(parse_args([])) == list(suite.SECTIONS)
    assert suite.selected(parse_args(["--peers"])) == ["peers"]
    assert suite.selected(parse_args(["--only", "long-streams,open-loop"])) == ["long-streams", "open-loop"]
    with pytest.raises(SystemExit):
        suite.selected(parse_args(["--only", "nonsense"]))


def test_short_settings_reach_the_section_plans() -> None:
    args = parse_args(["--streams", "100,200", "--stream-seconds", "10", "--stream-routes", "claude",
                       "--rate", "800", "--rate-seconds", "3"])
    long = suite.long_plan(args)
    assert (long.counts, long.seconds, long.routes, long.events) == ((100, 200), 10.0, ("claude",), 200)
    rate = suite.rate_plan(args)
    assert (rate.rate, rate.seconds, rate.search_seconds) == (800.0, 3.0, 3.0)
