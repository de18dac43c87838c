"""CPU time and memory of a process, read from /proc (Linux only).

CPU: ``utime + stime`` from ``/proc/<pid>/stat`` (clock ticks, 10 ms steps), and the same on-CPU time in
nanoseconds summed over the process's threads from ``/proc/<pid>/task/*/schedstat`` where the kernel has
schedstats; the benchmark uses the precise one when it is there. Schedstat's second field, the time a
thread was runnable but waited for a CPU, tells when other work on the machine held a server back.
Memory: ``VmRSS`` and ``VmHWM`` (peak RSS) from ``/proc/<pid>/status``; ``reset_peak`` restarts VmHWM at the
current RSS (``clear_refs`` 5), so the peak of one run can be read on its own.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Snapshot:
    cpu_ticks_s: float  # utime + stime, seconds (tick resolution)
    cpu_ns: int | None  # sum of the threads' schedstat run time, nanoseconds (None: not available)
    rss_kb: int
    hwm_kb: int
    wait_ns: int | None = None  # sum of the threads' time runnable but waiting for a CPU (schedstat)

    @property
    def cpu_s(self) -> float:
        """The most precise CPU time we have, in seconds."""
        return self.cpu_ns / 1e9 if self.cpu_ns is not None else self.cpu_ticks_s


def snapshot(pid: int) -> Snapshot:
    rss, hwm = memory_kb(pid)
    sched = schedstat_ns(pid)
    return Snapshot(cpu_ticks_s=stat_cpu_seconds(pid), cpu_ns=sched[0] if sched else None, rss_kb=rss, hwm_kb=hwm,
                    wait_ns=sched[1] if sched else None)


def stat_cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of the whole line
    return (utime + stime) / _TICK


def schedstat_cpu_ns(pid: int) -> int | None:
    sched = schedstat_ns(pid)
    return sched[0] if sched else None


def schedstat_ns(pid: int) -> tuple[int, int] | None:
    """(time on a CPU, time runnable but waiting for one), nanoseconds, summed over the process's threads. The
    wait says how much other work on the machine held the process back."""
    run = wait = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                fields = (task / "schedstat").read_text().split()
            except FileNotFoundError:
                continue  # the thread ended while we looked
            run, wait = run + int(fields[0]), wait + int(fields[1])
    except (FileNotFoundError, PermissionError, ValueError, IndexError):
        return None
    return run, wait


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB."""
    values = {"VmRSS": 0, "VmHWM": 0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in values:
            values[key] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def reset_peak(pid: int) -> bool:
    """Restart the process's peak RSS (VmHWM) at its current RSS. False where the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def own_cpu_s() -> float:
    """This process's CPU time (all threads), in seconds: the load generator's, in the benchmark's process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server with worker processes), from each task's ``children`` list."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue  # it ended while we looked
    return out


def tree_snapshot(pid: int) -> Snapshot:
    """CPU and memory summed over ``pid`` and its descendants (RSS and peak RSS are sums of each process's)."""
    total = Snapshot(0.0, 0, 0, 0)
    for one in tree(pid):
        try:
            s = snapshot(one)
        except (FileNotFoundError, ProcessLookupError):
            continue
        ns = None if s.cpu_ns is None or total.cpu_ns is None else total.cpu_ns + s.cpu_ns
        total = Snapshot(total.cpu_ticks_s + s.cpu_ticks_s, ns, total.rss_kb + s.rss_kb, total.hwm_kb + s.hwm_kb)
    return total
