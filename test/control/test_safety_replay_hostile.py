"""Safety replay of a hostile recorded stream in every execution mode and at every control rate
(issue 14): NaN, +-Inf, wrong gripper values, steps 25 times a normal one, 1e3, sign flips
every step. Malformed steps are met as on the robot (every chunk holding one is refused, the
arm holds when nothing is due); everything else meets the filter's limits."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nora_ros.cli import main as cli
from nora_ros.control.safety_replay import GRIPPER_RANGE, NON_FINITE, malformed_steps, replay, ticks_per_step
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.safety import SafetyConfig

CFG = SafetyConfig()
STEP_BOUND = 0.05
"""m per 0.2 s: Bridge's largest step, the filter's linear speed limit over one model step."""

N = 300


def hostile_stream(seed: int = 14) -> tuple[np.ndarray, dict[str, set[int]]]:
    """300 Bridge-like steps (6 mm, 0.03 rad, the gripper toggling every 40 steps) with, at
    distinct random steps: 12 NaN, 10 +-Inf, 6 gripper values outside [0, 1], 20 steps 25 times
    their size, 6 steps of +-1e3, and steps 200..239 (less the malformed ones) flipping sign
    every step at the Bridge limits (5 cm, 0.25 rad). Returns the actions and the injected steps
    by kind."""
    rng = np.random.default_rng(seed)
    a = np.zeros((N, 7))
    a[:, :3] = rng.normal(0.0, 0.006, (N, 3))
    a[:, 3:6] = rng.normal(0.0, 0.03, (N, 3))
    a[:, 6] = (np.arange(N) // 40) % 2
    order = rng.permutation(N)
    kinds = {"nan": order[:12], "inf": order[12:22], "gripper": order[22:28], "x25": order[28:48],
             "1e3": order[48:54]}
    for i in kinds["nan"]:
        a[i, rng.integers(0, 7)] = np.nan
    for i in kinds["inf"]:
        a[i, rng.integers(0, 6)] = rng.choice([np.inf, -np.inf])
    for i in kinds["gripper"]:
        a[i, 6] = rng.choice([1.7, -0.4, 3.0])
    for i in kinds["x25"]:
        a[i, :6] *= 25.0
    for i in kinds["1e3"]:
        a[i, :6] = rng.choice([-1e3, 1e3], 6)
    malformed = set(kinds["nan"]) | set(kinds["inf"]) | set(kinds["gripper"])
    flips = [i for i in range(200, 240) if i not in malformed]
    for k, i in enumerate(flips):
        a[i, :3] = 0.05 * (-1) ** k
        a[i, 3:6] = 0.25 * (-1) ** k
    return a, {k: {int(i) for i in v} for k, v in kinds.items()} | {"flips": set(flips)}


ACTIONS, INJECTED = hostile_stream()
MALFORMED = INJECTED["nan"] | INJECTED["inf"] | INJECTED["gripper"]

CASES = [  # (mode, chunk_size, execute_steps)
    ("hold", 5, 5),
    ("interpolate", 5, 5),
    ("ensemble", 5, 1),
    ("blend", 5, 1),
    ("hold", 1, 1),
]


def refused_observations(chunk_size: int, every: int) -> int:
    """Observations whose chunk (steps s .. s + chunk_size - 1) holds a malformed step."""
    return sum(any(j in MALFORMED for j in range(s, min(N, s + chunk_size))) for s in range(0, N, every))


def test_the_stream_is_as_hostile_as_its_docstring_says():
    assert len(MALFORMED) == 28 and len(INJECTED["flips"]) >= 35
    assert malformed_steps(ACTIONS) == {i: (GRIPPER_RANGE if i in INJECTED["gripper"] else NON_FINITE)
                                        for i in sorted(MALFORMED)}
    finite = ACTIONS[[i for i in range(N) if i not in MALFORMED]]
    assert np.abs(finite[:, :3]).max() == 1e3
    assert np.linalg.norm(ACTIONS[sorted(INJECTED["x25"]), :3], axis=1).min() > STEP_BOUND  # each x25 step is too big


@pytest.mark.parametrize("rate", [5, 10, 25])
@pytest.mark.parametrize(("mode", "chunk_size", "execute_steps"), CASES)
def test_hostile_stream_stays_inside_every_bound(mode, chunk_size, execute_steps, rate):
    r = replay(ACTIONS, chunk_size=chunk_size, execute_steps=execute_steps, mode=mode, control_rate=rate)
    n = ticks_per_step(rate)
    assert (r.mode, r.control_rate, r.ticks) == (mode, rate, N * n)
    assert r.workspace_violations == 0 and r.below_table_ticks == 0 and r.min_ee_z >= CFG.floor_z - 1e-6
    assert r.joint_limit_violations == 0
    assert r.max_window_translation <= STEP_BOUND + 1e-9
    assert r.max_step_translation <= CFG.max_linear_speed / rate + 1e-9
    assert r.max_open_loop_translation <= CFG.open_loop_translation + 1e-6
    assert r.estop_motion == 0.0
    # malformed steps: every one counted, every chunk holding one refused
    assert r.rejected_steps == 28 and r.rejected_reasons == {NON_FINITE: 22, GRIPPER_RANGE: 6}
    every = 1 if mode in ("ensemble", "blend") else execute_steps
    assert r.rejected_chunks == refused_observations(chunk_size, every)
    if mode in ("hold", "interpolate"):  # a refused chunk: the arm holds for its execute_steps steps
        assert r.held_ticks == r.rejected_chunks * execute_steps * n
    else:  # a step no chunk may carry leaves nothing due at least there
        assert r.held_ticks >= len(MALFORMED) * n
    # the absurd but finite steps went through and were limited
    assert r.limits_fired["linear_speed"] > 0 and r.limits_fired["angular_speed"] > 0
    assert r.limits_fired["linear_accel"] > 0


def test_interpolate_at_50_hz_keeps_the_bounds_too():
    r = replay(ACTIONS, chunk_size=5, execute_steps=5, mode="interpolate", control_rate=50)
    assert r.workspace_violations == 0 and r.joint_limit_violations == 0 and r.estop_motion == 0.0
    assert r.max_window_translation <= STEP_BOUND + 1e-9 and r.max_step_translation <= 0.005 + 1e-9


@pytest.mark.parametrize(("mode", "chunk_size", "execute_steps", "rate"),
                         [("hold", 5, 5, 5), ("ensemble", 5, 1, 25)])
def test_without_the_filter_the_same_stream_leaves_the_workspace_and_the_step_bound(mode, chunk_size,
                                                                                     execute_steps, rate):
    r = replay(ACTIONS, chunk_size=chunk_size, execute_steps=execute_steps, mode=mode, control_rate=rate,
               use_filter=False)
    assert r.workspace_violations > 100
    assert r.max_window_translation > 3 * STEP_BOUND
    assert r.rejected_steps == 28  # refused at the policy boundary, before any filter
    assert r.limits_fired == {}


def test_a_malformed_step_never_executes():
    """One NaN and one gripper 2.0 in an otherwise steady stream of 1 cm steps along +y: with
    single-action chunks the arm holds exactly on those two steps and makes every other one."""
    a = np.tile([0.0, 0.01, 0.0, 0.0, 0.0, 0.0, 1.0], (10, 1))
    a[3, 0] = np.nan
    a[6, 6] = 2.0
    r = replay(a, chunk_size=1, execute_steps=1, control_rate=10)
    assert r.rejected_steps == 2 and r.rejected_chunks == 2 and r.held_ticks == 4
    assert r.rejected_reasons == {NON_FINITE: 1, GRIPPER_RANGE: 1}
    assert "non-finite value at step 0, dim 0" in r.rejection and "observation at step 3" in r.rejection
    # every other step executed as commanded, no limit needed, 1 cm per observation
    assert r.limits_fired == {} and r.drift_mm < 1e-6 and r.max_open_loop_translation == pytest.approx(0.01)
    clean = replay(np.delete(a, [3, 6], axis=0), chunk_size=1, execute_steps=1, control_rate=10)
    assert clean.rejected_steps == 0 and clean.held_ticks == 0 and clean.rejection == ""


def test_rtc_is_refused_with_the_reason():
    with pytest.raises(ConfigurationError, match="cannot be guided"):
        replay(ACTIONS, chunk_size=5, execute_steps=1, mode="rtc", control_rate=25)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"mode": "smooth"}, "mode must be one of hold, interpolate, ensemble, blend"),
    ({"control_rate": 7}, "does not divide"),
    ({"control_rate": 0}, "positive number of Hz"),
    ({"mode": "blend", "blend_aggregate": "median"}, "blend_aggregate must be one of"),
    ({"mode": "ensemble", "ensemble_decay": float("nan")}, "ensemble_decay"),
])
def test_bad_settings_are_refused(kwargs, words):
    with pytest.raises(ConfigurationError, match=words):
        replay(ACTIONS[:5], **kwargs)


def test_a_non_finite_start_state_is_refused():
    with pytest.raises(InvalidInputError, match="start state"):
        replay(ACTIONS[:5], [0.3, 0.0, np.nan, 0.0, 0.0, 0.0])


def test_the_command_line_replays_a_hostile_file_and_says_so(tmp_path, capsys):
    ep = tmp_path / "hostile.npz"
    np.savez(ep, action=ACTIONS.astype(np.float32))
    args = ["safety-replay", str(ep), "--mode", "ensemble", "--control-rate", "25", "--chunk-size", "5"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "mode ensemble at 25 Hz" in out
    assert "rejected steps          28 (non-finite x22, gripper outside [0, 1] x6)" in out
    assert "per 0.2 s" in out and "first refusal" in out
    assert cli([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "ensemble" and data["control_rate"] == 25.0 and data["rejected_steps"] == 28
    assert data["workspace_violations"] == 0 and data["max_window_translation"] <= STEP_BOUND + 1e-9
    assert cli(["safety-replay", str(ep), "--mode", "rtc", "--chunk-size", "5"]) == 1
    assert "cannot be guided" in capsys.readouterr().err
    assert cli(["safety-replay", str(ep), "--control-rate", "12"]) == 1
    assert "multiple of 5 Hz" in capsys.readouterr().err


@pytest.mark.parametrize("action", [np.zeros((4, 6)), np.zeros(7), np.zeros((0, 7)), np.zeros((2, 7, 1))])
def test_a_structurally_wrong_file_is_refused_as_a_whole(tmp_path, capsys, action):
    ep = tmp_path / "wrong.npz"
    np.savez(ep, action=action)
    assert cli(["safety-replay", str(ep)]) == 1
    err = capsys.readouterr().err
    assert "'action' must be (N, 7) with N >= 1" in err and "wrong.npz" in err and "Traceback" not in err
