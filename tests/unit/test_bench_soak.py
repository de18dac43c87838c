"""bench/soak.py's judgement of a run: RSS growth after warm-up, and what the proxy wrote."""

from __future__ import annotations

from bench.soak import KEY, Report, read_output


def test_rss_growth_is_measured_after_warm_up() -> None:
    # 100 s: 60 MB rising to 80 MB in the warm-up (the first 20 s), then 100 -> 103 MB.
    samples = [(t, 60 * 1024 + t * 1024) for t in range(0, 20, 5)]
    samples += [(t, 100 * 1024 + (t - 20) * 3 * 1024 // 80) for t in range(20, 101, 5)]
    report = Report(100, warmup_seconds=20, rss_kb=samples)
    assert round(report.rss_growth() or 0, 3) == 0.026  # (medians of the first and last three samples)
    assert report.failures() == []
    report.rss_kb = [(t, kb + (t - 20) * 60) for t, kb in samples]  # 5 MB more by the end: past 5%
    assert report.failures() == [f"RSS grew {report.rss_growth():.1%} after warm-up"]


def test_every_line_must_be_json_below_warning_and_stderr_only_the_start() -> None:
    report = Report(10)
    stdout = (b'{"event":"request","path":"/v1/messages","stream_end":"client_gone","level":"info"}\n'
              b'{"event":"request","path":"/healthz","level":"info"}\n'
              b'{"event":"Error handling request","logger":"aiohttp.server","level":"error"}\n'
              b'Traceback (most recent call last):\n')
    stderr = b"translator listening on http://127.0.0.1:1 -> x\nboom\n"
    read_output(report, stdout, stderr)
    assert (report.log_lines, report.request_lines, dict(report.stream_ends)) == (4, 1, {"client_gone": 1})
    assert report.non_json_lines == ["Traceback (most recent call last):"]
    assert report.problem_lines == ["error: Error handling request aiohttp.server"]
    assert report.stderr_lines == ["boom"]
    assert not report.key_in_output
    read_output(Report(10), b"", KEY.encode())
    assert report.failures() == ["1 lines on stdout that are not JSON", "1 warning or error lines", "1 lines on stderr"]


def test_the_key_anywhere_in_the_output_fails_the_run() -> None:
    report = Report(10)
    read_output(report, b'{"event":"request","level":"info","x":"%s"}\n' % KEY.encode(), b"")
    assert report.failures() == ["the key reached the output"]
