"""The benchmark's processes: free ports on 127.0.0.1, spawning pinned to a CPU, readiness, and killing
every one of them on the way out (normal exit, an error, Ctrl-C or SIGTERM alike).

Each child is its own process group and gets ``PR_SET_PDEATHSIG`` (SIGTERM), so even a benchmark
killed with SIGKILL takes its children with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux; a no-op elsewhere)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def pin_self(cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


def cpus() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ROOT = Path(__file__).resolve().parent.parent


def _launch(argv: list[str], cpu: int | None) -> list[str]:
    pin = ["--cpu", str(cpu)] if cpu is not None else []
    return [sys.executable, "-m", "bench.launch", *pin, "--", *argv]


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError:
            return ""


class Fleet:
    """``with Fleet() as fleet: fleet.spawn(...)``: every spawned child is gone when the block ends."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))  # children's logs, generated config
        self._old_term: object = None

    def __enter__(self) -> Fleet:
        self._old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        signal.signal(signal.SIGTERM, self._old_term)  # type: ignore[arg-type]
        shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(self, name: str, argv: list[str], *, cpu: int | None, env: dict[str, str] | None = None,
              port: int | None = None) -> Child:
        port = port or free_port()
        log = self.workdir / f"{name}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen(
                _launch([part.replace("{port}", str(port)) for part in argv], cpu),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env=env, cwd=ROOT, start_new_session=True,
            )
        child = Child(name, proc, port, log)
        self.children.append(child)
        return child

    def stop(self, *children: Child) -> None:
        for child in children:
            _signal(child, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for child in children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal(child, signal.SIGKILL)
                child.proc.wait()
            if child in self.children:
                self.children.remove(child)

    def close(self) -> None:
        self.stop(*self.children)


def _signal(child: Child, sig: int) -> None:
    if child.proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.proc.pid, sig)  # the child's own process group: it and anything it started


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never an http_proxy from the env


def wait_ready(child: Child, path: str = "/healthz", timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}:\n{child.log_tail()}")
        try:
            with _DIRECT.open(child.url + path, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} not ready after {timeout:.0f}s:\n{child.log_tail()}")


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def translator_command(*args: str, python: str = sys.executable) -> list[str]:
    """``translator serve ...``: the console script beside ``python``, else ``python -m translator``."""
    script = Path(python).parent / "translator"
    if script.exists():
        return [str(script), *args]
    return [python, "-m", "translator", *args]
