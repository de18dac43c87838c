"""Choosing an upstream for each request, and failing over.

- Candidates are the upstreams whose ``models`` patterns match the model, spread by ``weight``.
- A conversation (a session key) sticks to the upstream that last served it while that one is healthy,
  so the upstream's prompt cache keeps hitting.
- Before any byte has gone to the client, connect errors, timeouts, 429, 5xx and 529 (and an ``error``
  event ahead of a stream's first content) move the request to the next candidate, honouring
  ``Retry-After``, within ``routing.max_attempts`` and ``routing.max_retry_seconds``.
- An upstream that fails ``failures_before_cooldown`` times in a row (or says Retry-After) is taken out for
  a cool-down; after it, the next request probes it (alone: concurrent requests keep away until the probe
  answers), and one success puts it back.
- With Redis configured, cool-downs are shared (``gateway.upstream_health``): each one this process starts is
  published, each one another process published is adopted, and a success ends it for all. Failure counts
  and probes stay per process, as does everything while Redis is down.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from translator.config import RoutingSettings
from translator.errors import (
    NotFound,
    TranslatorError,
    UpstreamStatusError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from translator.gateway.sticky import StickyStore
from translator.gateway.upstream_health import SharedCooldowns
from translator.upstream import Upstream, UpstreamResponse

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
BACKOFF = 0.25  # seconds before retrying the same upstream, doubled each time


PROBE_CLAIM = 10.0  # seconds the one request probing an upstream back from a cool-down has it to itself


@dataclass
class _Health:
    failures: int = 0
    out_until: float = 0.0  # cooling down until then; past it (and not 0), back on probation
    probe_until: float = 0.0  # a request is probing it until then: the others still treat it as cooling
    adopted_until: float = 0.0  # the end of a cool-down taken in from another process (shared health)


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    """One request as the pool sends it to each upstream it tries."""

    method: str
    path: str
    body: bytes | None
    client_headers: Mapping[str, str]
    model: str  # the upstream model id: which upstreams serve it
    stream: bool = False  # read a stream up to its first content event before it counts as a success
    session: str | None = None  # names the conversation, for stickiness
    version: str | None = None  # the client's anthropic-version, if it sent one
    forward_key: bool = True  # may the client's own key go upstream (not when it is one of ours)


@dataclass(frozen=True, slots=True)
class Attempted:
    """The outcome handed to a route: the open response and how it was reached."""

    upstream: Upstream
    response: UpstreamResponse


def retryable(err: TranslatorError) -> bool:
    if isinstance(err, (UpstreamUnavailable, UpstreamTimeout)):
        return True
    return isinstance(err, UpstreamStatusError) and (err.status in RETRY_STATUSES or err.status >= 500)


def retry_after_seconds(err: TranslatorError) -> float | None:
    value = getattr(err, "retry_after", None)
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from APIs; fall back to our own backoff


class UpstreamPool:
    def __init__(
        self,
        upstreams: list[Upstream],
        settings: RoutingSettings,
        sticky: StickyStore | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        on_health: Callable[[str, bool], None] | None = None,
        on_attempt: Callable[[str, str], None] | None = None,
        shared: SharedCooldowns | None = None,
    ) -> None:
        self.upstreams = upstreams
        self.settings = settings
        self.sticky = sticky
        self._clock = clock
        self._rng = rng or random.Random()
        self._health = {u.name: _Health() for u in upstreams}
        self._serving: dict[str, list[Upstream]] = {}
        self._on_health = on_health or (lambda name, ok: None)
        self._on_attempt = on_attempt or (lambda name, outcome: None)
        self._shared = shared

    # --- health ---

    def healthy(self, upstream: Upstream) -> bool:
        health, now = self._health[upstream.name], self._clock()
        if not health.out_until:
            return True
        return health.out_until <= now and health.probe_until <= now  # back, and nobody probing it yet

    def succeeded(self, upstream: Upstream) -> bool:
        """Whether this ended a cool-down (the upstream is back)."""
        health = self._health[upstream.name]
        back = bool(health.out_until)
        if health.failures or health.out_until:
            self._on_health(upstream.name, True)
        health.failures, health.out_until, health.probe_until, health.adopted_until = 0, 0.0, 0.0, 0.0
        return back

    def failed(self, upstream: Upstream, err: TranslatorError) -> None:
        health = self._health[upstream.name]
        health.failures += 1
        now = self._clock()
        pause = retry_after_seconds(err)
        if health.failures >= self.settings.failures_before_cooldown:
            pause = max(pause or 0.0, self.settings.cooldown_seconds)
        if pause:
            health.out_until = max(health.out_until, now + pause)
            health.probe_until = 0.0  # after this cool-down, the next request may probe it again
            self._on_health(upstream.name, False)

    # --- health shared with other processes (when Redis is configured) ---

    async def sync_health(self) -> None:
        """Take in the cool-downs other processes published (where they end later than our own), and end those
        taken in that were cleared since (the upstream answered someone). One this process started stands until
        it ends or succeeds here, even while Redis does not (yet) have it."""
        if self._shared is None:
            return
        remaining = await self._shared.remaining()
        now = self._clock()
        for upstream in self.upstreams:
            health = self._health[upstream.name]
            left = remaining.get(upstream.name)
            if left is not None:
                self._adopt(upstream.name, health, now + left, now)
            elif health.adopted_until > now and health.out_until == health.adopted_until:
                self.succeeded(upstream)

    def _adopt(self, name: str, health: _Health, until: float, now: float) -> None:
        if health.out_until >= until:
            return
        if health.out_until <= now:  # it was in service here (or on probation): out now
            self._on_health(name, False)
        health.out_until = health.adopted_until = until
        health.probe_until = 0.0

    async def _share_cooldown(self, upstream: Upstream) -> None:
        left = self._health[upstream.name].out_until - self._clock()
        if self._shared is not None and left > 0:
            await self._shared.publish(upstream.name, left)

    # --- choice ---

    def plan(self, model: str, preferred: str | None = None) -> list[Upstream]:
        """The order to try upstreams in: the sticky one if healthy, then healthy ones by weighted
        random order, then those cooling down (soonest back first), as a last resort."""
        serving = self._serving.get(model)
        if serving is None:
            serving = [u for u in self.upstreams if u.serves(model)]
            if len(self._serving) < 4096:  # model names come from clients: keep the cache bounded
                self._serving[model] = serving
        if not serving:
            raise NotFound(f"no upstream serves model {model!r}", param="model", code="model_not_found")
        if len(serving) == 1:  # the usual set-up: one candidate, healthy or cooling down, nothing to order
            return serving[:]
        up = [self.healthy(u) for u in serving]  # once each: two clock reads could put one in neither list
        healthy = [u for u, ok in zip(serving, up, strict=True) if ok]
        cooling = sorted((u for u, ok in zip(serving, up, strict=True) if not ok),
                         key=lambda u: self._health[u.name].out_until)
        ordered = self._weighted_order(healthy)
        sticky = next((u for u in ordered if u.name == preferred), None)
        if sticky is not None:
            ordered.remove(sticky)
            ordered.insert(0, sticky)
        self._claim_probes(ordered)
        return ordered + cooling

    def _claim_probes(self, ordered: list[Upstream]) -> None:
        """An upstream just back from a cool-down is probed by one request, not by every request in flight
        at that moment: this plan claims those it will try before its first fully healthy upstream, and
        the others treat them as cooling until the probe has answered (or PROBE_CLAIM has passed)."""
        now = self._clock()
        for upstream in ordered:
            health = self._health[upstream.name]
            if not health.out_until:
                break
            health.probe_until = now + PROBE_CLAIM

    def _weighted_order(self, upstreams: list[Upstream]) -> list[Upstream]:
        # Efraimidis-Spirakis: sort by u^(1/w), a weighted shuffle in one pass.
        keyed = [(self._rng.random() ** (1.0 / u.settings.weight), i) for i, u in enumerate(upstreams)]
        return [upstreams[i] for _, i in sorted(keyed, reverse=True)]

    # --- sending ---

    @asynccontextmanager
    async def forward(
        self, call: UpstreamCall, on_attempt: Callable[[str, int], None] | None = None
    ) -> AsyncIterator[Attempted]:
        """``async with pool.forward(call) as done:`` the call sent, failing over as the module says;
        ``done.response`` is open inside the block, released after it (closed if it raised).
        ``on_attempt(upstream, n)`` is told of every attempt, so that a request that failed over and ran out
        still says where it went and how often."""
        attempted = await self._send(call, on_attempt or (lambda name, n: None))
        with attempted.response:
            yield attempted

    async def _send(self, call: UpstreamCall, on_attempt: Callable[[str, int], None]) -> Attempted:
        preferred = await self.sticky.get(call.session) if self.sticky is not None and call.session else None
        await self.sync_health()
        plan = self.plan(call.model, preferred)
        deadline = self._clock() + self.settings.max_retry_seconds
        last: TranslatorError | None = None
        failed_here: set[str] = set()  # upstreams this request already failed on: backed off before a retry
        for attempt in range(self.settings.max_attempts):
            upstream = plan[attempt % len(plan)]
            if last is not None and not await self._wait_before(
                upstream, upstream.name in failed_here, last, attempt, deadline
            ):
                break
            on_attempt(upstream.name, attempt + 1)
            try:
                response = await self._attempt(upstream, call)
            except TranslatorError as err:
                self._attempt_failed(upstream, err, forward_key=call.forward_key)  # raises unless retryable
                await self._share_cooldown(upstream)
                last = err
                failed_here.add(upstream.name)
                continue
            self._on_attempt(upstream.name, "ok")
            try:
                if self.succeeded(upstream) and self._shared is not None:
                    await self._shared.clear(upstream.name)
                await self._stick(call.session, upstream)
            except BaseException:
                response.close()
                raise
            return Attempted(upstream, response)
        assert last is not None
        raise last

    async def _attempt(self, upstream: Upstream, call: UpstreamCall) -> UpstreamResponse:
        """One call, read far enough to know it worked: a stream to its first content event, a body whole."""
        headers = upstream.headers(call.client_headers, version=call.version, forward_key=call.forward_key)
        response = await upstream.open(call.method, call.path, headers, call.body)
        try:
            await (response.prime() if call.stream and response.is_stream else response.body())
        except BaseException:
            response.close()  # on any failure, before the error goes on
            raise
        return response

    async def _stick(self, session: str | None, upstream: Upstream) -> None:
        if self.sticky is not None and session and self.settings.sticky_ttl_seconds:
            await self.sticky.set(session, upstream.name, self.settings.sticky_ttl_seconds)

    def _attempt_failed(self, upstream: Upstream, err: TranslatorError, *, forward_key: bool) -> None:
        """Count a failed attempt; raise ``err`` again unless another attempt may follow."""
        if not retryable(err):
            self._on_attempt(upstream.name, "error")
            raise err
        self._on_attempt(upstream.name, "retryable_error")
        if not (forward_key and not upstream.settings.api_key and getattr(err, "status", 0) == 429):
            # (a 429 to a client's own key is that client's limit, not the upstream's health)
            self.failed(upstream, err)

    async def _wait_before(
        self, upstream: Upstream, same: bool, last: TranslatorError, attempt: int, deadline: float
    ) -> bool:
        """Before another attempt: wait out the next upstream's cool-down, or, when this request already failed
        on it, the last Retry-After or an exponential backoff. False if that would pass the retry deadline."""
        now = self._clock()
        wait = max(0.0, self._health[upstream.name].out_until - now)
        if same and wait == 0.0:
            wait = retry_after_seconds(last) or BACKOFF * 2 ** (attempt - 1)
        if now + wait > deadline:
            return False
        if wait:
            await asyncio.sleep(wait)
        return True
