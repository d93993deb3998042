"""Rates, latencies and levels the nodes report on /diagnostics (nora_ros.diagnostics)."""

from __future__ import annotations

import math

import pytest

from nora_ros.diagnostics import DiagnosticReport, LatencyMeter, Level, RateMeter, rate_check


def test_rate_meter_measures_events_per_second_over_its_window():
    meter = RateMeter(window=2.0)
    assert meter.rate(0.0) == 0.0 and meter.age(0.0) == math.inf
    for i in range(31):
        meter.tick(i / 10)  # 10 Hz for 3 s
    assert meter.rate(3.0) == pytest.approx(10.0)
    assert meter.rate(4.0) == pytest.approx(5.0)  # a silent second lowers the rate: 10 intervals / 2 s
    assert meter.age(4.0) == pytest.approx(1.0)


def test_rate_check_levels():
    meter = RateMeter()
    assert rate_check("frames", meter, 1.0, 15.0, stale_after=2.0) == (Level.STALE, "no frames yet")
    for i in range(10):
        meter.tick(i * 0.5)  # 2 Hz
    level, text = rate_check("frames", meter, 4.5, 15.0, stale_after=2.0)
    assert level is Level.WARN and "2.0 Hz, expected 15.0 Hz" in text
    assert rate_check("frames", meter, 4.5, 2.0, stale_after=2.0) == (Level.OK, "")
    assert rate_check("frames", meter, 9.0, 2.0, stale_after=2.0)[0] is Level.STALE


def test_latency_meter_median_and_p90_ignore_non_finite():
    meter = LatencyMeter(size=10)
    for v in [0.1] * 8 + [1.0, 2.0, float("nan")]:
        meter.add(v)
    assert len(meter) == 10 and meter.median() == pytest.approx(0.1)
    assert meter.p90() == pytest.approx(1.1)


def test_worst_level_wins_and_lists_the_problems():
    report = DiagnosticReport.worst("n", [(Level.OK, ""), (Level.WARN, "slow"), (Level.ERROR, "e-stop")], {"x": 1.23456})
    assert report.level is Level.ERROR and report.message == "slow; e-stop" and report.values == {"x": "1.235"}
    assert DiagnosticReport.worst("n", [], {}).message == "ok"
