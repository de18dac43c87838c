"""Micro-timings of the proxy's pure pieces, in-process, without HTTP: ``python -m bench.hotspots``.

A companion to ``bench.profile`` (which samples the running proxy): it prices, in microseconds per
call, the steps the profiles point at, so a change to one of them can be checked in seconds. It imports
the translator's own functions; a piece that is missing (renamed, moved) is reported and skipped.
"""

from __future__ import annotations

import io
import logging
import sys
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from bench import scenarios
from bench.upstream import DELTA, HEAD, tail

Row = tuple[str, float, str]


def per_call_us(fn: Callable[[], object], *, seconds: float = 0.3, calls_per_fn: int = 1) -> float:
    """Best of 5 timed batches, in microseconds per call."""
    n = 1
    while True:  # grow the batch until one takes ~seconds/5
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - t0
        if took > seconds / 5:
            break
        n *= 2
    best = took
    for _ in range(4):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / n / calls_per_fn * 1e6


def stream_rows(deltas: int = 500) -> list[Row]:
    from translator.convert import StreamConverter
    from translator.sse import SSEDecoder, encode_data

    data = HEAD + DELTA * deltas + tail(deltas)
    pieces = [HEAD, *([DELTA] * deltas), tail(deltas)]
    events = SSEDecoder().feed(data)
    n = len(events)
    delta_event = orjson.loads(DELTA.split(b"data: ", 1)[1])

    def decode_one_chunk() -> None:
        SSEDecoder().feed(data)

    def decode_per_event() -> None:
        d = SSEDecoder()
        for p in pieces:
            d.feed(p)

    def parse() -> None:
        for e in events:
            e.json()

    conv = StreamConverter(created=0, model="m")
    conv.feed(orjson.loads(HEAD.split(b"data: ", 1)[1].split(b"\n", 1)[0]))
    conv.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    chunk = conv.feed(delta_event)[0]

    def pipeline() -> None:
        c = StreamConverter(created=0, model="m")
        d = SSEDecoder()
        for p in pieces:
            out = [encode_data(ch) for e in d.feed(p) for ch in c.feed(e.json())]
            b"".join(out)

    return [
        ("SSEDecoder.feed, whole stream in one chunk", per_call_us(decode_one_chunk, calls_per_fn=n), "per event"),
        ("SSEDecoder.feed, one chunk per event", per_call_us(decode_per_event, calls_per_fn=n), "per event"),
        ("SSEEvent.json (orjson.loads)", per_call_us(parse, calls_per_fn=n), "per event"),
        ("StreamConverter.feed(text delta)", per_call_us(lambda: conv.feed(delta_event)), "per event"),
        ("encode_data(chunk) (orjson.dumps)", per_call_us(lambda: encode_data(chunk)), "per chunk"),
        ("decode+parse+convert+encode, chunk per event", per_call_us(pipeline, calls_per_fn=n), "per event"),
        ("passthrough: bytes.replace on one event", per_call_us(lambda: DELTA.replace(b"event: ", b": ")),
         "per event"),
    ]


def request_rows() -> list[Row]:
    from translator.config import load_settings
    from translator.convert import convert_request

    settings = load_settings(env={})
    model, profile = settings.resolve_model(scenarios.MODEL)
    out: list[Row] = []
    for label, raw in (("hello", scenarios.simple_bodies(0)[scenarios.OPENAI]),
                       ("200-message history + 12 tools", scenarios.history_bodies()[scenarios.OPENAI])):
        body = orjson.loads(raw)
        conv = convert_request(body, model=model, profile=profile)
        out += [
            (f"orjson.loads, {label} ({len(raw) // 1024} KB)", per_call_us(partial(orjson.loads, raw)),
             "per request"),
            (f"convert_request, {label}", per_call_us(partial(convert_request, body, model=model, profile=profile)),
             "per request"),
            (f"orjson.dumps(Claude body), {label}", per_call_us(partial(orjson.dumps, conv.body)), "per request"),
        ]
    out.append(("Settings.resolve_model (uncached)", per_call_us(lambda: settings.resolve_model(scenarios.MODEL)),
                "per request"))
    return out


def log_rows() -> list[Row]:
    import structlog

    from translator.log import configure_logging

    sink = io.BytesIO()
    configure_logging("info", stream=sink)  # the production set-up, writing to memory
    log = structlog.get_logger("bench")
    fields: dict[str, Any] = {
        "request_id": uuid.uuid4().hex[:16], "method": "POST", "path": "/v1/chat/completions", "route": "openai",
        "model": "claude-sonnet-4-5", "upstream_model": "claude-sonnet-4-5", "stream": True, "n": 1,
        "usage": {"prompt_tokens": 12, "completion_tokens": 500, "total_tokens": 512}, "status": 200,
        "latency_ms": 12.34,
    }

    def line() -> None:
        log.info("request", **fields)
        sink.seek(0)
        sink.truncate()

    return [
        ("structlog request line (the production processors, orjson)", per_call_us(line), "per request"),
        ("uuid.uuid4().hex", per_call_us(lambda: uuid.uuid4().hex), "per request"),
    ]


def main() -> int:
    logging.disable(logging.CRITICAL)
    rows: list[Row] = []
    for part in (stream_rows, request_rows, log_rows):
        try:
            rows += part()
        except (ImportError, AttributeError, TypeError) as e:
            rows.append((f"{part.__name__}: skipped ({type(e).__name__}: {e})", float("nan"), ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'us':>8}  unit")
    for name, us, unit in rows:
        print(f"{name:<{width}}  {us:8.2f}  {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
