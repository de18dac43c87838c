"""The README's first command, as a user runs it: `python -m translator serve --demo`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, body: dict) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read()


def test_serve_demo_answers_both_routes() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_"))}
    proc = subprocess.Popen([sys.executable, "-m", "translator", "serve", "--demo", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=1) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("server did not start")
        status, _, raw = _post(base + "/v1/chat/completions",
                               {"model": "claude-demo-1", "messages": [{"role": "user", "content": "Hello"}]})
        assert status == 200
        body = json.loads(raw)
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == "Demo reply (offline upstream): you said: Hello"
        status, _, raw = _post(base + "/v1/messages", {"model": "claude-demo-1", "max_tokens": 50,
                                                       "messages": [{"role": "user", "content": "Hi"}]})
        assert json.loads(raw)["content"] == [{"type": "text", "text": "Demo reply (offline upstream): you said: Hi"}]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request" and line["path"].startswith("/v1/")]
    assert [r["status"] for r in requests] == [200, 200]
    assert all("messages" not in r for r in requests)  # no prompt bodies in the log


def test_workers_share_one_port_and_stop_on_sigterm() -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "translator", "serve", "--demo", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        answered = 0
        deadline = time.monotonic() + 20
        while answered < 10 and time.monotonic() < deadline:
            try:
                status, _, _ = _post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                     {"model": "m", "messages": [{"role": "user", "content": "x"}]})
                answered += status == 200
            except OSError:
                time.sleep(0.1)
        assert answered == 10
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    logged = [json.loads(x) for x in out.decode().splitlines() if x.startswith("{")]
    assert sum(1 for x in logged if x.get("path") == "/v1/chat/completions") == 10


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_listening_line_comes_once_the_port_accepts(workers: str) -> None:
    """A script (or an operator) waits for the line, then connects: the port must answer at once. With workers
    the parent's own socket only proves the port free; the line waits for the first worker to listen, and is
    said once."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "translator", "serve", "--demo", "--port", str(port), "--workers", workers],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        assert line.startswith(f"translator listening on http://127.0.0.1:{port} -> ")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:  # no retry
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "listening" not in err.decode()  # said once, by the first worker only
