"""What a reload replaces, in one piece: the settings and the objects made from them.

A ``Runtime`` holds the settings, the client key ring, the model resolver, the price table and the upstream
pool (with its connections, and its cool-downs shared through Redis when configured). The app holds the
current one in a ``RuntimeHolder``; a request takes it once, at admission (``state.runtime(request)``), and
keeps it to its end. A reload builds a whole new runtime, opens its
upstream connections, then swaps it in, in one step: a request sees the old settings or the new ones, never
a mix, and requests in flight finish on the old ones. The old runtime's connections are closed once the
requests in flight at the swap have ended (or after a grace period). Each runtime has its own ``/v1/models``
cache, and reports upstream health through its own ``HealthGauge``, which a replaced runtime's pool can no
longer use to overwrite the current one's upstreams. A reload is refused, as a start would be, when the
config cannot run here (``open_access_refusal``, ``workers_refusal``).

What lives as long as the process and is not reloaded: the ``[server]``, ``[redis]``, ``[responses]``,
``[images]`` and ``[caching]`` sections and ``demo`` (the listener, the rate limiter's and stickiness store's
state, the stored responses, the image client, the memory of prompt prefixes). A reload that changes them
logs that they need a restart and keeps running on the old values. The SIGHUP handler and the config loading
live in ``cli.py``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from translator.config import Settings, open_access_refusal, workers_refusal
from translator.gateway.keys import KeyRing
from translator.gateway.metrics import Metrics
from translator.gateway.prices import PriceTable
from translator.gateway.redis_health import RedisHealth
from translator.gateway.sticky import StickyStore
from translator.gateway.upstream_health import SharedCooldowns, make_shared_cooldowns
from translator.profiles import ModelProfile
from translator.router import UpstreamPool
from translator.upstream import Upstream

# Sections read once at start-up (the listener, the stores' state, the image client): a change needs a restart.
RESTART_ONLY = ("server", "redis", "responses", "images", "caching", "demo")
RETIRE_GRACE = 900.0  # longest wait for the old runtime's requests before its connections are closed anyway


class HealthGauge:
    """Where one runtime's pool reports upstream health (``translator_upstream_healthy``). While its runtime
    is current, every upstream's; once replaced, only those the current runtime does not have (the current
    one's pool speaks for the others; the series of a removed one goes when its last request has ended);
    once retired, nothing, so that a late report does not bring a forgotten series back."""

    __slots__ = ("metrics", "retired", "successor")

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.successor: Callable[[], Runtime] | None = None  # once replaced: the runtime current now
        self.retired = False

    def __call__(self, upstream: str, healthy: bool) -> None:
        if self.retired:
            return
        if self.successor is not None and upstream in self.successor().upstream_names:
            return
        self.metrics.set_upstream_health(upstream, healthy)


@dataclass(frozen=True, slots=True, eq=False)
class Runtime:
    """The settings in effect and what is made from them, for every request admitted while it is current."""

    settings: Settings
    keyring: KeyRing
    resolve: Callable[[str], tuple[str, ModelProfile]]
    prices: PriceTable
    pool: UpstreamPool
    shared: SharedCooldowns | None  # the pool's cool-downs shared through Redis (with [redis] url)
    health: HealthGauge
    # The upstreams' model list (/v1/models), cached for models.list_cache_seconds: this runtime's upstreams'
    # only, so a listing in flight across a reload cannot leave the old list in the new runtime's cache.
    models_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def upstream_names(self) -> frozenset[str]:
        return frozenset(u.name for u in self.pool.upstreams)


async def open_runtime(
    settings: Settings, *, sticky: StickyStore, metrics: Metrics, demo_url: str | None = None,
    health: RedisHealth | None = None,
) -> Runtime:
    """A runtime with its upstream connections open; ``demo_url``: the in-process demo upstream's address;
    ``health``: the process's view of Redis (with ``[redis] url``)."""
    keyring = KeyRing(settings.keys)
    resolve = functools.lru_cache(maxsize=4096)(settings.resolve_model)
    upstreams = [
        Upstream(s, demo_url) if demo_url else Upstream(s, s.base_url, proxy=s.proxy or None)
        for s in settings.upstream_list
    ]
    try:
        for upstream in upstreams:
            await upstream.start()  # (reads the TLS files: a reload may find one gone)
    except BaseException:
        for upstream in upstreams:
            await upstream.close()
        raise
    shared = make_shared_cooldowns(settings.redis, [u.name for u in upstreams], health)
    gauge = HealthGauge(metrics)
    pool = UpstreamPool(
        upstreams, settings.routing, sticky, on_health=gauge, on_attempt=metrics.upstream_attempt, shared=shared,
    )
    for upstream in upstreams:
        gauge(upstream.name, True)
    return Runtime(settings, keyring, resolve, PriceTable(settings.prices), pool, shared, gauge)


async def close_runtime(runtime: Runtime) -> None:
    for upstream in runtime.pool.upstreams:
        await upstream.close()
    if runtime.shared is not None:
        await runtime.shared.close()


class RuntimeHolder:
    """The current runtime, replaced whole by ``reload``; the runtimes it replaced until they are closed."""

    def __init__(
        self, runtime: Runtime, *, sticky: StickyStore, metrics: Metrics, demo_url: str | None,
        health: RedisHealth | None = None,
    ) -> None:
        self.current = runtime
        self.health = health
        self.sticky = sticky
        self.metrics = metrics
        self.demo_url = demo_url
        self.lock = asyncio.Lock()  # one reload at a time
        self.retiring: set[asyncio.Task[None]] = set()

    async def replace(self, settings: Settings, inflight: Iterable[asyncio.Task[Any]]) -> None:
        """Open a runtime for ``settings``, make it current, and close the old one once ``inflight`` (the
        requests that may hold it) have ended."""
        new = await open_runtime(settings, sticky=self.sticky, metrics=self.metrics, demo_url=self.demo_url,
                                 health=self.health)
        old, self.current = self.current, new
        old.health.successor = self._current
        task = asyncio.create_task(self._retire(old, set(inflight)))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    def _current(self) -> Runtime:
        return self.current

    async def _retire(self, old: Runtime, inflight: set[asyncio.Task[Any]]) -> None:
        """Once the requests that may hold ``old`` have ended (or after ``RETIRE_GRACE``): close its connections,
        and drop the health series of its upstreams that the runtime current then does not have (not at the
        swap: its requests still in flight report on them until they end)."""
        try:
            if inflight:
                await asyncio.wait(inflight, timeout=RETIRE_GRACE)
        finally:
            old.health.retired = True
            for name in old.upstream_names - self.current.upstream_names:
                self.metrics.forget_upstream(name)
            await close_runtime(old)

    async def close(self) -> None:
        """At shutdown: the current runtime, and any old one still waiting for its requests."""
        for task in list(self.retiring):
            task.cancel()
        await asyncio.gather(*self.retiring, return_exceptions=True)
        await close_runtime(self.current)


def reloaded_settings(running: Settings, new: Settings, *, workers: int) -> tuple[Settings, list[str]]:
    """The settings a reload applies (the restart-only sections kept as they run), and the names of those
    sections that changed (each needs a restart). A config that cannot run here raises ``ValueError``."""
    changed = [name for name in RESTART_ONLY if getattr(running, name) != getattr(new, name)]
    kept = new.model_copy(update={name: getattr(running, name) for name in RESTART_ONLY})
    refusal = open_access_refusal(kept) or workers_refusal(kept, workers)
    if refusal:
        raise ValueError(refusal)
    return kept, changed
