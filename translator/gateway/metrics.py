"""Prometheus metrics on a registry owned by one app.

A per-app ``CollectorRegistry`` (not prometheus_client's global one) lets tests and several apps in one process
each count on their own, and re-creating an app never hits "Duplicated timeseries".

The ``model`` label comes from clients, so it is capped: after ``max_models`` distinct values, new ones are
counted as "other". Without a cap, a client cycling random model names would grow every series without bound.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

TOKEN_KINDS = frozenset({"input", "output", "cache_read", "cache_creation"})
LIMITS = frozenset({"requests", "tokens", "concurrency"})
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


class _Counter:
    """A labelled counter kept as plain numbers, read by prometheus_client when scraped (as a Counter: the
    same samples, ``_created`` included). Counting is a dict lookup and an addition; prometheus_client's
    own ``inc`` takes a lock and checks the metric each time, several times per request."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.values: dict[tuple[str, ...], float] = {}
        self.created: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        value = self.values.get(key)
        if value is None:
            self.created[key] = time.time()
            value = 0.0
        self.values[key] = value + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in list(self.values.items()):
            family.add_metric(key, value, created=self.created[key])
        return family


class _Histogram:
    """A histogram with one label, kept as plain numbers (see ``_Counter``): per series, a count per bucket
    (the last one +Inf) and the sum."""

    def __init__(self, name: str, documentation: str, label: str, buckets: tuple[float, ...]) -> None:
        self.name, self.documentation, self.label, self.buckets = name, documentation, label, buckets
        self.series: dict[str, list[float]] = {}
        self.created: dict[str, float] = {}

    def observe(self, key: str, value: float) -> None:
        counts = self.series.get(key)
        if counts is None:
            counts = self.series[key] = [0.0] * (len(self.buckets) + 2)  # the buckets, +Inf, the sum
            self.created[key] = time.time()
        counts[bisect.bisect_left(self.buckets, value)] += 1  # the first bucket whose bound is >= value
        counts[-1] += value

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=(self.label,))
        bounds = [*map(floatToGoString, self.buckets), "+Inf"]
        for key, counts in list(self.series.items()):
            cumulative = list(itertools.accumulate(counts[:-1]))
            family.add_metric([key], list(zip(bounds, cumulative, strict=True)), counts[-1])
            family.samples.append(Sample(self.name + "_created", {self.label: key}, self.created[key]))
        return family


class _Collector(Collector):
    def __init__(self, families: list[_Counter | _Histogram]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return [family.collect() for family in self._families]


class Metrics:
    """The proxy's metrics; every name starts with ``translator_``."""

    def __init__(self, registry: CollectorRegistry | None = None, *, max_models: int = 200) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._model = _CappedLabel(max_models)
        self._requests = _Counter(
            "translator_requests_total", "Requests answered", ("route", "model", "upstream", "status")
        )
        self._duration = _Histogram(
            "translator_request_duration_seconds", "Time from request to the end of the answer", "route",
            DURATION_BUCKETS,
        )
        self._ttft = _Histogram(
            "translator_time_to_first_token_seconds", "Time from request to the first streamed token", "route",
            TTFT_BUCKETS,
        )
        self._tokens = _Counter("translator_tokens_total", "Tokens used", ("route", "model", "kind"))
        self._attempts = _Counter(
            "translator_upstream_attempts_total", "Calls made to an upstream, by outcome", ("upstream", "outcome")
        )
        self._rate_limited = _Counter(
            "translator_rate_limited_total", "Requests refused by a key's own limits", ("key", "limit")
        )
        # (registered in this order, the families are exposed in it, as they were as prometheus_client metrics)
        self.registry.register(_Collector([self._requests, self._duration, self._ttft, self._tokens]))
        self.upstream_healthy = Gauge(
            "translator_upstream_healthy", "1 while the upstream is considered healthy, else 0", ["upstream"],
            registry=self.registry,
        )
        self.registry.register(_Collector([self._attempts, self._rate_limited]))

    def observe_request(
        self, route: str, model: str, upstream: str, status: int, latency_s: float, ttft_s: float | None
    ) -> None:
        """One finished request; ``ttft_s`` only when a first token was streamed."""
        self._requests.inc((route, self._model(model), upstream, str(status)))
        self._duration.observe(route, latency_s)
        if ttft_s is not None:  # (its series appears only once a route streamed)
            self._ttft.observe(route, ttft_s)

    def add_tokens(self, route: str, model: str, kind: str, n: int) -> None:
        """Count ``n`` tokens of one kind: input, output, cache_read, or cache_creation."""
        self.add_usage(route, model, {kind: n})

    def add_usage(self, route: str, model: str, counts: Mapping[str, int]) -> None:
        """``add_tokens`` for several kinds at once (a request's usage)."""
        model = self._model(model)
        for kind, n in counts.items():
            if kind not in TOKEN_KINDS:
                raise ValueError(f"unknown token kind {kind!r}; expected one of {sorted(TOKEN_KINDS)}")
            if n > 0:
                self._tokens.inc((route, model, kind), n)

    def set_upstream_health(self, upstream: str, healthy: bool) -> None:
        self.upstream_healthy.labels(upstream).set(1 if healthy else 0)

    def rate_limited(self, key_name: str, limit: str) -> None:
        """One refusal; ``limit`` is requests, tokens, or concurrency (``RateLimitExceeded.limit``)."""
        if limit not in LIMITS:
            raise ValueError(f"unknown limit {limit!r}; expected one of {sorted(LIMITS)}")
        self._rate_limited.inc((key_name, limit))

    def upstream_attempt(self, upstream: str, outcome: str) -> None:
        self._attempts.inc((upstream, outcome))

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type, for a ``GET /metrics`` handler."""
        return generate_latest(self.registry), CONTENT_TYPE
