"""The chunking experiment: its measures by hand, a resumable grid, the table, and every mode
closing the loop in the simulator (MuJoCo, scripted expert predicting chunks, safety filter)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("mujoco")

from nora_ros.errors import ConfigurationError  # noqa: E402
from nora_ros.experiment.chunking import (  # noqa: E402
    SAMPLE_PERIOD,
    ExperimentConfig,
    Variant,
    load_results,
    path_length,
    rms_jerk,
    run_cell,
    run_grid,
)
from nora_ros.experiment.summary import markdown, summarize  # noqa: E402


def test_rms_jerk_of_a_cubic_is_its_constant_jerk():
    t = np.arange(50) * SAMPLE_PERIOD
    p = np.stack([2.0 * t**3 / 6, np.zeros_like(t), -(t**3) / 6], axis=1)  # jerk (2, 0, -1): |j| = sqrt(5)
    assert rms_jerk(p) == pytest.approx(math.sqrt(5.0), rel=1e-6)
    assert rms_jerk(p[:3]) != rms_jerk(p[:3])  # too short: NaN, not 0
    assert path_length(np.array([[0, 0, 0], [0.03, 0.04, 0], [0.03, 0.04, 0.1]])) == pytest.approx(0.15)


def test_variants_parse_and_refuse():
    assert Variant.parse("hold:5") == Variant("hold", 5) and Variant.parse("ensemble").name == "ensemble"
    assert Variant.parse("interpolate:2").name == "interpolate:2"
    with pytest.raises(ConfigurationError, match="unknown execution mode"):
        Variant.parse("smooth:2")
    with pytest.raises(ConfigurationError, match="integer"):
        Variant.parse("hold:x")


@pytest.mark.parametrize("variant", ["hold:1", "hold:5", "interpolate:5", "ensemble", "blend"])
def test_every_mode_completes_the_task_at_25_hz_with_150_ms_latency(variant):
    config = ExperimentConfig((Variant.parse(variant),), (25.0,), (0.15,), seeds=1)
    (m,) = run_cell(config, next(config.cells()), [3])  # a seed all five succeed on (10 seeds: 48/50)
    assert m.success, m.outcome
    assert m.time_s < 16.0 and 0.3 < m.path_length < 1.5 and math.isfinite(m.rms_jerk)
    assert m.limits.get("workspace", 0) == 0 and m.limits.get("floor", 0) <= 10


def test_late_chunks_skip_their_past_actions_in_the_loop():
    """hold:5 at 400 ms: each chunk is ready two steps of motion after its frame was taken (the
    previous chunk kept the arm moving), so its first two actions are skipped, not replayed."""
    config = ExperimentConfig((Variant("hold", 5),), (10.0,), (0.4,), seeds=1)
    (m,) = run_cell(config, next(config.cells()), [2])
    assert m.skipped >= 10 and m.success, (m.skipped, m.outcome)  # the grid's run: 14 skipped


def test_the_grid_resumes_without_rerunning_and_ignores_a_cut_line(tmp_path):
    path = tmp_path / "results.jsonl"
    small = ExperimentConfig((Variant("ensemble"),), (10.0,), (0.05,), seeds=1)
    seen = []
    first = run_grid(small, path, progress=lambda done, total, m: seen.append((done, total, m.seed)))
    assert [r.seed for r in first] == [0] and seen == [(1, 1, 0)]
    with path.open("a") as f:
        f.write('{"cell": "ensemble|10|0.05", "seed": 5, "succ')  # an interrupted write
    bigger = ExperimentConfig((Variant("ensemble"),), (10.0,), (0.05,), seeds=2)
    seen.clear()
    results = run_grid(bigger, path, progress=lambda done, total, m: seen.append((done, total, m.seed)))
    assert seen == [(2, 2, 1)]  # seed 0 was not run again
    assert sorted(r.seed for r in results) == [0, 1] and len(load_results(path)) == 2
    assert json.loads(path.read_text().splitlines()[0])["seed"] == 0


def test_table_has_wilson_intervals_and_limit_shares(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [dict(cell="hold:1|10|0.15", mode="hold", execute_steps=1, rate=10.0, latency=0.15, seed=s,
                 success=s < 3, outcome="x", time_s=10.0 + s, rms_jerk=100.0, path_length=0.6, skipped=0,
                 dropped=0, ticks=100, holds=0, limits={"linear_accel": 10}) for s in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (c,) = summarize(load_results(path))
    assert c.successes == 3 and c.n == 4
    assert (round(c.success.low, 3), round(c.success.high, 3)) == (0.301, 0.954)  # Wilson 95% for 3/4
    assert c.time_s.mean == pytest.approx(11.0)  # successful trials only: 10, 11, 12
    assert c.limits == {"linear_accel": pytest.approx(0.1)}
    table = markdown([c])
    assert "| hold:1 | 10 | 150 | 3/4 = 0.75 [0.30, 0.95] |" in table and "linear_accel 10.0" in table


def test_rtc_with_the_expert_is_refused(capsys):
    from nora_ros.cli import main

    assert main(["experiment", "chunking", "--modes", "rtc:2", "--seeds", "1"]) == 2
    assert "cannot be guided" in capsys.readouterr().err


def test_rtc_runs_the_simulated_task_with_the_tiny_nora15(tmp_path):
    """The mechanics of rtc in the closed loop (rendered camera, MuJoCo, safety filter): the tiny
    NORA-1.5 (random weights) cannot do the task, but every step of the trial is driven by a
    guided chunk without a fault, and late chunks skip the steps that ran meanwhile."""
    pytest.importorskip("torch")
    from nora_ros.experiment.chunking import PolicySpec
    from nora_ros.policy.nora.tiny15 import build_tiny_nora15_checkpoint

    path = build_tiny_nora15_checkpoint(tmp_path / "tiny15")
    config = ExperimentConfig((Variant("rtc", 2),), (10.0,), (0.15,), seeds=1,
                              policy=PolicySpec(f"nora:{path}"), max_steps=8)
    (m,) = run_cell(config, next(config.cells()), [0])
    assert not m.success and "failure" in m.outcome  # scored by the sim check, not a fault
    assert m.ticks >= 2 * 8 and m.holds <= 3 and m.skipped >= 2  # 8 steps of motion at 10 Hz, no waiting
