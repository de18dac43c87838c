"""Requests aiohttp's parser rejects (a bad character in a header, a line over the limit, a request line that
is not HTTP, a bad Content-Length or chunk size), sent over a raw socket with a key in the offending line:
the answer is JSON in the route's API shape (OpenAI's when the route is unknown), it quotes nothing, it
carries our request id, and the request has one JSON log line with the cause and no value."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import orjson
import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import CLIENT_KEYS

KEY = "sk-ant-api03-MalformedHttpSecret0123456789"
CLIENT_KEYS.add(KEY)
K = KEY.encode()

CHAT = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
MESSAGES = b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
OPENAI_400 = {"type": "invalid_request_error", "param": None, "code": None}

# name: (bytes sent, status, the body's shape, message)
CASES: dict[str, tuple[bytes, int, str, str]] = {
    "control character in a header, Claude route": (
        MESSAGES + b"x-api-key: " + K + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
        400, "claude", "malformed HTTP request: invalid header value char"),
    "control character in a header, OpenAI route": (
        CHAT + b"Authorization: Bearer " + K + b"\x01\r\nContent-Length: 2\r\n\r\n{}",
        400, "openai", "malformed HTTP request: invalid header value char"),
    "header line over the limit": (
        CHAT + b"Authorization: Bearer " + K + b"A" * 20000 + b"\r\n\r\n",
        431, "openai", "malformed HTTP request: the request line or a header is longer than the limit "
                       "(server.max_header_bytes)"),
    "request line that is not HTTP": (
        b"POST /v1/messages " + K + b"\r\nHost: x\r\n\r\n",
        400, "claude", "malformed HTTP request: the request line is not HTTP"),
    "garbage": (
        K + b"\x00\x01\x02\r\n\r\n", 400, "openai", "malformed HTTP request: the request line is not HTTP"),
    "bad Content-Length": (
        CHAT + b"Authorization: Bearer " + K + b"\r\nContent-Length: 1" + K + b"\r\n\r\n",
        400, "openai", "malformed HTTP request: invalid character in Content-Length"),
    "bad chunk size": (
        MESSAGES + b"x-api-key: " + K + b"\r\nTransfer-Encoding: chunked\r\n\r\nZZ" + K + b"\r\n{}\r\n0\r\n\r\n",
        400, "claude", "malformed HTTP request: invalid character in chunk size"),
}


def expected_body(shape: str, status: int, message: str) -> dict:
    if shape == "claude":
        kind = "request_too_large" if status == 413 else "invalid_request_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, **OPENAI_400}}


async def exchange(host: str, port: int, *parts: bytes) -> bytes:
    """Sends ``parts`` (a pause between them: separate reads for the server), reads until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(0.05)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request_lines(logged: str) -> list[dict]:
    lines = [orjson.loads(line) for line in logged.splitlines() if line]
    return [line for line in lines if line["event"] == "request"]


@pytest.mark.parametrize("case", CASES)
async def test_a_request_the_parser_rejects_gets_json_and_one_log_line_without_values(
    proxy: TestClient, server_log, case: str
) -> None:
    sent, status, shape, message = CASES[case]
    raw = await exchange(proxy.host, proxy.port, sent)

    got_status, headers, body = parse(raw)
    assert got_status == status
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == expected_body(shape, status, message)
    assert KEY.encode() not in raw and b"Malformed" not in raw
    logged = server_log()
    assert KEY not in logged
    [line] = request_lines(logged)
    assert line["request_id"] == headers["x-request-id"]
    assert line["status"] == status
    assert line["error"] == "invalid_request_error"
    assert line["cause"] == message
    assert line["level"] == "info"
    assert not [entry for entry in logged.splitlines() if '"exception"' in entry]


async def test_the_route_comes_from_the_request_line_and_never_the_query(proxy: TestClient, server_log) -> None:
    raw = await exchange(proxy.host, proxy.port,
                         b"POST /v1/messages?key=" + K + b" HTTP/1.1\r\nHost: x\r\nx-api-key: " + K + b"\x7f\r\n\r\n")
    status, _, body = parse(raw)
    assert status == 400
    assert orjson.loads(body)["type"] == "error"  # Claude's shape
    [line] = request_lines(server_log())
    assert (line["method"], line["path"]) == ("POST", "/v1/messages")


async def test_a_bad_chunk_after_the_head_is_a_400_in_the_route_shape(proxy: TestClient, server_log) -> None:
    """The head is parsed and the route runs; the bad chunk size comes in a later read, while it reads the
    body."""
    head = MESSAGES + b"x-api-key: " + K + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    raw = await exchange(proxy.host, proxy.port, head, b"ZZ" + K + b"\r\n{}\r\n0\r\n\r\n")
    status, headers, body = parse(raw)
    assert status == 400
    assert orjson.loads(body) == expected_body("claude", 400, "malformed HTTP request: invalid character in chunk size")
    assert KEY.encode() not in raw
    logged = server_log()
    assert KEY not in logged
    [line] = request_lines(logged)
    assert line["request_id"] == headers["x-request-id"]
    assert line["status"] == 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_key_reaches_neither_stdout_nor_stderr_of_the_real_server() -> None:
    """The operator's view: `translator serve`, the malformed requests, then its whole output."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TRANSLATOR_"))}
    proc = subprocess.Popen([sys.executable, "-m", "translator", "serve", "--demo", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        answers = [asyncio.run(exchange("127.0.0.1", port, sent)) for sent, *_ in CASES.values()]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert [parse(raw)[0] for raw in answers] == [status for _, status, _, _ in CASES.values()]
    assert KEY.encode() not in out and KEY.encode() not in err
    assert err.decode().splitlines() == [f"translator listening on http://127.0.0.1:{port} -> built-in demo upstream"]
    lines = [orjson.loads(line) for line in out.splitlines()]  # every line is JSON
    causes = [line["cause"] for line in lines if line["event"] == "request"]
    assert causes == [message for _, _, _, message in CASES.values()]
