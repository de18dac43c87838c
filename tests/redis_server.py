"""A real, throwaway ``redis-server`` for tests.

Fixtures (registered under these names; import the module-level objects into a conftest or test module):

- ``redis_server`` (session): starts ``redis-server --port <free> --save '' --appendonly no`` in a temp dir,
  waits for PING, yields its URL, and terminates it at the end of the session.
- ``redis_url`` (function): the same URL, with the database flushed first so every test starts empty.

Without ``redis-server`` on PATH the Redis tests are skipped locally but FAIL when ``CI=true``: CI must run them.

    from tests.redis_server import redis_server_fixture, redis_url_fixture  # noqa: F401
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
            except redis.exceptions.ConnectionError:
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


def _start(binary: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    logfile = workdir / "redis.log"
    for _ in range(ATTEMPTS):
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(workdir), "--logfile", str(logfile)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=workdir)
        url = f"redis://127.0.0.1:{port}/0"
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
