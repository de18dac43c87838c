"""``--baseline REF`` adds the proxy as it was at REF as two more targets of every round, and reports the
proxy over it: the target lists, the ratios, and the report's section, from made-up samples (nothing timed)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import analysis, report, scenarios
from bench.__main__ import proxy_settings
from bench.loadgen import RunResult
from bench.runner import Sample


def test_without_baseline_the_targets_are_the_proxy_the_passthrough_and_direct() -> None:
    plan = scenarios.plan(quick=True)
    assert [t.name for t in plan.targets] == ["proxy-openai", "passthrough-openai", "proxy-claude",
                                              "passthrough-claude", "direct"]


def test_with_baseline_each_route_gets_a_baseline_target_beside_the_proxy() -> None:
    plan = scenarios.plan(quick=True, baseline=True)
    assert [t.name for t in plan.compared] == ["proxy-openai", "baseline-openai", "passthrough-openai",
                                               "proxy-claude", "baseline-claude", "passthrough-claude"]
    assert plan.targets == (*plan.compared, scenarios.DIRECT_TARGET)
    assert plan.scenarios == scenarios.plan(quick=True).scenarios  # the same matrix


def _sample(target: str, cpu_us: float, latency_ms: float, requests: int = 100) -> Sample:
    result = RunResult(latencies=[latency_ms / 1e3] * requests, elapsed=1.0)
    return Sample("json-c1", target, 0, result, cpu_us * requests / 1e6, 0, 50 * 1024)


SAMPLES = [
    _sample("direct", 100, 1.0),
    _sample("proxy-openai", 300, 3.0), _sample("baseline-openai", 600, 5.0), _sample("passthrough-openai", 200, 2.0),
    _sample("proxy-claude", 250, 1.02), _sample("baseline-claude", 500, 1.0), _sample("passthrough-claude", 250, 2.0),
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


def _results(baseline: bool) -> dict[str, Any]:
    plan = scenarios.plan(quick=True, baseline=baseline)
    samples = SAMPLES if baseline else [s for s in SAMPLES if not s.target.startswith("baseline")]
    run = {"command": "python -m bench", "quick": True, "rounds": 1, "rounds_planned": 1, "duration_s": 1.0,
           "upstream_cpu": "load", "translator": "abc1234", "loadavg_before": "0", "loadavg_after": "0",
           **({"baseline": {"ref": "HEAD~3", "commit": "def5678"}} if baseline else {})}
    return {"machine": report.machine(2, "none"), "run": run, **analysis.summarize(plan, samples, [], [])}


def test_the_report_puts_the_proxys_cpu_beside_the_baselines_with_their_ratios() -> None:
    results = _results(baseline=True)
    assert results["baseline_ratios"] == analysis.ratios(analysis.scenario_stats(SAMPLES), "baseline")
    text = report.markdown(results)
    assert "translator at abc1234, baseline at def5678 (`--baseline HEAD~3`)" in text
    assert "## Proxy / baseline at def5678 (same rounds)" in text
    assert "| json-c1 | openai | 300 | 600 | 0.50 | 0.50 | 0.50 | 1.00 |" in text
    assert "| json-c1 | baseline-claude |" in text  # and the baseline's own rows in the main table


def test_without_baseline_the_report_has_no_baseline_section() -> None:
    results = _results(baseline=False)
    assert "baseline_ratios" not in results
    assert "baseline" not in report.markdown(results).lower()


def test_each_translator_gets_the_in_flight_limit_only_if_its_config_has_it() -> None:
    assert proxy_settings(300, has_limit=True) == {"max_concurrent_requests": 856}
    assert proxy_settings(300, has_limit=False) == {}
