"""What a reload replaces, in one piece: the settings and the objects made from them.

A ``Runtime`` holds the settings, the client key ring, the model resolver, the price table and the upstream
pool (with its connections, and its cool-downs shared through Redis when configured). The app holds the
current one in a ``RuntimeHolder``; a request takes it once, at admission (``state.runtime(request)``), and
keeps it to its end. A reload builds a whole new runtime, opens its
upstream connections, then swaps it in, in one step: a request sees the old settings or the new ones, never
a mix, and requests in flight finish on the old ones. The old runtime's connections are closed once the
requests in flight at the swap have ended (or after a grace period).

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
from dataclasses import dataclass
from typing import Any

from translator.config import Settings, workers_refusal
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


@dataclass(frozen=True, slots=True, eq=False)
class Runtime:
    """The settings in effect and what is made from them, for every request admitted while it is current."""

    settings: Settings
    keyring: KeyRing
    resolve: Callable[[str], tuple[str, ModelProfile]]
    prices: PriceTable
    pool: UpstreamPool
    shared: SharedCooldowns | None  # the pool's cool-downs shared through Redis (with [redis] url)


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
    pool = UpstreamPool(
        upstreams, settings.routing, sticky, on_health=metrics.set_upstream_health,
        on_attempt=metrics.upstream_attempt, shared=shared,
    )
    for upstream in upstreams:
        metrics.set_upstream_health(upstream.name, True)
    return Runtime(settings, keyring, resolve, PriceTable(settings.prices), pool, shared)


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
        for name in {u.name for u in old.pool.upstreams} - {u.name for u in new.pool.upstreams}:
            self.metrics.forget_upstream(name)
        task = asyncio.create_task(_retire(old, set(inflight)))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    async def close(self) -> None:
        """At shutdown: the current runtime, and any old one still waiting for its requests."""
        for task in list(self.retiring):
            task.cancel()
        await asyncio.gather(*self.retiring, return_exceptions=True)
        await close_runtime(self.current)


async def _retire(old: Runtime, inflight: set[asyncio.Task[Any]]) -> None:
    try:
        if inflight:
            await asyncio.wait(inflight, timeout=RETIRE_GRACE)
    finally:
        await close_runtime(old)


def reloaded_settings(running: Settings, new: Settings, *, workers: int) -> tuple[Settings, list[str]]:
    """The settings a reload applies (the restart-only sections kept as they run), and the names of those
    sections that changed (each needs a restart). A config that cannot run here raises ``ValueError``."""
    changed = [name for name in RESTART_ONLY if getattr(running, name) != getattr(new, name)]
    kept = new.model_copy(update={name: getattr(running, name) for name in RESTART_ONLY})
    refusal = workers_refusal(kept, workers)
    if refusal:
        raise ValueError(refusal)
    return kept, changed
