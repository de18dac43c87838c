"""Paced streams for the fake upstream: thousands of streams, each sent one event every ``interval``
seconds, the way a model writes tokens (20 to 100 a second), without a timer per stream.

One ticker wakes ``slots`` times per interval and writes the next event of every stream in the slot it is at;
a new stream joins the next slot round-robin, so the streams' events are spread evenly over the interval
instead of leaving in one burst. A stream whose client has gone is dropped at its next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Paced:
    """One stream: ``write`` takes the next piece; ``remaining`` pieces are left; ``done`` resolves at the end."""

    write: Callable[[bytes], None]
    is_closing: Callable[[], bool]
    remaining: int
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Pacer:
    def __init__(self, piece: bytes, interval: float = 0.05, slots: int = 10) -> None:
        self.piece, self.interval, self.slots = piece, interval, slots
        self._slots: list[set[Paced]] = [set() for _ in range(slots)]
        self._next_slot = 0
        self._task: asyncio.Task[None] | None = None
        self.late_ticks = 0  # ticks that started more than a slot late (this process could not keep up)

    @property
    def open(self) -> int:
        return sum(len(s) for s in self._slots)

    async def stream(self, write: Callable[[bytes], None], is_closing: Callable[[], bool], count: int) -> None:
        """Send ``count`` pieces through ``write``, one per interval; returns after the last."""
        paced = Paced(write, is_closing, count)
        self._slots[self._next_slot].add(paced)
        self._next_slot = (self._next_slot + 1) % self.slots
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._tick())
        await paced.done

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        step = self.interval / self.slots
        start, tick = loop.time(), 0
        while self.open:
            slot = self._slots[tick % self.slots]
            for paced in list(slot):
                self._send(slot, paced)
            tick += 1
            delay = start + tick * step - loop.time()
            if delay < -step:
                self.late_ticks += 1
            await asyncio.sleep(max(0.0, delay))

    def _send(self, slot: set[Paced], paced: Paced) -> None:
        if paced.is_closing():
            paced.remaining = 0
        else:
            paced.write(self.piece)
            paced.remaining -= 1
        if paced.remaining <= 0:
            slot.discard(paced)
            with contextlib.suppress(asyncio.InvalidStateError):
                paced.done.set_result(None)
