"""Prometheus metrics: exact sample values, label sets, the exposition text, and per-app registries."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from translator.gateway.metrics import MULTIPROC_DIR, Metrics
from translator.gateway.usage import Counts


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_observe_request_counts_and_times(metrics: Metrics) -> None:
    metrics.observe_request("chat", "claude-sonnet-4-5", "primary", 200, 1.2, 0.3)
    metrics.observe_request("chat", "claude-sonnet-4-5", "primary", 200, 0.4, None)  # no stream: no TTFT
    metrics.observe_request("messages", "claude-haiku-4-5", "backup", 429, 0.01, None)
    labels = {"route": "chat", "model": "claude-sonnet-4-5", "upstream": "primary", "status": "200"}
    assert value(metrics, "translator_requests_total", **labels) == 2
    assert value(metrics, "translator_requests_total", route="messages", model="claude-haiku-4-5",
                 upstream="backup", status="429") == 1
    assert value(metrics, "translator_request_duration_seconds_count", route="chat") == 2
    assert value(metrics, "translator_request_duration_seconds_sum", route="chat") == pytest.approx(1.6)
    assert value(metrics, "translator_request_duration_seconds_bucket", route="chat", le="0.5") == 1
    assert value(metrics, "translator_request_duration_seconds_bucket", route="chat", le="2.5") == 2
    assert value(metrics, "translator_time_to_first_token_seconds_count", route="chat") == 1
    assert value(metrics, "translator_time_to_first_token_seconds_sum", route="chat") == pytest.approx(0.3)
    assert value(metrics, "translator_time_to_first_token_seconds_count", route="messages") is None


def test_tokens_by_kind(metrics: Metrics) -> None:
    for kind, n in [("input", 100), ("output", 20), ("cache_read", 4000), ("cache_creation", 500), ("input", 1)]:
        metrics.add_tokens("chat", "claude-sonnet-4-5", kind, n)
    metrics.add_tokens("chat", "claude-sonnet-4-5", "output", 0)  # nothing to add, and no error
    got = {
        kind: value(metrics, "translator_tokens_total", route="chat", model="claude-sonnet-4-5", kind=kind)
        for kind in ["input", "output", "cache_read", "cache_creation"]
    }
    assert got == {"input": 101, "output": 20, "cache_read": 4000, "cache_creation": 500}
    with pytest.raises(ValueError, match="unknown token kind 'thinking'"):
        metrics.add_tokens("chat", "m", "thinking", 1)


def test_upstream_health_and_attempts(metrics: Metrics) -> None:
    metrics.set_upstream_health("primary", True)
    metrics.set_upstream_health("backup", True)
    metrics.set_upstream_health("backup", False)
    assert value(metrics, "translator_upstream_healthy", upstream="primary") == 1
    assert value(metrics, "translator_upstream_healthy", upstream="backup") == 0
    for outcome in ["ok", "ok", "timeout"]:
        metrics.upstream_attempt("primary", outcome)
    assert value(metrics, "translator_upstream_attempts_total", upstream="primary", outcome="ok") == 2
    assert value(metrics, "translator_upstream_attempts_total", upstream="primary", outcome="timeout") == 1


def test_rate_limited(metrics: Metrics) -> None:
    metrics.rate_limited("ci", "requests")
    metrics.rate_limited("ci", "requests")
    metrics.rate_limited("ci", "concurrency")
    assert value(metrics, "translator_rate_limited_total", key="ci", limit="requests") == 2
    assert value(metrics, "translator_rate_limited_total", key="ci", limit="concurrency") == 1
    assert value(metrics, "translator_rate_limited_total", key="ci", limit="tokens") is None
    with pytest.raises(ValueError, match="unknown limit 'minutes'"):
        metrics.rate_limited("ci", "minutes")


def test_redis_metrics_appear_once_redis_is_heard_of(metrics: Metrics) -> None:
    assert b"translator_redis" not in metrics.render()[0]  # no Redis configured: no "translator_redis_up 0"
    metrics.redis_state(True)
    metrics.redis_state(False)
    metrics.redis_error("ratelimit")
    metrics.redis_error("ratelimit")
    metrics.redis_error("sticky")
    metrics.redis_state(True)
    metrics.redis_state(False)
    assert value(metrics, "translator_redis_up") == 0
    assert value(metrics, "translator_redis_outages_total") == 2
    assert value(metrics, "translator_redis_errors_total", component="ratelimit") == 2
    assert value(metrics, "translator_redis_errors_total", component="sticky") == 1
    metrics.redis_state(True)
    assert value(metrics, "translator_redis_up") == 1


def test_usage_by_key_counts_requests_tokens_by_kind_and_cost() -> None:
    metrics = Metrics()
    metrics.add_key_usage("alice", Counts(1, 10, 5, 100, 0, 0.25))
    metrics.add_key_usage("alice", Counts(1, 1, 0, 0, 20, 0.0))
    metrics.add_key_usage("-", Counts(requests=1))
    assert value(metrics, "translator_key_requests_total", key="alice") == 2
    assert value(metrics, "translator_key_requests_total", key="-") == 1
    assert {kind: value(metrics, "translator_key_tokens_total", key="alice", kind=kind)
            for kind in ("input", "output", "cache_read", "cache_creation")} == {
        "input": 11, "output": 5, "cache_read": 100, "cache_creation": 20}
    assert value(metrics, "translator_key_cost_usd_total", key="alice") == 0.25
    assert value(metrics, "translator_key_tokens_total", key="-", kind="input") is None  # no series for zeros


def test_model_label_is_capped() -> None:
    metrics = Metrics(max_models=2)
    for model in ["m1", "m2", "m3", "m4", "m1"]:
        metrics.observe_request("chat", model, "u", 200, 0.1, None)
        metrics.add_tokens("chat", model, "input", 1)
    counts = {
        m: value(metrics, "translator_requests_total", route="chat", model=m, upstream="u", status="200")
        for m in ["m1", "m2", "m3", "other"]
    }
    assert counts == {"m1": 2, "m2": 1, "m3": None, "other": 2}
    assert value(metrics, "translator_tokens_total", route="chat", model="other", kind="input") == 2


def test_render_is_parseable_prometheus_text(metrics: Metrics) -> None:
    metrics.observe_request("chat", "claude-sonnet-4-5", "primary", 200, 0.2, 0.1)
    metrics.add_tokens("chat", "claude-sonnet-4-5", "input", 7)
    metrics.set_upstream_health("primary", True)
    metrics.upstream_attempt("primary", "ok")
    metrics.rate_limited("ci", "tokens")
    metrics.add_key_usage("ci", Counts(requests=1, input_tokens=7, cost_usd=0.5))
    body, content_type = metrics.render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    # prometheus_client's default "<name>_created" timestamps are left alone; they are not ours to check.
    families = {f.name: f for f in text_string_to_metric_families(body.decode()) if not f.name.endswith("_created")}
    assert set(families) == {
        "translator_requests",
        "translator_request_duration_seconds",
        "translator_time_to_first_token_seconds",
        "translator_tokens",
        "translator_upstream_healthy",
        "translator_upstream_attempts",
        "translator_rate_limited",
        "translator_key_requests",
        "translator_key_tokens",
        "translator_key_cost_usd",
        "translator_config_reloads",
    }
    assert [f.type for f in (families["translator_requests"], families["translator_upstream_healthy"])] == [
        "counter", "gauge"
    ]
    assert families["translator_request_duration_seconds"].type == "histogram"
    assert [f for f in families] == [  # in the order they were always exposed in
        "translator_requests", "translator_request_duration_seconds", "translator_time_to_first_token_seconds",
        "translator_tokens", "translator_upstream_healthy", "translator_upstream_attempts", "translator_rate_limited",
        "translator_key_requests", "translator_key_tokens", "translator_key_cost_usd", "translator_config_reloads"]
    assert b'translator_tokens_total{kind="input",model="claude-sonnet-4-5",route="chat"} 7.0' in body
    assert b'translator_rate_limited_total{key="ci",limit="tokens"} 1.0' in body


def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()  # no "Duplicated timeseries": nothing touches the global registry
    one.rate_limited("ci", "requests")
    assert value(one, "translator_rate_limited_total", key="ci", limit="requests") == 1
    assert value(two, "translator_rate_limited_total", key="ci", limit="requests") is None
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("translator_rate_limited_total", {"key": "ci", "limit": "requests"}) is None


def test_buckets_hold_values_up_to_their_bound_and_series_carry_created(metrics: Metrics) -> None:
    for seconds in (0.5, 0.5000001, 600.0, 601.0):
        metrics.observe_request("chat", "m", "u", 200, seconds, None)
    buckets = {le: value(metrics, "translator_request_duration_seconds_bucket", route="chat", le=le)
               for le in ("0.25", "0.5", "1.0", "600.0", "+Inf")}
    assert buckets == {"0.25": 0, "0.5": 1, "1.0": 2, "600.0": 3, "+Inf": 4}  # le: less than or equal
    assert value(metrics, "translator_request_duration_seconds_sum", route="chat") == pytest.approx(1202.0000001)
    for name, labels in [("translator_request_duration_seconds_created", {"route": "chat"}),
                         ("translator_requests_created", {"route": "chat", "model": "m", "upstream": "u",
                                                          "status": "200"})]:
        created = value(metrics, name, **labels)
        assert created is not None and abs(created - time.time()) < 60


@pytest.mark.parametrize(
    ("usage", "counts"),
    [
        # Claude's shape (what a request's context keeps, whatever the route): each count as it came
        ({"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 11, "cache_creation_input_tokens": 13},
         Counts(1, 5, 7, 11, 13)),
        # what is no count counts as 0: missing, negative, a bool, a float, a string, null
        ({"input_tokens": -1, "output_tokens": True, "cache_read_input_tokens": 2.0,
          "cache_creation_input_tokens": "4"}, Counts(1)),
        ({"input_tokens": None, "output_tokens": False}, Counts(1)),
        ({}, Counts(1)),
        (None, Counts(1)),
        ([1, 2], Counts(1)),
    ],
)
def test_a_requests_tokens_by_kind_from_its_claude_usage(metrics: Metrics, usage: object, counts: Counts) -> None:
    assert Counts.from_claude(usage, requests=1) == counts
    metrics.add_usage("chat", "m", counts)
    got = {kind: value(metrics, "translator_tokens_total", route="chat", model="m", kind=kind)
           for kind in ["input", "output", "cache_read", "cache_creation"]}
    assert got == {"input": counts.input_tokens or None, "output": counts.output_tokens or None,
                   "cache_read": counts.cache_read_input_tokens or None,
                   "cache_creation": counts.cache_creation_input_tokens or None}


def test_reloads_are_counted_by_result_and_a_removed_upstream_loses_its_health_series(metrics: Metrics) -> None:
    metrics.config_reload("applied")
    metrics.config_reload("refused")
    metrics.config_reload("refused")
    assert value(metrics, "translator_config_reloads_total", result="applied") == 1
    assert value(metrics, "translator_config_reloads_total", result="refused") == 2
    with pytest.raises(ValueError, match="unknown reload result 'maybe'"):
        metrics.config_reload("maybe")
    metrics.set_upstream_health("gone", False)
    metrics.set_upstream_health("kept", True)
    metrics.forget_upstream("gone")
    metrics.forget_upstream("never-seen")  # (nothing to forget: no error)
    assert value(metrics, "translator_upstream_healthy", upstream="gone") is None
    assert value(metrics, "translator_upstream_healthy", upstream="kept") == 1


def test_with_several_workers_a_removed_upstream_reads_healthy_rather_than_its_last_value(
    metrics: Metrics, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """prometheus_client cannot remove a series in multiprocess mode (it warns, and every worker's file keeps
    the last value: a 0 would alert on an upstream no longer used). So it reads 1 until a restart."""
    metrics.set_upstream_health("gone", False)
    monkeypatch.setenv(MULTIPROC_DIR, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (prometheus_client's "Removal of labels has not been implemented")
        metrics.forget_upstream("gone")
    assert value(metrics, "translator_upstream_healthy", upstream="gone") == 1
