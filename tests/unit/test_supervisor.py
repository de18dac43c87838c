"""The parent of ``--workers N`` (``translator.supervisor``) with real child processes that die, or stop."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import orjson
import pytest

from translator.supervisor import GAVE_UP, RestartPolicy, Supervisor

FORK = multiprocessing.get_context("fork")  # (these targets are tiny: no interpreter start-up per worker)
FAST = RestartPolicy(first_delay=0.01, max_delay=0.04, max_deaths=4, window=600)


def _crash() -> None:
    os._exit(3)


def _stop_the_parent_then_wait_for_sigterm() -> None:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    os.kill(os.getppid(), signal.SIGTERM)
    while True:
        time.sleep(1)


def _spawner(target: Callable[[], None], started: list[int]) -> Callable[[], BaseProcess]:
    def spawn() -> BaseProcess:
        worker = FORK.Process(target=target)
        worker.start()
        assert worker.pid is not None
        started.append(worker.pid)
        return worker

    return spawn


def _lines(log: str, event: str) -> list[dict[str, object]]:
    return [line for line in map(orjson.loads, log.splitlines()) if line["event"] == event]


def test_the_back_off_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay=0.5, max_delay=30.0)
    assert [policy.delay(n) for n in range(1, 9)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_dead_workers_are_restarted_with_back_off_until_they_keep_dying(server_log: Callable[[], str]) -> None:
    started: list[int] = []
    ended: list[int] = []
    supervisor = Supervisor(_spawner(_crash, started), 2, FAST, on_exit=ended.append)

    assert supervisor.run() == GAVE_UP

    deaths = _lines(server_log(), "worker died")
    assert [(d["level"], d["exitcode"], d["deaths_in_window"]) for d in deaths] == [
        ("error", 3, 1), ("error", 3, 2), ("error", 3, 3), ("error", 3, 4)
    ]
    assert [d["restart_in_s"] for d in deaths] == [0.01, 0.02, 0.04, 0.04]  # doubled, capped
    pids = [d["pid"] for d in deaths]  # (two workers die at once: in either order)
    assert len(set(pids)) == 4 and set(pids) <= set(started)
    assert len(_lines(server_log(), "worker started")) == len(started) - 2  # the restarts
    assert sorted(ended) == sorted(started)  # every worker's end was reported (its metrics files)
    assert [x["level"] for x in _lines(server_log(), "workers keep dying: stopping")] == ["critical"]


def test_a_worker_killed_by_a_signal_is_logged_with_the_signal(server_log: Callable[[], str]) -> None:
    started: list[int] = []

    def spawn() -> BaseProcess:
        if len(started) < 1:  # the first worker is killed; the one started in its place stops the server
            worker = _spawner(lambda: time.sleep(60), started)()
            os.kill(started[-1], signal.SIGKILL)
            return worker
        return _spawner(_stop_the_parent_then_wait_for_sigterm, started)()

    assert Supervisor(spawn, 1, FAST).run() == 0

    deaths = _lines(server_log(), "worker died")
    assert [(d["pid"], d["signal"]) for d in deaths] == [(started[0], "SIGKILL")]
    assert len(started) == 2


def test_sigterm_stops_every_worker_and_exits_0_without_restarts(server_log: Callable[[], str]) -> None:
    started: list[int] = []
    supervisor = Supervisor(_spawner(_stop_the_parent_then_wait_for_sigterm, started), 3, FAST)

    assert supervisor.run() == 0

    assert len(started) == 3
    assert _lines(server_log(), "worker died") == []
    assert signal.getsignal(signal.SIGTERM) is not supervisor._on_signal  # the parent's handlers put back


def _wait_for_sighup_then_stop_the_parent() -> None:
    """Exit 0 if a SIGHUP comes (it is blocked from birth: it waits, pending), 9 if none comes in 10 s."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (the parent passes its SIGTERM on: the exit code is ours)
    got = signal.sigtimedwait({signal.SIGHUP}, 10)
    os.kill(os.getppid(), signal.SIGTERM)
    os._exit(0 if got is not None else 9)


def test_a_sighup_that_comes_while_a_worker_starts_reaches_that_worker() -> None:
    """The worker is running but not yet in the parent's list when the reload comes: the parent passes it on
    once it is, and the worker, born with SIGHUP blocked, gets it whenever it is ready."""
    workers: list[BaseProcess] = []
    reloads: list[int] = []

    def spawn() -> BaseProcess:
        worker = FORK.Process(target=_wait_for_sighup_then_stop_the_parent)
        worker.start()
        workers.append(worker)
        os.kill(os.getpid(), signal.SIGHUP)  # (`translator reload` now)
        return worker

    assert Supervisor(spawn, 1, FAST, on_reload=lambda: reloads.append(1)).run() == 0

    assert [w.exitcode for w in workers] == [0]
    assert reloads == [1]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set()  # the parent's mask put back


@pytest.fixture(autouse=True)
def _no_stray_children() -> object:
    yield
    assert multiprocessing.active_children() == []
