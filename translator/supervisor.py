"""The parent of ``translator serve --workers N``: it starts the workers, restarts one that dies, and passes
signals on.

- A worker that dies (a crash, the OOM killer, a ``kill -9``) is logged (one JSON line: its pid, exit code
  or signal) and started again after a back-off: ``first_delay``, doubled for each death in the last
  ``window`` seconds, at most ``max_delay``.
- ``max_deaths`` deaths within ``window`` mean something is wrong that a restart will not fix (a port taken,
  a broken upstream certificate, memory too small): the parent stops the other workers and exits 1, so that
  Docker's or systemd's restart policy, or a person, takes over.
- SIGTERM and SIGINT go to every worker, which drain and exit as a single server does (``cli.serve``); the
  parent then exits 0. SIGHUP calls ``on_reload`` (the CLI re-reads the config for the workers it will
  start later) and goes to every worker, which each reload their config.
- A worker is started with SIGHUP blocked in the parent (the mask outlives fork and exec): the worker is born
  with it blocked, so a reload sent while it starts waits until it handles SIGHUP rather than ending it; and
  the parent passes one that came meanwhile on once the worker is in its list, so the new worker gets it too
  (it was started with the config from before that reload).

Workers are whatever ``spawn()`` starts (``multiprocessing`` processes); what they run lives in ``cli.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from translator.log import log


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay: float = 0.5  # seconds before the first restart
    max_delay: float = 30.0
    max_deaths: int = 5  # deaths within window that make the parent give up (exit 1)
    window: float = 60.0

    def delay(self, recent_deaths: int) -> float:
        """The back-off before a restart, after ``recent_deaths`` deaths within the window (this one included)."""
        return min(self.max_delay, self.first_delay * 2.0 ** max(0, recent_deaths - 1))


GAVE_UP = 1  # the exit status when workers keep dying


class Supervisor:
    def __init__(
        self,
        spawn: Callable[[], BaseProcess],
        count: int,
        policy: RestartPolicy | None = None,
        *,
        on_exit: Callable[[int], None] = lambda pid: None,
        on_reload: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``spawn()`` starts one worker; ``on_exit(pid)`` follows any worker's end (its metrics files)."""
        self._spawn = spawn
        self._count = count
        self._policy = policy or RestartPolicy()
        self._on_exit = on_exit
        self._on_reload = on_reload
        self._clock = clock
        self._workers: list[BaseProcess] = []
        self._restarts: list[float] = []  # when each pending restart is due
        self._deaths: list[float] = []
        self._stopping = False

    def run(self) -> int:
        """Until the workers have stopped: 0 after SIGTERM or SIGINT, ``GAVE_UP`` if they kept dying."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        try:
            for _ in range(self._count):
                self._start()
            return self._supervise()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self) -> int:
        while self._workers or (self._restarts and not self._stopping):
            ended = wait([w.sentinel for w in self._workers], timeout=self._until_restart())
            for worker in [w for w in self._workers if w.sentinel in ended]:
                self._ended(worker)
            if len(self._deaths) >= self._policy.max_deaths:
                log.critical("workers keep dying: stopping", deaths=len(self._deaths), window_s=self._policy.window)
                self._stop()
                return GAVE_UP
            self._restart_due()
        return 0

    def _until_restart(self) -> float | None:
        if not self._restarts or self._stopping:
            return None
        return max(0.0, min(self._restarts) - self._clock())

    def _ended(self, worker: BaseProcess) -> None:
        worker.join()
        self._workers.remove(worker)
        assert worker.pid is not None
        self._on_exit(worker.pid)
        if self._stopping:
            return
        now = self._clock()
        self._deaths = [t for t in self._deaths if t > now - self._policy.window] + [now]
        delay = self._policy.delay(len(self._deaths))
        self._restarts.append(now + delay)
        code = worker.exitcode
        died = {"signal": signal.Signals(-code).name} if code is not None and code < 0 else {"exitcode": code}
        log.error("worker died", pid=worker.pid, **died, deaths_in_window=len(self._deaths), restart_in_s=delay)

    def _restart_due(self) -> None:
        if self._stopping:
            self._restarts.clear()
            return
        now = self._clock()
        due = [t for t in self._restarts if t <= now]
        self._restarts = [t for t in self._restarts if t > now]
        for _ in due:
            log.info("worker started", pid=self._start().pid)

    def _start(self) -> BaseProcess:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            worker = self._spawn()
            self._workers.append(worker)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})  # (one that came meanwhile: handled now)
        if self._stopping:  # (a SIGTERM that came while it was starting was not sent to it)
            self._send(signal.SIGTERM, [worker])
        return worker

    def _on_signal(self, signum: int, _frame: object) -> None:
        if signum == signal.SIGHUP:
            self._on_reload()
        else:
            self._stopping = True
        self._send(signum)

    def _stop(self) -> None:
        self._stopping = True
        self._send(signal.SIGTERM)
        for worker in self._workers:
            worker.join()
            if worker.pid is not None:
                self._on_exit(worker.pid)
        self._workers.clear()

    def _send(self, signum: int, workers: list[BaseProcess] | None = None) -> None:
        for worker in self._workers if workers is None else workers:
            if worker.pid is not None and worker.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)
