"""A fixed-resolution latency histogram: millions of samples (the gaps between the events of thousands of
streams, the latencies of a fixed-rate run) in constant memory, merged across runs, read as percentiles.

Buckets are 10 us wide up to 2 s, then 1 ms wide up to 120 s; a sample past that lands in the last bucket
(and counts in ``overflow``). A percentile is the upper edge of the bucket holding its nearest rank, so it
is at most 10 us (past 2 s, 1 ms) above the exact value: the figures it feeds are differences of
milliseconds.
"""

from __future__ import annotations

import math
from array import array

RESOLUTION_S = 10e-6
SPAN_S = 2.0
COARSE_S = 1e-3
LIMIT_S = 120.0
_FINE = int(SPAN_S / RESOLUTION_S)
_BUCKETS = _FINE + int((LIMIT_S - SPAN_S) / COARSE_S)


def _index(seconds: float) -> int:
    if seconds < SPAN_S:
        return max(0, int(seconds / RESOLUTION_S))
    return min(_BUCKETS, _FINE + int((seconds - SPAN_S) / COARSE_S))


def _upper_edge_s(index: int) -> float:
    if index < _FINE:
        return (index + 1) * RESOLUTION_S
    return SPAN_S + (index - _FINE + 1) * COARSE_S


class Histogram:
    def __init__(self) -> None:
        self.counts = array("q", bytes(8 * (_BUCKETS + 1)))
        self.count = 0
        self.overflow = 0
        self.total_s = 0.0

    def add(self, seconds: float) -> None:
        index = _index(seconds)
        if index >= _BUCKETS:
            self.overflow += 1
        self.counts[index] += 1
        self.count += 1
        self.total_s += seconds

    def merge(self, other: Histogram) -> None:
        for i, n in enumerate(other.counts):
            if n:
                self.counts[i] += n
        self.count += other.count
        self.overflow += other.overflow
        self.total_s += other.total_s

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile (q in 0..100), in milliseconds; NaN when empty."""
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q / 100 * self.count))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return _upper_edge_s(i) * 1e3
        return math.nan  # not reached: the counts add up to ``count``

    def mean_ms(self) -> float:
        return self.total_s / self.count * 1e3 if self.count else math.nan

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "mean_ms": self.mean_ms(), "p50_ms": self.percentile_ms(50),
                "p99_ms": self.percentile_ms(99), "p999_ms": self.percentile_ms(99.9),
                "max_ms": self.percentile_ms(100), "overflow": self.overflow}


def added(proxy: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """Per percentile, what the proxy adds over the direct call: proxy minus direct (ms)."""
    return {key.replace("_ms", "_added_ms"): proxy[key] - direct[key]
            for key in ("p50_ms", "p99_ms", "p999_ms") if key in proxy and key in direct}
