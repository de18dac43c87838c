"""The report of the sections: a results file with sections only (a run with ``--only``) renders, a failed
section says so, and an earlier file is read back so that a partial run keeps the other sections."""

from __future__ import annotations

from pathlib import Path

from bench import report

RUN = {"command": "python -m bench --only workers", "date": "2026-01-01 00:00:00 UTC", "duration_s": 5.0,
       "loadavg_before": "0.1", "loadavg_after": "0.2", "quick": False}
WORKERS = {"run": RUN, "plan": {"workers": [1, 2], "concurrency": 64, "seconds": 10.0, "route": "openai"},
           "rows": {"json": {"1": {"rps": 100.0, "p50_ms": 1.0, "p99_ms": 2.0, "server_cpu": 0.9,
                                   "cpu_us_per_req": 900.0, "rss_mb": 70.0, "load_side_cpu": 0.3, "errors": 0},
                             "2": {"rps": 190.0, "p50_ms": 1.0, "p99_ms": 2.0, "server_cpu": 1.8,
                                   "cpu_us_per_req": 950.0, "rss_mb": 140.0, "load_side_cpu": 0.5, "errors": 0}}},
           "scaling": {"json": 1.9}}


def test_sections_render_without_the_rounds_and_a_failed_one_says_so() -> None:
    results = {"machine": report.machine(2, "none"),
               "sections": {"workers": WORKERS, "peers": {"run": RUN, "error": "RuntimeError: litellm exited"}}}
    text = report.markdown(results)
    assert "## Cores: workers" in text and "json 1.90x" in text
    assert "## peers" in text and "**Failed**: RuntimeError: litellm exited" in text
    assert "Rounds" not in text


def test_an_earlier_results_file_is_read_back(tmp_path: Path) -> None:
    assert report.read(tmp_path, "latest") == {}
    results = {"machine": report.machine(2, "none"), "sections": {"workers": WORKERS}}
    report.write(tmp_path, results, "latest")
    assert report.read(tmp_path, "latest")["sections"]["workers"]["scaling"] == {"json": 1.9}
    (tmp_path / "broken.json").write_text("{not json")
    assert report.read(tmp_path, "broken") == {}
