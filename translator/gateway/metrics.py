"""Prometheus metrics on a registry owned by one app.

A per-app ``CollectorRegistry`` (not prometheus_client's global one) lets tests and several apps in one process
each count on their own, and re-creating an app never hits "Duplicated timeseries". The metrics are
prometheus_client's own ``Counter``, ``Histogram`` and ``Gauge``, with no collector of ours, so that its
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) can serve them when several worker processes share a port.

The ``key`` label is a configured key's name (or "-" on an open proxy): its values are bounded by the config.
With several workers (``translator serve --workers N``) the parent sets ``PROMETHEUS_MULTIPROC_DIR`` before
it starts them: each worker's metrics then live in files there and ``render`` sums every worker's (counters
and histograms added up; the health gauge the lowest any live worker reports), so one scrape shows the whole
server whichever worker answers it.

The ``model`` label comes from clients, so it is capped: after ``max_models`` distinct values, new ones are
counted as "other". Without a cap, a client cycling random model names would grow every series without bound.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from translator.gateway.usage import Counts

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable: set, the workers share metrics
RELOAD_RESULTS = frozenset({"applied", "refused"})

TOKEN_KINDS = frozenset({"input", "output", "cache_read", "cache_creation"})
LIMITS = frozenset({"requests", "tokens", "concurrency", "budget"})
# A request's counts (translator.gateway.usage.Counts's token fields) -> the kind label.
COUNTED_KINDS = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_input_tokens": "cache_read",
    "cache_creation_input_tokens": "cache_creation",
}
OTHER = "other"
# The classic text format every scraper reads. Pinned rather than prometheus_client's CONTENT_TYPE_LATEST, which
# newer releases moved to version=1.0.0; with plain ASCII metric names the bytes are the same either way.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Whole requests run from milliseconds (errors, cached) to many minutes (long generations).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# The first token: what a streaming user waits for.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 60.0)


class _CappedLabel:
    """Passes the first ``limit`` distinct values through, then maps unseen ones to "other"."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class _RedisMetrics:
    """Redis outages (only with redis.url set; see gateway/redis_health.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("translator_redis_up", "1 while Redis answers, 0 during an outage", registry=registry,
                        multiprocess_mode="livemin")  # (several workers: 0 when any live one finds it down)
        self.outages = Counter("translator_redis_outages_total", "Redis outages begun", registry=registry)
        self.errors = Counter(
            "translator_redis_errors_total", "Redis calls that failed, or were not tried during an outage",
            ["component"], registry=registry,
        )


class Metrics:
    """The proxy's metrics; every name starts with ``translator_``."""

    def __init__(self, registry: CollectorRegistry | None = None, *, max_models: int = 200) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._model = _CappedLabel(max_models)
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        # (a registry exposes its metrics in the order they were registered: the order they always had)
        self._requests = Counter(
            "translator_requests_total", "Requests answered", ["route", "model", "upstream", "status"], registry=r
        )
        self._duration = Histogram(
            "translator_request_duration_seconds", "Time from request to the end of the answer", ["route"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self._ttft = Histogram(
            "translator_time_to_first_token_seconds", "Time from request to the first streamed token", ["route"],
            buckets=TTFT_BUCKETS, registry=r,
        )
        self._tokens = Counter("translator_tokens_total", "Tokens used", ["route", "model", "kind"], registry=r)
        self.upstream_healthy = Gauge(
            "translator_upstream_healthy", "1 while the upstream is considered healthy, else 0", ["upstream"],
            registry=r, multiprocess_mode="livemin",  # (several workers: 0 when any live one has it out)
        )
        self._attempts = Counter(
            "translator_upstream_attempts_total", "Calls made to an upstream, by outcome", ["upstream", "outcome"],
            registry=r,
        )
        self._rate_limited = Counter(
            "translator_rate_limited_total", "Requests refused by a key's own limits", ["key", "limit"], registry=r
        )
        self._redis: _RedisMetrics | None = None  # registered on first use: only where Redis is configured
        self._key_requests = Counter(
            "translator_key_requests_total", "Requests admitted, by client key", ["key"], registry=r
        )
        self._key_tokens = Counter(
            "translator_key_tokens_total", "Tokens used, by client key", ["key", "kind"], registry=r
        )
        self._key_cost = Counter(
            "translator_key_cost_usd_total", "Cost in USD by the price table, by client key", ["key"], registry=r
        )
        self._reloads = Counter(
            "translator_config_reloads_total", "Config reloads (SIGHUP), applied or refused", ["result"], registry=r
        )

    def observe_request(
        self, route: str, model: str, upstream: str, status: int, latency_s: float, ttft_s: float | None
    ) -> None:
        """One finished request; ``ttft_s`` only when a first token was streamed."""
        self._labelled(self._requests, route, self._model(model), upstream, str(status)).inc()
        self._labelled(self._duration, route).observe(latency_s)
        if ttft_s is not None:  # (its series appears only once a route streamed)
            self._labelled(self._ttft, route).observe(ttft_s)

    def add_tokens(self, route: str, model: str, kind: str, n: int) -> None:
        """Count ``n`` tokens of one kind: input, output, cache_read, or cache_creation."""
        if kind not in TOKEN_KINDS:
            raise ValueError(f"unknown token kind {kind!r}; expected one of {sorted(TOKEN_KINDS)}")
        if n > 0:
            self._labelled(self._tokens, route, self._model(model), kind).inc(n)

    def add_usage(self, route: str, model: str, counts: Counts) -> None:
        """A request's tokens, each kind it used."""
        for field, kind in COUNTED_KINDS.items():
            self.add_tokens(route, model, kind, getattr(counts, field))

    def add_key_usage(self, key: str, counts: Counts) -> None:
        """One admitted request of a key (a configured key's name, or "-"), with what it used."""
        self._labelled(self._key_requests, key).inc()
        for field, kind in COUNTED_KINDS.items():
            n = getattr(counts, field)
            if n > 0:
                self._labelled(self._key_tokens, key, kind).inc(n)
        if counts.cost_usd > 0:
            self._labelled(self._key_cost, key).inc(counts.cost_usd)

    def set_upstream_health(self, upstream: str, healthy: bool) -> None:
        self.upstream_healthy.labels(upstream).set(1 if healthy else 0)

    def rate_limited(self, key_name: str, limit: str) -> None:
        """One refusal; ``limit`` is requests, tokens, or concurrency (``RateLimitExceeded.limit``), or budget."""
        if limit not in LIMITS:
            raise ValueError(f"unknown limit {limit!r}; expected one of {sorted(LIMITS)}")
        self._rate_limited.labels(key_name, limit).inc()

    def redis_state(self, up: bool) -> None:
        """Redis answered (``translator_redis_up`` 1), or an outage began (0, and counted)."""
        redis = self._redis_metrics()
        redis.up.set(1 if up else 0)
        if not up:
            redis.outages.inc()

    def redis_error(self, component: str) -> None:
        """One Redis call that failed or was skipped: ratelimit, sticky, responses, upstream_health, ping."""
        self._redis_metrics().errors.labels(component).inc()

    def _redis_metrics(self) -> _RedisMetrics:
        # (a label-less gauge is exposed from the moment it exists: translator_redis_up 0 on a proxy with no Redis
        # would read as an outage)
        if self._redis is None:
            self._redis = _RedisMetrics(self.registry)
        return self._redis

    def upstream_attempt(self, upstream: str, outcome: str) -> None:
        self._labelled(self._attempts, upstream, outcome).inc()

    def forget_upstream(self, upstream: str) -> None:
        """An upstream a reload removed: its health series goes (a gauge would otherwise keep its last value).
        With several workers prometheus_client cannot remove a series (its value lives in each worker's file):
        it is set to 1 instead, so that a last 0 does not alert on an upstream no longer used, and stays until
        a restart."""
        if os.environ.get(MULTIPROC_DIR):
            self.upstream_healthy.labels(upstream).set(1)
            return
        with contextlib.suppress(KeyError):
            self.upstream_healthy.remove(upstream)

    def config_reload(self, result: str) -> None:
        """One reload: ``applied``, or ``refused`` (the config did not validate; the old one stays)."""
        if result not in RELOAD_RESULTS:
            raise ValueError(f"unknown reload result {result!r}; expected one of {sorted(RELOAD_RESULTS)}")
        self._reloads.labels(result).inc()

    def _labelled(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered, for the series every request writes: prometheus_client checks
        the values and takes a lock on each ``labels`` call, a tenth of a request's own instructions. Bounded as
        the series are (the model label is capped, the key label is the config's)."""
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[(metric, values)] = metric.labels(*values)
        return child

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type, for a ``GET /metrics`` handler: this registry's,
        or with several workers every worker's, read from their files."""
        path = os.environ.get(MULTIPROC_DIR)
        if not path:
            return generate_latest(self.registry), CONTENT_TYPE
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path)  # type: ignore[no-untyped-call]
        return generate_latest(everyone), CONTENT_TYPE
