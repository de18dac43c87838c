"""A real, throwaway ``redis-server`` for tests.

Fixtures (registered under these names; import the module-level objects into a conftest or test module):

- ``redis_server`` (session): starts ``redis-server --port <free> --save '' --appendonly no`` in a temp dir,
  waits for PING, yields its URL, and terminates it at the end of the session.
- ``redis_url`` (function): the same URL, with the database flushed first so every test starts empty.
- ``restartable_redis`` (function): a ``RestartableRedis`` of the test's own, to ``stop()`` and ``start()``
  again on the same port while a proxy uses it (an outage, and its end). It starts empty each time.

Without ``redis-server`` on PATH the Redis tests are skipped locally but FAIL when ``CI=true``: CI must run them.

    from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
    from tests.redis_server import restartable_redis_fixture  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

START_TIMEOUT = 10.0
ATTEMPTS = 3  # a free port can be taken by someone else between our probe and redis binding it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary() -> str:
    """The redis-server path, or skip (fail under CI) when it is not installed."""
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server is not on PATH; install it to run the Redis tests"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: these tests must run)", pytrace=False)
        pytest.skip(message)
    return found


def _wait_for_ping(proc: subprocess.Popen[bytes], url: str, logfile: Path) -> bool:
    """True once the server answers PING; False if it exited (e.g. the port was taken)."""
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):  # (not started; or slow)
                time.sleep(0.02)
    finally:
        client.close()
    _stop(proc)
    pytest.fail(f"redis-server did not answer PING within {START_TIMEOUT}s:\n{logfile.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def _launch(binary: str, workdir: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--logfile", str(workdir / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=workdir)
    return proc, f"redis://127.0.0.1:{port}/0"


def _start(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    logfile = workdir / "redis.log"
    for _ in range(ATTEMPTS):
        proc, url = _launch(binary, workdir, _free_port())
        if _wait_for_ping(proc, url, logfile):
            return proc, url
    log = logfile.read_text()[-2000:] if logfile.exists() else ""
    pytest.fail(f"redis-server would not start after {ATTEMPTS} attempts:\n{log}")


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture() -> Iterator[str]:
    binary = _binary()
    with tempfile.TemporaryDirectory(prefix="translator-redis-") as tmp:
        proc, url = _start(binary, Path(tmp))
        try:
            yield url
        finally:
            _stop(proc)


@pytest.fixture(name="redis_url")
def redis_url_fixture(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server


class RestartableRedis:
    """A redis-server that a test stops and starts again, on the same port, while a proxy uses it."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self._binary, self._workdir = binary, workdir
        self._proc: subprocess.Popen[bytes] | None
        self._proc, self.url = _start(binary, workdir)
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None

    def start(self) -> None:
        """Start again on the same port (a port of our own a moment ago: another process taking it meanwhile
        is as unlikely as in ``_start``)."""
        assert self._proc is None, "already running"
        proc, url = _launch(self._binary, self._workdir, self.port)
        if not _wait_for_ping(proc, url, self._workdir / "redis.log"):
            pytest.fail(f"redis-server did not start again on port {self.port}")
        self._proc = proc


@pytest.fixture(name="restartable_redis")
def restartable_redis_fixture() -> Iterator[RestartableRedis]:
    binary = _binary()
    with tempfile.TemporaryDirectory(prefix="translator-redis-") as tmp:
        server = RestartableRedis(binary, Path(tmp))
        try:
            yield server
        finally:
            server.stop()
