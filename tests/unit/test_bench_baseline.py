"""``--baseline REF`` adds the proxy as it was at REF as more targets of every round (one per route it has: a
REF from before /v1/responses has none there), and reports the proxy over it: the target lists, the ratios,
and the report's section, from made-up samples (nothing timed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from bench import analysis, baseline, report, scenarios
from bench.__main__ import proxy_settings
from bench.loadgen import RunResult
from bench.runner import Sample

ALL_ROUTES = scenarios.ROUTES


def test_without_baseline_the_targets_are_the_proxy_the_passthrough_and_direct() -> None:
    plan = scenarios.plan(quick=True)
    assert not plan.baseline
    assert [t.name for t in plan.targets] == ["proxy-openai", "passthrough-openai", "proxy-claude",
                                              "passthrough-claude", "proxy-responses", "passthrough-responses",
                                              "direct"]


def test_with_baseline_each_route_gets_a_baseline_target_beside_the_proxy() -> None:
    plan = scenarios.plan(quick=True, baseline_routes=ALL_ROUTES)
    assert plan.baseline
    assert [t.name for t in plan.compared] == ["proxy-openai", "baseline-openai", "passthrough-openai",
                                               "proxy-claude", "baseline-claude", "passthrough-claude",
                                               "proxy-responses", "baseline-responses", "passthrough-responses"]
    assert plan.targets == (*plan.compared, scenarios.DIRECT_TARGET)
    assert plan.scenarios == scenarios.plan(quick=True).scenarios  # the same matrix


def test_a_baseline_without_the_responses_route_has_no_target_there() -> None:
    plan = scenarios.plan(quick=True, baseline_routes=(scenarios.OPENAI, scenarios.CLAUDE))
    assert [t.name for t in plan.compared] == ["proxy-openai", "baseline-openai", "passthrough-openai",
                                               "proxy-claude", "baseline-claude", "passthrough-claude",
                                               "proxy-responses", "passthrough-responses"]


def test_the_memory_probes_run_on_the_openai_and_claude_routes() -> None:
    plan = scenarios.plan(quick=True, baseline_routes=ALL_ROUTES)
    assert [t.name for t in plan.probed] == ["proxy-openai", "baseline-openai", "passthrough-openai",
                                             "proxy-claude", "baseline-claude", "passthrough-claude"]


def _sample(target: str, cpu_us: float, latency_ms: float, requests: int = 100) -> Sample:
    result = RunResult(latencies=[latency_ms / 1e3] * requests, elapsed=1.0)
    return Sample("json-c1", target, 0, result, cpu_us * requests / 1e6, 0, 50 * 1024)


SAMPLES = [
    _sample("direct", 100, 1.0),
    _sample("proxy-openai", 300, 3.0), _sample("baseline-openai", 600, 5.0), _sample("passthrough-openai", 200, 2.0),
    _sample("proxy-claude", 250, 1.02), _sample("baseline-claude", 500, 1.0), _sample("passthrough-claude", 250, 2.0),
    _sample("proxy-responses", 400, 3.0), _sample("baseline-responses", 800, 5.0),
    _sample("passthrough-responses", 320, 2.0),
]


def test_the_proxy_is_divided_by_the_baseline_of_the_same_route() -> None:
    ratios = analysis.ratios(analysis.scenario_stats(SAMPLES), "baseline")
    openai = ratios["json-c1"]["openai"]
    assert openai["cpu"] == pytest.approx(0.5)
    assert openai["rps"] == pytest.approx(1.0)
    assert openai["added_p50"] == pytest.approx(0.5)  # adds 2 ms over direct, the baseline 4 ms
    assert openai["added_p99"] == pytest.approx(0.5)
    # The baseline adds nothing over direct: its added latency counts as the floor, 0.1 ms.
    assert ratios["json-c1"]["claude"]["added_p50"] == pytest.approx(1.0)


def test_the_passthrough_ratios_stay_what_they_were() -> None:
    ratios = analysis.ratios(analysis.scenario_stats(SAMPLES))
    assert ratios["json-c1"]["openai"]["cpu"] == pytest.approx(1.5)
    assert ratios["json-c1"]["claude"]["added_p99"] == pytest.approx(0.1)  # 0.1 ms floor over 1 ms


def _results(baseline_routes: tuple[str, ...]) -> dict[str, Any]:
    """What a run writes, from SAMPLES of the plan's targets (a baseline only on ``baseline_routes``)."""
    plan = scenarios.plan(quick=True, baseline_routes=baseline_routes)
    names = {t.name for t in plan.targets}
    samples = [s for s in SAMPLES if s.target in names]
    base = {"ref": "HEAD~3", "commit": "def5678", "routes": list(baseline_routes)}
    run = {"command": "python -m bench", "quick": True, "rounds": 1, "rounds_planned": 1, "duration_s": 1.0,
           "upstream_cpu": "load", "translator": "abc1234", "loadavg_before": "0", "loadavg_after": "0",
           **({"baseline": base} if baseline_routes else {})}
    return {"machine": report.machine(2, "none"), "run": run, **analysis.summarize(plan, samples, [], [])}


def test_the_report_puts_the_proxys_cpu_beside_the_baselines_with_their_ratios() -> None:
    results = _results(ALL_ROUTES)
    assert results["baseline_ratios"] == analysis.ratios(analysis.scenario_stats(SAMPLES), "baseline")
    text = report.markdown(results)
    assert "translator at abc1234, baseline at def5678 (`--baseline HEAD~3`)" in text
    assert "## Proxy / baseline at def5678 (same rounds)" in text
    assert "| json-c1 | openai | 300 | 600 | 0.50 | 0.50 | 0.50 | 1.00 |" in text
    assert "| json-c1 | responses | 400 | 800 | 0.50 |" in text
    assert "| json-c1 | baseline-claude |" in text  # and the baseline's own rows in the main table
    assert "has no" not in text


def test_a_baseline_without_the_responses_route_is_compared_on_the_others_only() -> None:
    results = _results((scenarios.OPENAI, scenarios.CLAUDE))
    assert list(results["baseline_ratios"]["json-c1"]) == ["openai", "claude"]
    assert results["ratios"]["json-c1"]["responses"]["cpu"] == pytest.approx(1.25)  # the passthrough's stay
    text = report.markdown(results)
    assert "The baseline has no responses route: no rows for it here." in text
    assert "| json-c1 | responses | 400 |" not in text
    assert "| json-c1 | proxy-responses |" in text


def test_without_baseline_the_report_has_no_baseline_section() -> None:
    results = _results(())
    assert "baseline_ratios" not in results
    assert "baseline" not in report.markdown(results).lower()


def test_each_translator_gets_the_in_flight_limit_only_if_its_config_has_it() -> None:
    assert proxy_settings(300, has_limit=True) == {"max_concurrent_requests": 856}
    assert proxy_settings(300, has_limit=False) == {}


def test_the_baseline_has_the_responses_route_if_it_has_the_routes_module(tmp_path: Path) -> None:
    python = Path(sys.executable)  # this tree's translator, which has the route
    assert baseline._succeeds(python, baseline._HAS_RESPONSES, tmp_path)
    assert not baseline._succeeds(python, "import translator.server.no_such_route", tmp_path)
