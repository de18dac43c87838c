"""The image's steps without Docker: build the wheel from the files the Dockerfile copies, install it with
the locked dependencies into a fresh virtualenv, run ``translator serve --demo`` as the image's non-root
user on a port that is not the default, and run the image's HEALTHCHECK command against it.

It builds and installs from the package index (about a minute): ``pytest -m 'not package'`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.deployfiles import ROOT, dockerfile_instructions, healthcheck_command, image_user

pytestmark = pytest.mark.package

def _as_image_user() -> list[str]:
    """The command prefix that runs a program as the image's user (nothing when we are not root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): cannot drop to the image's user")
    uid, gid = image_user()
    return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the image's user can read and run from (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="translator-package-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _interpreter() -> str:
    """A Python 3.11 that the image's user runs as we do. (An interpreter under a home only root may enter
    can start for another user with a different standard library; the fresh environment is built on one
    that both see alike.)"""
    probe = ["-c", "import sys; print(sys.version, sys.prefix)"]
    candidates = [getattr(sys, "_base_executable", sys.executable), shutil.which("python3.11"), "/usr/bin/python3.11"]
    for candidate in dict.fromkeys(c for c in candidates if c and Path(c).exists()):
        ours = subprocess.run([candidate, *probe], capture_output=True, text=True, check=False)
        theirs = subprocess.run([*_as_image_user(), candidate, *probe], capture_output=True, text=True, check=False)
        if ours.returncode == 0 and ours.stdout.startswith("3.11.") and ours.stdout == theirs.stdout:
            return candidate
    pytest.skip("no Python 3.11 that the image's user can run as we do")


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", *args], check=True)


def _installed(workdir: Path) -> Path:
    """The image's two stages: a wheel built from what the build stage copies, then the lock and the wheel
    installed into a fresh environment. Returns that environment's python."""
    source = workdir / "src"
    source.mkdir()
    copied = [rest.split()[:-1] for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    for name in [name for names in copied if not names[0].startswith("--from") for name in names]:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, source / name)
    _pip(Path(sys.executable), "wheel", "--no-deps", "--wheel-dir", str(workdir / "wheels"), str(source))
    (wheel,) = (workdir / "wheels").glob("translator-*.whl")

    subprocess.run([_interpreter(), "-m", "venv", str(workdir / "venv")], check=True)
    python = workdir / "venv" / "bin" / "python"
    _pip(python, "install", "--require-hashes", "--requirement", str(source / "requirements.lock"))
    _pip(python, "install", "--no-deps", str(wheel))
    _pip(python, "check")  # every dependency of the wheel came from the lock
    return python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    assert port != 8080
    return port


def _wait_until_listening(port: int, server: subprocess.Popen[bytes]) -> None:
    """Bounded: up to 300 tries a tenth of a second apart, or until the server exits."""
    for _ in range(300):
        if server.poll() is not None:
            assert server.stderr is not None
            pytest.fail(f"the server exited with {server.returncode}: {server.stderr.read().decode()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listened on port {port}")


def _healthcheck(python: Path, port: int) -> int:
    program, *args = healthcheck_command()
    assert program == "python"  # the image's interpreter: here, the fresh environment's
    env = {"PATH": f"{python.parent}:{os.environ['PATH']}", "TRANSLATOR_PORT": str(port)}
    return subprocess.run([*_as_image_user(), str(python), *args], env=env, stderr=subprocess.DEVNULL,
                          check=False).returncode


def _uid_gid(pid: int) -> tuple[int, int]:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    fields = {line.split(":")[0]: line.split()[1:] for line in status}
    return int(fields["Uid"][1]), int(fields["Gid"][1])  # the effective ids


def test_the_installed_wheel_serves_as_the_image_user_and_passes_the_healthcheck(workdir: Path) -> None:
    prefix = _as_image_user()
    python = _installed(workdir)
    port = _free_port()
    # The image's environment, but on loopback: with no client keys the proxy binds nothing wider.
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(workdir), "TRANSLATOR_HOST": "127.0.0.1",
           "TRANSLATOR_PORT": str(port), "PYTHONDONTWRITEBYTECODE": "1"}
    server = subprocess.Popen([*prefix, str(python.parent / "translator"), "serve", "--demo"], env=env,
                              cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_listening(port, server)
        if prefix:
            assert _uid_gid(server.pid) == image_user() == (10001, 10001)

        assert _healthcheck(python, port) == 0
        assert _healthcheck(python, _free_port()) != 0  # nothing listens there

        body = {"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello"}]}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            reply = json.load(answer)
        assert reply["choices"][0]["message"]["content"] == "Demo reply (offline upstream): you said: Hello"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr.decode()
    assert f"translator listening on http://127.0.0.1:{port}" in stderr.decode()
