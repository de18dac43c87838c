"""``translator serve --workers N`` as an operator runs it: one server whatever the number of processes.
Limits are exact across workers (Redis), a scrape of /metrics shows every worker, a killed worker is
replaced, and SIGHUP (or ``translator reload``) reloads every worker's config under load."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import CLIENT_KEYS
from translator.gateway.keys import hash_key

KEY = "sk-tr-workers-test-key-alice"
ADMIN_KEY = "sk-tr-workers-test-key-ops"  # /metrics answers an admin key only
ADMIN = f'[[keys]]\nname = "ops"\nhash = "{hash_key(ADMIN_KEY)}"\nmodels = []\nadmin = true\n'
CLIENT_KEYS.add(KEY)
DEADLINE = 30.0  # seconds to wait for something a process does (never asserted on: only a bound on waiting)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A ``translator serve`` process; its JSON log goes to a file (a pipe could fill up under load)."""

    def __init__(self, tmp: Path, config: str, *args: str) -> None:
        self.port = _free_port()
        self.config = tmp / "config.toml"
        self.pid_file = tmp / "translator.pid"
        self.write(config)
        self.log_path = tmp / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_", "PROMETHEUS_"))}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "translator", "serve", "--config", str(self.config), *args],
                stdout=log, stderr=subprocess.PIPE, env=env,
            )
        self.base = f"http://127.0.0.1:{self.port}"
        _until(self._healthy, "the server did not start")

    def write(self, config: str) -> None:
        self.config.write_text(f'demo = true\n[server]\nport = {self.port}\npid_file = "{self.pid_file}"\n{config}')

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def chat(self, model: str = "fast") -> tuple[int, dict[str, Any]]:
        """A chat completion on a new connection (so the kernel picks a worker for each)."""
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        request = urllib.request.Request(self.base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        request = urllib.request.Request(self.base + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            text = resp.read().decode()
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def workers(self) -> set[int]:
        """The worker processes (not multiprocessing's resource tracker, also a child of the parent)."""
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        except FileNotFoundError:  # (the parent has exited)
            return set()
        return {int(pid) for pid in children if b"spawn_main" in _cmdline(pid)}

    def listening(self) -> int:
        """How many sockets listen on the port: one per worker that serves (Linux's /proc/net/tcp)."""
        port = f":{self.port:04X}"
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        return sum(1 for row in rows if row[1].endswith(port) and row[3] == "0A")  # (0A: LISTEN)

    def serving(self) -> bool:
        """Both workers started and listening (a worker imports the proxy for a second or more first)."""
        return len(self.workers()) == 2 and self.listening() == 2

    def replaced(self, killed: int) -> bool:
        """A new worker stands in for ``killed``: the parent starts one only once it has reaped ``killed``, whose
        listening socket is closed by then (a connection sent to a dying worker's socket is reset)."""
        workers = self.workers()  # (read once: a second read could miss a worker the first one saw)
        return len(workers) == 2 and killed not in workers

    def stop(self) -> list[dict[str, Any]]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=DEADLINE)
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]


def _cmdline(pid: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # (it has just exited)
        return b""


def _answered(server: Server) -> int | None:
    """The chat request's status; None when its connection was reset."""
    try:
        return server.chat()[0]
    except ConnectionResetError:
        return None


def _until(condition: Any, message: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def _sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(value for (n, found), value in metrics.items()
               if n == name and set(labels.items()) <= set(found))


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:  # (a test that failed midway: stop it as an operator would, then for sure)
        if server.proc.poll() is None:
            server.proc.terminate()
            try:
                server.proc.communicate(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.communicate(timeout=DEADLINE)


def test_two_workers_are_one_server_for_limits_and_metrics_and_a_killed_worker_is_replaced(
    tmp_path: Path, redis_url: str, servers: list[Server]
) -> None:
    config = f'[redis]\nurl = "{redis_url}"\n[[keys]]\nname = "alice"\nhash = "{hash_key(KEY)}"\nrpm = 3\n' + ADMIN
    server = Server(tmp_path, config, "--workers", "2")
    servers.append(server)
    _until(server.serving, "two workers did not start")

    statuses = [server.chat()[0] for _ in range(12)]  # 12 connections, spread between the workers

    assert sorted(statuses) == [200] * 3 + [429] * 9  # rpm 3 for the whole server, not per worker
    for _ in range(4):  # whichever worker answers the scrape, it shows the whole server
        metrics = server.metrics()
        assert _sample(metrics, "translator_requests_total", route="openai", status="200") == 3
        assert _sample(metrics, "translator_requests_total", route="openai", status="429") == 9
        assert _sample(metrics, "translator_rate_limited_total", key="alice", limit="requests") == 9
        assert _sample(metrics, "translator_upstream_healthy", upstream="default") == 1

    killed = min(server.workers())
    os.kill(killed, signal.SIGKILL)
    _until(lambda: server.replaced(killed) and server.listening() == 2, "the worker was not replaced")
    # (a connection the kernel had queued for the killed worker's socket is reset: the next one is answered)
    _until(lambda: _answered(server) == 429, "the server stopped answering")  # still limited: the count is shared
    assert _sample(server.metrics(), "translator_requests_total", route="openai", status="200") == 3  # kept

    logged = server.stop()
    assert server.proc.returncode == 0
    deaths = [line for line in logged if line["event"] == "worker died"]
    assert [(d["pid"], d["signal"], d["level"]) for d in deaths] == [(killed, "SIGKILL", "error")]
    assert [line["event"] for line in logged].count("worker started") == 1


def test_sighup_and_translator_reload_reload_every_worker_under_load(tmp_path: Path, servers: list[Server]) -> None:
    keys = f'[[keys]]\nname = "alice"\nhash = "{hash_key(KEY)}"\n' + ADMIN
    server = Server(tmp_path, f'[models.aliases]\nfast = "claude-demo-a"\n{keys}', "--workers", "2")
    servers.append(server)
    answers: list[tuple[int, str, float]] = []  # (status, model, when it was sent)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            status, body = server.chat()
            answers.append((status, body.get("model", ""), sent))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        _until(lambda: len(answers) >= 10, "no answers under load")
        server.write(f'[models.aliases]\nfast = "claude-demo-b"\n{keys}')
        reload = subprocess.run([sys.executable, "-m", "translator", "reload", "--config", str(server.config)],
                                capture_output=True, text=True, timeout=DEADLINE)
        assert reload.returncode == 0, reload.stderr
        assert reload.stderr == (f"translator: asked process {server.proc.pid} to reload; its log says whether "
                                 "the config was applied\n")
        _until(lambda: _sample(server.metrics(), "translator_config_reloads_total", result="applied") == 2,
               "both workers did not reload")
        reloaded = time.monotonic()  # (a request sent before this may have read the old alias)
        _until(lambda: sum(sent > reloaded for *_, sent in answers) >= 10, "no answers after the reload")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert {status for status, *_ in answers} == {200}  # nothing failed while reloading
    assert {model for _, model, _ in answers[:10]} == {"claude-demo-a"}
    assert {model for _, model, sent in answers if sent > reloaded} == {"claude-demo-b"}

    server.config.write_text("[server\n")  # a broken config: `translator reload` says so and sends nothing
    refused = subprocess.run([sys.executable, "-m", "translator", "reload", "--config", str(server.config)],
                             capture_output=True, text=True, timeout=DEADLINE)
    assert refused.returncode == 2
    assert refused.stderr.startswith("translator: not reloading, the config has a mistake: ")
    os.kill(server.proc.pid, signal.SIGHUP)  # sent anyway: each worker refuses it and keeps its config
    _until(lambda: _sample(server.metrics(), "translator_config_reloads_total", result="refused") == 2,
           "the workers did not refuse the broken config")
    status, body = server.chat()
    assert (status, body["model"]) == (200, "claude-demo-b")
    assert server.proc.poll() is None  # SIGHUP no longer kills the server

    logged = server.stop()
    assert server.proc.returncode == 0
    assert [line["event"] for line in logged].count("config reload refused; the running config stays") == 2
    assert not server.pid_file.exists()  # removed at exit


def test_one_process_reloads_on_sighup_and_keeps_serving(tmp_path: Path, servers: list[Server]) -> None:
    keys = f'[[keys]]\nname = "alice"\nhash = "{hash_key(KEY)}"\n' + ADMIN
    server = Server(tmp_path, f'[models.aliases]\nfast = "claude-demo-a"\n{keys}')
    servers.append(server)
    assert server.pid_file.read_text() == f"{server.proc.pid}\n"
    assert server.chat()[1]["model"] == "claude-demo-a"

    server.write(f'[models.aliases]\nfast = "claude-demo-b"\n{keys}')
    os.kill(server.proc.pid, signal.SIGHUP)
    _until(lambda: server.chat()[1]["model"] == "claude-demo-b", "the alias did not change")

    assert server.proc.poll() is None
    server.stop()
    assert server.proc.returncode == 0


def test_a_reload_while_a_worker_is_being_restarted_reaches_it_and_does_not_end_it(
    tmp_path: Path, servers: list[Server]
) -> None:
    """A worker starting (Python importing the proxy) has not installed its SIGHUP handler yet: a reload sent
    then waits for it (the worker is born with SIGHUP blocked) rather than ending it (SIGHUP's default)."""
    keys = f'[[keys]]\nname = "alice"\nhash = "{hash_key(KEY)}"\n' + ADMIN
    server = Server(tmp_path, f'[models.aliases]\nfast = "claude-demo-a"\n{keys}', "--workers", "2")
    servers.append(server)
    _until(server.serving, "two workers did not start")
    killed = min(server.workers())
    os.kill(killed, signal.SIGKILL)
    _until(lambda: server.replaced(killed), "the worker was not replaced")
    server.write(f'[models.aliases]\nfast = "claude-demo-b"\n{keys}')
    os.kill(server.proc.pid, signal.SIGHUP)  # (the new worker is importing: it takes about a second)

    _until(lambda: _sample(server.metrics(), "translator_config_reloads_total", result="applied") == 2,
           "the new worker did not apply the reload once it could")
    assert {server.chat()[1]["model"] for _ in range(8)} == {"claude-demo-b"}
    logged = server.stop()
    assert server.proc.returncode == 0
    deaths = [(line["pid"], line["signal"]) for line in logged if line["event"] == "worker died"]
    assert deaths == [(killed, "SIGKILL")]


def test_workers_stop_when_their_parent_is_killed(tmp_path: Path, servers: list[Server]) -> None:
    server = Server(tmp_path, "", "--workers", "2")
    servers.append(server)
    _until(lambda: len(server.workers()) == 2, "two workers did not start")
    workers = server.workers()

    server.proc.kill()  # kill -9: the parent cannot stop them itself
    server.proc.communicate(timeout=DEADLINE)

    _until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "the workers outlived their parent")
    with pytest.raises(OSError):  # and the port is free again
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_workers_that_keep_dying_make_the_parent_exit_1(tmp_path: Path, servers: list[Server]) -> None:
    """Five deaths within a minute (here: kill -9, as an OOM killer would) and the parent gives up, so that
    Docker's or systemd's restart policy takes over."""
    server = Server(tmp_path, "", "--workers", "2")
    servers.append(server)
    killed: set[int] = set()
    while server.proc.poll() is None and len(killed) < 5:
        _until(lambda: server.proc.poll() is not None or bool(server.workers() - killed), "no worker to kill")
        for pid in server.workers() - killed:
            with contextlib.suppress(ProcessLookupError):  # (the parent may be stopping it already)
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)

    assert server.proc.wait(timeout=DEADLINE) == 1  # on its own, with no SIGTERM from us
    logged = server.stop()
    events = [line["event"] for line in logged]
    assert events.count("worker died") == 5
    assert events[-1] == "workers keep dying: stopping"
    assert not server.pid_file.exists()


def test_a_reload_before_the_parent_handles_sighup_does_not_end_it(tmp_path: Path) -> None:
    """The pid file names the parent before it starts its workers and handles SIGHUP: a `translator reload`
    sent then must not end the server (SIGHUP's default). Here it comes as the workers would be started."""
    pid_file = tmp_path / "translator.pid"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nport = {_free_port()}\npid_file = "{pid_file}"\n')
    script = f"""
import os, signal, sys
from pathlib import Path
from translator import cli

def run_workers(settings, source, count, announce):
    assert Path({str(pid_file)!r}).read_text() == f"{{os.getpid()}}\\n"
    os.kill(os.getpid(), signal.SIGHUP)  # translator reload, reading the pid file
    return 0

cli._run_workers = run_workers
signal.signal(signal.SIGHUP, signal.SIG_DFL)
sys.exit(cli.main(["serve", "--demo", "--config", {str(config)!r}, "--workers", "2"]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_", "PROMETHEUS_"))}
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=DEADLINE)
    assert ran.returncode == 0, ran.stderr
    assert not pid_file.exists()
