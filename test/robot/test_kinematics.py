"""WidowX kinematics: FK against modern_robotics, IK round trips, step bounds, failures with reasons."""

from __future__ import annotations

import math

import modern_robotics as mr
import numpy as np
import pytest

from nora_ros.actions import bridge_state_to_pose, euler_to_matrix, make_pose
from nora_ros.bench.kinematics import BRIDGE_LOWER, BRIDGE_STEP, BRIDGE_UPPER, MARGIN, bridge_like_joints
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.robot.ik import fk_error
from nora_ros.robot.kinematics import ROBOT_MODELS, WidowXModel, pose_error, rotation_log

BOX_LOWER = np.array([0.1, -0.20, -0.01])  # Bridge workspace (DESIGN.md section 6)
BOX_UPPER = np.array([0.45, 0.25, 0.30])


@pytest.fixture(params=ROBOT_MODELS)
def model(request) -> WidowXModel:
    return WidowXModel.from_name(request.param)


def random_joints(model: WidowXModel, n: int, rng: np.random.Generator, margin: float = 0.0) -> np.ndarray:
    return rng.uniform(model.lower + margin, model.upper - margin, size=(n, model.n_joints))


# --------------------------------------------------------------------------- model data


def test_models_follow_the_interbotix_description():
    s = WidowXModel.from_name("wx250s")
    assert s.joint_names == ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
    assert np.allclose(s.screw_axes[2], [0, 1, 0, -0.36065, 0, 0.04975])
    assert np.allclose(np.degrees(s.lower[1:3]), [-108, -123]) and np.allclose(np.degrees(s.upper[4]), 123)
    assert np.allclose(s.sleep_joints, [0, -1.80, 1.55, 0, 0.8, 0])
    assert s.max_joint_velocity == pytest.approx(math.pi)
    five = WidowXModel.from_name("wx250")
    assert five.joint_names == ("waist", "shoulder", "elbow", "wrist_angle", "wrist_rotate")
    assert np.allclose(five.screw_axes, np.delete(s.screw_axes, 3, axis=0))
    assert math.isinf(five.rotation_tolerance) and not five.full_pose


def test_unknown_model_names_the_choices():
    with pytest.raises(ConfigurationError, match="wx250s"):
        WidowXModel.from_name("px100")


def test_home_joints_give_the_home_pose(model):
    assert np.allclose(model.fk(model.home_joints), [[1, 0, 0, 0.458325], [0, 1, 0, 0], [0, 0, 1, 0.36065], [0, 0, 0, 1]])


# --------------------------------------------------------------------------- forward kinematics


def test_fk_matches_modern_robotics(model):
    rng = np.random.default_rng(1)
    qs = random_joints(model, 300, rng)
    batch = model.fk(qs)
    for q, pose in zip(qs, batch, strict=True):
        ref = mr.FKinSpace(model.home_pose, model.screw_axes.T, q)
        assert np.allclose(pose, ref, atol=1e-12)
        assert np.allclose(model.fk(q), ref, atol=1e-12)


def test_jacobian_matches_modern_robotics_and_finite_differences(model):
    rng = np.random.default_rng(2)
    for q in random_joints(model, 50, rng):
        pose, jac = model.fk_jacobian(q)
        js = mr.JacobianSpace(model.screw_axes.T, q)
        # geometric Jacobian: the linear rows are the velocity of the EE point, not of the origin
        linear = js[3:] + np.cross(js[:3].T, pose[:3, 3]).T
        assert np.allclose(jac[:3], js[:3], atol=1e-12) and np.allclose(jac[3:], linear, atol=1e-12)
        h = 1e-6
        for i in range(model.n_joints):
            dq = np.zeros(model.n_joints)
            dq[i] = h
            ahead = model.fk(q + dq)
            assert np.allclose((ahead[:3, 3] - pose[:3, 3]) / h, jac[3:, i], atol=1e-5)
            assert np.allclose(rotation_log(ahead[:3, :3] @ pose[:3, :3].T) / h, jac[:3, i], atol=1e-5)


def test_rotation_log_is_exact_near_zero_and_near_pi():
    for angle in (0.0, 1e-9, 0.3, math.pi - 1e-6, math.pi):
        axis = np.array([1.0, -2.0, 0.5]) / np.linalg.norm([1.0, -2.0, 0.5])
        rot = mr.MatrixExp3(mr.VecToso3(axis * angle))
        back = rotation_log(rot)
        assert np.allclose(mr.MatrixExp3(mr.VecToso3(back)), rot, atol=1e-9)
        assert np.linalg.norm(back) == pytest.approx(angle, abs=1e-9)


# --------------------------------------------------------------------------- inverse kinematics


def test_ik_recovers_10000_random_reachable_poses_from_a_near_seed(model):
    """The done criterion: within 1 mm and 0.01 rad (the solver is in fact exact to ~1e-12)."""
    rng = np.random.default_rng(3)
    qs = random_joints(model, 10_000, rng)
    targets = model.fk(qs)
    seeds = np.clip(qs + rng.normal(0.0, 0.05, qs.shape), model.lower, model.upper)
    solutions = np.empty_like(qs)
    for i in range(len(qs)):
        result = model.ik(targets[i], seeds[i])
        assert result.success, (qs[i], result.reason)
        solutions[i] = result.joints
    reached = model.fk(solutions)
    position = np.linalg.norm(reached[:, :3, 3] - targets[:, :3, 3], axis=1)
    rel = np.einsum("kji,kjl->kil", reached[:, :3, :3], targets[:, :3, :3])
    rotation = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
    assert position.max() < 1e-3 and rotation.max() < 0.01
    assert np.all(solutions >= model.lower) and np.all(solutions <= model.upper)
    # The branch nearest the seed is the one the joints came from.
    assert np.mean(np.max(np.abs(solutions - qs), axis=1) < 1e-6) > 0.99


def test_ik_with_a_step_bound_recovers_10000_random_poses_exactly():
    """The control-loop case (formerly the safety filter's own fast solver's test): seeded near
    the answer with a per-tick step bound, the answer comes back, exact to 1e-9."""
    model = WidowXModel.from_name("wx250s")
    rng = np.random.default_rng(3)
    qs = rng.uniform(model.lower + 0.05, model.upper - 0.05, (10_000, 6))
    qs[:, 4] = np.where(np.abs(qs[:, 4]) < 0.05, 0.3, qs[:, 4])  # off the wrist singularity (tested below)
    poses = model.fk(qs)
    sols = np.empty_like(qs)
    for i in range(len(qs)):
        result = model.ik(poses[i], qs[i] + rng.uniform(-0.02, 0.02, 6), max_joint_step=0.1)
        assert result.success, result.reason
        sols[i] = result.joints
    assert np.mean(np.all(np.abs(sols - qs) < 1e-7, axis=1)) > 0.99
    back = model.fk(sols)
    assert np.linalg.norm(back[:, :3, 3] - poses[:, :3, 3], axis=1).max() < 1e-9
    assert max(pose_error(a, b)[1] for a, b in zip(back, poses, strict=True)) < 1e-7


def test_ik_keeps_the_step_and_the_margin_for_nearby_targets():
    model = WidowXModel.from_name("wx250s")
    rng = np.random.default_rng(4)
    seed = model.ik(bridge_state_to_pose([0.3, 0.0, 0.15, 0, 0, 0]), model.sleep_joints).joints
    start = model.fk(seed)
    ok = 0
    for _ in range(300):
        target = start.copy()
        target[:3, 3] += rng.uniform(-0.05, 0.05, 3)
        target[:3, :3] = mr.MatrixExp3(mr.VecToso3(rng.uniform(-0.25, 0.25, 3))) @ start[:3, :3]
        result = model.ik(target, seed, max_joint_step=0.6, margin=0.05)
        if result.success:
            assert np.max(np.abs(result.joints - seed)) <= 0.6 + 1e-12
            assert model.within_limits(result.joints, 0.05)
            assert max(pose_error(target, model.fk(result.joints))) < 1e-9
            ok += 1
        else:
            assert not feasible_by_modern_robotics(model, target, seed, 0.6), result.reason
    assert ok > 250


def test_the_fk_check_agrees_with_fk(model):
    """ik checks every answer with a float-only FK (ik.fk_error): it must be fk's exact equal."""
    rng = np.random.default_rng(7)
    for q in random_joints(model, 500, rng):
        other = model.fk(q + rng.normal(0.0, 0.2, model.n_joints))
        perr, rerr = fk_error(model, q.tolist(), other.tolist())
        ref = pose_error(model.fk(q), other)
        assert perr == pytest.approx(ref[0], abs=1e-12) and rerr == pytest.approx(ref[1], abs=1e-9)


def feasible_by_modern_robotics(model: WidowXModel, target: np.ndarray, seed: np.ndarray, bound: float) -> bool:
    """An independent check: does IKinSpace (Interbotix's solver), seeded from the current joints,
    find joints within the limits minus the margin and the step bound?"""
    if model.n_joints != 6:
        return False  # IKinSpace wants the full pose, which wx250 generally cannot reach
    joints, ok = mr.IKinSpace(model.screw_axes.T, model.home_pose, target, seed.copy(), 1e-4, 1e-5)
    joints = (joints + np.pi) % (2 * np.pi) - np.pi
    return bool(ok and model.within_limits(joints, MARGIN) and np.max(np.abs(joints - seed)) <= bound)


def test_5cm_steps_from_the_current_joints_succeed_99_percent(model):
    """One Bridge step (5 cm in 0.2 s) in a random direction from Bridge-like poses, within the
    joint-velocity limit over the step and 0.05 rad inside the limits. The few that fail are at
    a joint limit or out of reach: an independent solver finds no feasible answer either."""
    rng = np.random.default_rng(4)
    step_bound = model.max_joint_step(BRIDGE_STEP)
    tries = ok = 0
    while tries < 2000:
        q = bridge_like_joints(model, rng)
        pose = model.fk(q)
        direction = rng.normal(size=3)
        target = pose.copy()
        target[:3, 3] += 0.05 * direction / np.linalg.norm(direction)
        if np.any(target[:3, 3] < BRIDGE_LOWER[:3]) or np.any(target[:3, 3] > BRIDGE_UPPER[:3]):
            continue
        tries += 1
        result = model.ik(target, q, max_joint_step=step_bound, margin=MARGIN)
        if result.success:
            ok += 1
            assert np.max(np.abs(result.joints - q)) <= step_bound + 1e-12
            assert model.within_limits(result.joints, margin=MARGIN)
            assert result.position_error < 1e-3
        else:
            assert "limits minus margin" in result.reason or "out of reach" in result.reason or "step bound" in result.reason
            assert not feasible_by_modern_robotics(model, target, q, step_bound), result.reason
    assert ok / tries >= 0.99, f"{ok}/{tries} 5 cm steps succeeded"


def test_real_bridge_states_are_reachable_within_margin(bridge_episodes):
    model = WidowXModel.from_name("wx250s")
    for path in bridge_episodes:
        states = np.load(path)["state"]
        q = model.sleep_joints
        for state in states:
            result = model.ik(bridge_state_to_pose(state), q, margin=0.05)
            assert result.success, (path.name, state, result.reason)
            q = result.joints


def test_step_bound_is_respected_and_a_far_target_fails_with_the_reason():
    model = WidowXModel.from_name("wx250s")
    q = np.array([0.0, -0.3, 0.4, 0.0, 1.4, 0.0])
    target = model.fk(q)
    target[:3, 3] += [0.0, 0.15, -0.05]
    result = model.ik(target, q, max_joint_step=0.1)
    assert not result.success and result.joints is None
    assert "step bound" in result.reason and "waist" in result.reason
    unbounded = model.ik(target, q)
    assert unbounded.success and np.max(np.abs(unbounded.joints - q)) > 0.1
    near = model.fk(np.array([0.0, 0.5, 0.5, 0.0, 1.0, 0.0]))
    result = model.ik(near, model.sleep_joints, max_joint_step=0.01)
    assert not result.success and "more than the step bound 0.010 rad" in result.reason


def test_margin_keeps_solutions_inside_the_limits():
    model = WidowXModel.from_name("wx250s")
    q = np.array([0.2, -0.2, 0.3, 0.1, model.upper[4] - 0.01, 0.0])  # wrist angle 0.01 rad from its limit
    target = model.fk(q)
    assert model.ik(target, q).success
    result = model.ik(target, q, margin=0.05)
    assert not result.success
    assert "wrist_angle" in result.reason and "limits minus margin" in result.reason


def test_out_of_reach_and_non_finite_targets_fail_without_raising(model):
    far = make_pose(np.eye(3), [1.0, 0.0, 0.3])
    result = model.ik(far, model.sleep_joints)
    assert not result.success and "out of reach" in result.reason
    nan = model.fk(model.sleep_joints)
    nan[0, 3] = np.nan
    assert "non-finite" in model.ik(nan, model.sleep_joints).reason
    seed = model.sleep_joints.copy()
    seed[1] = np.inf
    assert "non-finite" in model.ik(model.fk(model.sleep_joints), seed).reason
    huge = make_pose(np.eye(3), [1e308, 1e308, 0.3])  # finite, though its sum overflows
    result = model.ik(huge, model.sleep_joints)
    assert not result.success and "out of reach" in result.reason
    with pytest.raises(InvalidInputError, match="4x4"):
        model.ik(np.eye(3), model.sleep_joints)
    with pytest.raises(InvalidInputError, match="joints"):
        model.ik(far, np.zeros(model.n_joints + 1))


def test_seed_outside_the_feasible_box_fails_with_the_joint_named():
    model = WidowXModel.from_name("wx250s")
    seed = model.sleep_joints.copy()
    seed[1] = model.lower[1] + 0.01  # inside the limits, but not 0.05 inside
    result = model.ik(model.fk(seed), seed, max_joint_step=0.02, margin=0.05)
    assert not result.success and "shoulder" in result.reason


def test_wrist_singularity_keeps_the_roll_joints_near_the_seed():
    """At wrist_angle = 0 forearm roll and wrist rotate share an axis: only their sum is fixed."""
    model = WidowXModel.from_name("wx250s")
    q = np.array([0.1, -0.4, 0.3, 0.7, 0.0, -0.2])
    seed = np.array([0.1, -0.4, 0.3, 0.65, 0.0, -0.15])
    result = model.ik(model.fk(q), seed, max_joint_step=0.1)
    assert result.success, result.reason
    assert result.joints[3] + result.joints[5] == pytest.approx(0.5, abs=1e-9)
    assert np.max(np.abs(result.joints - seed)) <= 0.1


def test_wx250_reaches_the_position_and_reports_the_orientation_residual():
    model = WidowXModel.from_name("wx250")
    q = np.array([0.3, -0.2, 0.5, 1.2, 0.4])
    pose = model.fk(q)
    twisted = pose.copy()
    twisted[:3, :3] = euler_to_matrix([0.0, 0.0, 0.2]) @ pose[:3, :3]  # yaw about the base z axis
    result = model.ik(twisted, q)
    assert result.success, result.reason
    reached = model.fk(result.joints)
    position, rotation = pose_error(twisted, reached)
    assert position < 1e-9
    assert rotation == pytest.approx(result.rotation_error, abs=1e-9)
    assert 0.01 < result.rotation_error <= 0.2 + 1e-9
    strict = model.ik(twisted, q, rotation_tolerance=0.01)
    assert not strict.success and "rotation error" in strict.reason


def test_wx250_tilts_the_pitch_when_the_nearest_orientation_cannot_be_held_there():
    """Position first: a target whose orientation would put the wrist out of reach is reached
    with the nearest pitch that fits, and the residual is reported."""
    model = WidowXModel.from_name("wx250")
    q = np.array([0.0, 0.5, -0.3, 0.3, 0.0])
    pose = model.fk(q)
    away = pose.copy()
    away[:3, :3] = euler_to_matrix([0.0, 1.0, 0.0]) @ pose[:3, :3]  # pitched 1 rad further down
    ideal = model.ik(away, q, margin=0.05, rotation_tolerance=1e-6)
    assert not ideal.success and "out of reach" in ideal.reason  # the wrist centre would be too far
    result = model.ik(away, q, margin=0.05)
    assert result.success, result.reason
    assert result.position_error < 1e-9 and model.within_limits(result.joints, 0.05)
    assert 0.1 < result.rotation_error < 1.0
    # no other pitch does better: a fine sweep of the feasible reachable orientations
    residuals = []
    for beta in np.linspace(-np.pi, np.pi, 721):
        tilted = away.copy()
        tilted[:3, :3] = euler_to_matrix([0.0, 0.0, result.joints[0]]) @ euler_to_matrix([0.0, beta, 0.0])
        r = model.ik(tilted, q, margin=0.05, rotation_tolerance=1e-9)
        if r.success:
            residuals.append(pose_error(away, model.fk(r.joints))[1])
    assert result.rotation_error <= min(residuals) + 1e-3


def test_within_limits_and_violations_name_the_joint(model):
    q = model.home_joints.copy()
    assert model.within_limits(q) and model.within_limits(q, margin=0.1)
    q[1] = model.upper[1] - 0.05
    assert model.within_limits(q) and not model.within_limits(q, margin=0.1)
    assert model.limit_violations(q, margin=0.1)[0].startswith("shoulder=")
    q[2] = np.nan
    assert not model.within_limits(q)
    assert not model.within_limits(model.home_joints, margin=math.nan)
    assert model.within_limits(model.home_joints, margin=0.1)  # the cached box is the margin's own
