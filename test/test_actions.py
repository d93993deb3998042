"""Bridge action semantics and normalization (nora_ros.actions), on the real bridge_orig
statistics and real WidowX episodes where they matter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nora_ros.actions import (
    DOWN,
    ActionChunk,
    EndEffectorCommand,
    NormStats,
    action_to_command,
    apply_bridge_delta,
    bridge_state_to_pose,
    euler_to_matrix,
    integrate_twist,
    make_pose,
    matrix_to_euler,
    pose_to_bridge_state,
)
from nora_ros.errors import ConfigurationError, InvalidInputError


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.fixture
def stats(bridge_norm_stats_file) -> NormStats:
    return NormStats.from_json(bridge_norm_stats_file, "bridge_orig")


# --------------------------------------------------------------------------- NormStats


def test_bridge_orig_stats_are_read_with_the_gripper_unmasked(stats, bridge_norm_stats_file):
    raw = json.loads(bridge_norm_stats_file.read_text())["bridge_orig"]["action"]
    np.testing.assert_array_equal(stats.q01, raw["q01"])
    np.testing.assert_array_equal(stats.q99, raw["q99"])
    assert stats.mask.tolist() == [True] * 6 + [False]
    assert stats.key == "bridge_orig"


def test_unnormalize_maps_minus_one_and_one_to_q01_and_q99_only_where_masked(stats):
    x = np.array([[-1.0] * 6 + [0.3], [1.0] * 6 + [0.8], [0.0] * 6 + [1.0]])
    a = stats.unnormalize(x)
    np.testing.assert_allclose(a[0, :6], stats.q01[:6])
    np.testing.assert_allclose(a[1, :6], stats.q99[:6])
    np.testing.assert_allclose(a[2, :6], (stats.q01[:6] + stats.q99[:6]) / 2)
    # The gripper is not normalized: the model's value passes through (the reference's bug
    # would have mapped 0.3 to 0.65 with q01 = 0, q99 = 1).
    np.testing.assert_array_equal(a[:, 6], [0.3, 0.8, 1.0])
    # A concrete value: x dim (q01 -0.0287273, q99 0.0283097) at x = 0.5:
    # 0.75 * 0.0570369 - 0.0287273 = 0.0140504.
    assert a[1, 0] == pytest.approx(0.028309678435325586)
    assert stats.unnormalize(np.array([0.5, 0, 0, 0, 0, 0, 1]))[0] == pytest.approx(0.0140504, abs=1e-7)


def test_normalize_inverts_unnormalize_on_real_actions(stats, bridge_episodes):
    for path in bridge_episodes:
        actions = np.load(path)["action"].astype(np.float64)
        x = stats.normalize(actions)
        np.testing.assert_array_equal(x[:, 6], actions[:, 6])  # gripper untouched
        np.testing.assert_allclose(stats.unnormalize(x), actions, atol=1e-12)
    # Real Bridge deltas mostly lie inside [q01, q99], i.e. [-1, 1] once normalized.
    x = np.concatenate([stats.normalize(np.load(p)["action"]) for p in bridge_episodes])
    assert np.mean(np.abs(x[:, :6]) <= 1.0) > 0.95


def test_zero_range_dimension_normalizes_to_zero_and_back():
    s = NormStats(q01=[0.0] * 5 + [0.2, 0.0], q99=[1.0] * 5 + [0.2, 1.0], mask=[True] * 7)
    x = s.normalize(np.array([0.5] * 5 + [0.2, 0.5]))
    assert x[5] == 0.0 and x[0] == 0.0
    assert s.unnormalize(x)[5] == pytest.approx(0.2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_statistics_are_rejected(bad):
    q01 = [-0.1] * 7
    q01[2] = bad
    with pytest.raises(InvalidInputError, match="q01 has non-finite values"):
        NormStats(q01=q01, q99=[0.1] * 7, mask=[True] * 6 + [False], key="k")
    with pytest.raises(InvalidInputError, match="q99 has non-finite values"):
        NormStats(q01=[-0.1] * 7, q99=q01[::-1], mask=[True] * 7)


def test_malformed_statistics_are_rejected():
    with pytest.raises(InvalidInputError, match="7 values each"):
        NormStats(q01=[0.0] * 6, q99=[1.0] * 6, mask=[True] * 6)
    with pytest.raises(InvalidInputError, match="q99 below q01"):
        NormStats(q01=[0.1] * 7, q99=[-0.1] * 7, mask=[True] * 7)
    # Unmasked dimensions are never used, so their order does not matter.
    NormStats(q01=[0.0] * 6 + [1.0], q99=[1.0] * 6 + [0.0], mask=[True] * 6 + [False])


def test_unknown_key_and_bad_files_name_the_problem(tmp_path, bridge_norm_stats_file):
    with pytest.raises(ConfigurationError, match=r"unnorm_key 'libero_10'; available: \['bridge_orig'\]"):
        NormStats.from_json(bridge_norm_stats_file, "libero_10")
    with pytest.raises(ConfigurationError, match="does not exist"):
        NormStats.from_json(tmp_path / "absent.json", "bridge_orig")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        NormStats.from_json(tmp_path / "bad.json", "bridge_orig")
    (tmp_path / "nan.json").write_text(json.dumps({"k": {"action": {"q01": [float("nan")] * 7, "q99": [1] * 7}}}))
    with pytest.raises(InvalidInputError, match="non-finite"):
        NormStats.from_json(tmp_path / "nan.json", "k")
    (tmp_path / "partial.json").write_text(json.dumps({"k": {"action": {"q01": [0] * 7}}}))
    with pytest.raises(ConfigurationError, match="lacks q01/q99"):
        NormStats.from_json(tmp_path / "partial.json", "k")


def test_libero_bounds_unnormalize_all_seven_dims_and_binarize_the_gripper_as_the_reference():
    """declare-lab/nora's LIBERO path: 0.5 (x + 1)(high - low) + low on all 7 dims, then
    normalize_gripper_action(binarize=True) (sign(2 g - 1)), invert_gripper_action (LIBERO's
    -1 = open) and ``where(g >= 0, 1, g)``; here the same decision in our 1 = open convention."""
    from conftest import shared_data_path

    path = shared_data_path("norm_stats", "nora_libero_bounds.json")
    s = NormStats.from_json(path, "libero_10")
    raw = json.loads(path.read_text())["keys"]["libero_10"]
    np.testing.assert_array_equal(s.q01, raw["low"])
    np.testing.assert_array_equal(s.q99, raw["high"])
    assert s.mask.tolist() == [True] * 7 and s.binarize_gripper
    x = np.random.default_rng(3).uniform(-1, 1, (64, 7))
    x[:3, 6] = [0.0, 1e-9, -1e-9]
    low, high = np.array(raw["low"]), np.array(raw["high"])
    ref = 0.5 * (x + 1) * (high - low) + low
    ref_g = np.sign(2 * ref[:, 6] - 1)  # normalize_gripper_action(binarize=True)
    ref_g = -ref_g  # invert_gripper_action: -1 = open, +1 = close
    ref_g = np.where(ref_g >= 0.0, 1.0, ref_g)
    ours = s.finish_gripper(s.unnormalize(x))
    np.testing.assert_allclose(ours[:, :6], ref[:, :6], rtol=0, atol=1e-12)
    assert ours[:, 6].tolist() == [1.0 if g == -1.0 else 0.0 for g in ref_g]  # LIBERO -1 (open) -> 1
    assert ours[:3, 6].tolist() == [0.0, 1.0, 0.0]
    bridge = NormStats(q01=[0.0] * 7, q99=[1.0] * 7, mask=[True] * 6 + [False])
    assert not bridge.binarize_gripper and bridge.finish_gripper(x) is x


# --------------------------------------------------------------------------- rotations and poses


def test_euler_convention_is_rz_ry_rx():
    rpy = np.array([0.3, -0.7, 1.9])
    np.testing.assert_allclose(euler_to_matrix(rpy), _rz(1.9) @ _ry(-0.7) @ _rx(0.3), atol=1e-15)
    np.testing.assert_allclose(matrix_to_euler(euler_to_matrix(rpy)), rpy, atol=1e-12)


def test_zero_euler_state_has_the_gripper_pointing_down():
    pose = bridge_state_to_pose(np.array([0.3, 0.0, 0.1, 0, 0, 0, 1]))
    np.testing.assert_array_equal(pose[:3, :3], DOWN)
    np.testing.assert_allclose(pose[:3, :3] @ [1, 0, 0], [0, 0, -1])  # approach axis points down
    np.testing.assert_array_equal(pose[:3, 3], [0.3, 0.0, 0.1])


def test_bridge_state_pose_round_trip_on_real_states(bridge_episodes):
    for path in bridge_episodes:
        for s in np.load(path)["state"].astype(np.float64):
            back = pose_to_bridge_state(bridge_state_to_pose(s), gripper=s[6])
            np.testing.assert_allclose(back[:3], s[:3], atol=1e-12)
            np.testing.assert_allclose(euler_to_matrix(back[3:6]), euler_to_matrix(s[3:6]), atol=1e-12)
            np.testing.assert_allclose(back[3:6], s[3:6], atol=1e-9)  # real states are far from gimbal lock
            assert back[6] == s[6]


# --------------------------------------------------------------------------- Bridge deltas


def _target() -> np.ndarray:
    return make_pose(euler_to_matrix([0.2, -0.3, 0.5]) @ DOWN, [0.30, 0.05, 0.12])


def test_translation_is_in_the_base_frame_whatever_the_orientation():
    target = _target()
    nxt = apply_bridge_delta(target, measured_position=[0.29, 0.04, 0.13], delta=[0.01, -0.02, 0.03, 0, 0, 0, 1])
    np.testing.assert_allclose(nxt[:3, 3], [0.31, 0.03, 0.15], atol=1e-15)
    np.testing.assert_allclose(nxt[:3, :3], target[:3, :3], atol=1e-15)


def test_rotation_is_about_the_measured_point_with_base_axes_applied_to_the_target():
    target = _target()
    d = np.array([0.02, 0.0, -0.01, 0.1, -0.05, 0.2, 0.0])
    r = _rz(0.2) @ _ry(-0.05) @ _rx(0.1)
    # Measured at the target: the EE turns in place, then translates.
    nxt = apply_bridge_delta(target, target[:3, 3], d)
    np.testing.assert_allclose(nxt[:3, :3], r @ target[:3, :3], atol=1e-15)
    np.testing.assert_allclose(nxt[:3, 3], target[:3, 3] + d[:3], atol=1e-15)
    # Measured elsewhere (the arm lags its target): the target swings about the measured point.
    m = np.array([0.28, 0.07, 0.10])
    nxt = apply_bridge_delta(target, m, d)
    np.testing.assert_allclose(nxt[:3, 3], m + r @ (target[:3, 3] - m) + d[:3], atol=1e-15)
    np.testing.assert_allclose(nxt[:3, :3], r @ target[:3, :3], atol=1e-15)


def test_action_to_command_is_the_delta_per_second():
    a = np.array([0.01, -0.02, 0.005, 0.1, 0.0, -0.2, 0.0])
    cmd = action_to_command(a, step_period=0.2, stamp=5.0, chunk_id=3, index=1, observation_stamp=4.9)
    np.testing.assert_allclose(cmd.linear, [0.05, -0.1, 0.025])
    np.testing.assert_allclose(cmd.angular * 0.2, Rotation.from_euler("xyz", a[3:6]).as_rotvec())
    assert (cmd.gripper, cmd.stamp, cmd.chunk_id, cmd.index, cmd.observation_stamp) == (0.0, 5.0, 3, 1, 4.9)
    with pytest.raises(InvalidInputError, match="7 values"):
        action_to_command(np.zeros(6), 0.2, 0.0)
    assert EndEffectorCommand.hold(1.0, 0.5).is_zero() and not cmd.is_zero()


def test_a_nan_action_reaches_the_safety_filter_as_nan_not_zero():
    cmd = action_to_command(np.array([0, np.nan, 0, 0, 0, np.nan, 1.0]), 0.2, 0.0)
    assert np.isnan(cmd.linear[1]) and np.isnan(cmd.angular[2])
    assert not cmd.is_zero()


@pytest.mark.parametrize("ticks", [1, 4, 6])
def test_integrating_the_command_over_a_step_reproduces_the_bridge_delta(bridge_episodes, ticks):
    """Control ticks at 5, 20 and 30 Hz over one 0.2 s step land exactly where one Bridge
    step does. The rotation centre moves with the commanded translation (the EE point is
    carried along), which is what makes the split exact."""
    period = 0.2
    dt = period / ticks
    for path in bridge_episodes[:8]:
        data = np.load(path)
        for s, a in zip(data["state"].astype(np.float64), data["action"].astype(np.float64), strict=True):
            start = bridge_state_to_pose(s)
            measured = start[:3, 3] + np.array([0.004, -0.003, 0.002])  # the arm lags its target
            expected = apply_bridge_delta(start, measured, a)
            cmd = action_to_command(a, period, stamp=0.0)
            pose = start
            for i in range(ticks):
                pose = integrate_twist(pose, measured + cmd.linear * dt * i, cmd.linear, cmd.angular, dt)
            np.testing.assert_allclose(pose, expected, atol=1e-12)


def test_integrating_with_a_fixed_rotation_centre_is_not_the_bridge_step():
    """The pitfall the test above avoids: keeping the centre fixed across ticks rotates the
    translation of earlier ticks, so a large rotated step drifts by millimetres."""
    a = np.array([0.05, 0.0, 0.0, 0.0, 0.0, 0.25, 1.0])
    start = make_pose(DOWN, [0.3, 0.0, 0.1])
    cmd = action_to_command(a, 0.2, stamp=0.0)
    pose = start
    for _ in range(6):
        pose = integrate_twist(pose, start[:3, 3], cmd.linear, cmd.angular, 0.2 / 6)
    drift = np.linalg.norm(pose[:3, 3] - apply_bridge_delta(start, start[:3, 3], a)[:3, 3])
    assert drift > 1e-3


# --------------------------------------------------------------------------- ActionChunk


def test_action_chunk_validates_and_freezes():
    chunk = ActionChunk(actions=[[0.01, 0, 0, 0, 0, 0, 1.0]], token_ids=[np.int64(151670)])
    assert chunk.horizon == 1 and chunk.token_ids == (151670,) and chunk.step_period == 0.2
    with pytest.raises(ValueError):
        chunk.actions[0, 0] = 1.0
    with pytest.raises(InvalidInputError, match="non-finite value at step 1, dim 3"):
        ActionChunk(actions=[[0] * 6 + [1], [0, 0, 0, np.nan, 0, 0, 1]])
    with pytest.raises(InvalidInputError, match=r"gripper values must lie in \[0, 1\]"):
        ActionChunk(actions=[[0] * 6 + [1.2]])
    with pytest.raises(InvalidInputError, match=r"\(T, 7\)"):
        ActionChunk(actions=np.zeros((0, 7)))
    with pytest.raises(InvalidInputError, match="step_period"):
        ActionChunk(actions=[[0] * 7], step_period=0.0)
