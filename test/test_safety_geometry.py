"""The filter's float-tuple geometry and closed-form IK, checked against scipy and the model's FK."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nora_ros.actions import bridge_state_to_pose, pose_to_bridge_state
from nora_ros.kinematics import WidowXModel, pose_error
from nora_ros.safety.analytic_ik import SphericalWristIK
from nora_ros.safety.geometry import bridge_euler, matmul3, matvec3, rotation_angle, rotvec_matrix


def test_rotvec_matrix_matches_scipy():
    rng = np.random.default_rng(0)
    for rv in [np.zeros(3), np.array([1e-9, 0, 0]), *rng.normal(0, 1.5, (200, 3))]:
        ours = np.array(rotvec_matrix(tuple(rv)))
        np.testing.assert_allclose(ours, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)
        assert rotation_angle(ours) == pytest.approx(min(np.linalg.norm(rv) % (2 * math.pi),
                                                         2 * math.pi - np.linalg.norm(rv) % (2 * math.pi)), abs=1e-6)


def test_bridge_euler_matches_pose_to_bridge_state():
    rng = np.random.default_rng(1)
    for _ in range(300):
        rpy = rng.uniform([-3.0, -1.5, -3.0], [3.0, 1.5, 3.0])
        pose = bridge_state_to_pose(np.r_[0.3, 0.0, 0.1, rpy])
        ours = bridge_euler(pose[:3, :3].tolist())
        np.testing.assert_allclose(ours, pose_to_bridge_state(pose)[3:6], atol=1e-9)
        np.testing.assert_allclose(ours, rpy, atol=1e-9)


def test_matmul_matvec():
    rng = np.random.default_rng(2)
    a, b, v = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=3)
    np.testing.assert_allclose(matmul3(a.tolist(), b.tolist()), a @ b, atol=1e-12)
    np.testing.assert_allclose(matvec3(a.tolist(), v.tolist()), a @ v, atol=1e-12)


@pytest.fixture(scope="module")
def wx250s():
    return WidowXModel.from_name("wx250s")


def test_fast_ik_only_for_spherical_wrist_models(wx250s):
    assert SphericalWristIK.for_model(wx250s) is not None
    assert SphericalWristIK.for_model(WidowXModel.from_name("wx250")) is None


def test_fast_ik_recovers_10000_random_poses(wx250s):
    """Every reachable pose comes back exactly; seeded near the answer it returns the answer
    (or, near a singularity where two branches are both within reach of the seed, the other)."""
    ik = SphericalWristIK.for_model(wx250s)
    rng = np.random.default_rng(3)
    qs = rng.uniform(wx250s.lower + 0.05, wx250s.upper - 0.05, (10_000, 6))
    qs[:, 4] = np.where(np.abs(qs[:, 4]) < 0.05, 0.3, qs[:, 4])  # keep off the wrist singularity
    poses = wx250s.fk(qs)
    sols = []
    for q, pose in zip(qs, poses, strict=True):
        sol, reason = ik.solve(pose, q + rng.uniform(-0.02, 0.02, 6), 0.1, 0.0)
        assert sol is not None, reason
        sols.append(sol)
    sols = np.array(sols)
    same = np.all(np.abs(sols - qs) < 1e-7, axis=1)
    assert same.mean() > 0.99
    back = wx250s.fk(sols)
    perr = np.linalg.norm(back[:, :3, 3] - poses[:, :3, 3], axis=1)
    rerr = [pose_error(a, b)[1] for a, b in zip(back, poses, strict=True)]
    assert perr.max() < 1e-9 and max(rerr) < 1e-7


def test_fast_ik_agrees_with_model_ik_and_respects_the_step(wx250s):
    ik = SphericalWristIK.for_model(wx250s)
    rng = np.random.default_rng(4)
    seed = wx250s.ik(bridge_state_to_pose([0.3, 0.0, 0.15, 0, 0, 0]), wx250s.sleep_joints).joints
    start = wx250s.fk(seed)
    agree = 0
    for _ in range(300):
        target = start.copy()
        target[:3, 3] += rng.uniform(-0.05, 0.05, 3)
        target[:3, :3] = Rotation.from_rotvec(rng.uniform(-0.25, 0.25, 3)).as_matrix() @ start[:3, :3]
        ours, _ = ik.solve(target, seed, 0.6, 0.05)
        ref = wx250s.ik(target, seed, max_joint_step=0.6, margin=0.05)
        assert (ours is not None) == ref.success
        if ours is not None:
            assert np.max(np.abs(ours - seed)) <= 0.6 + 1e-12
            assert wx250s.within_limits(ours, 0.05)
            assert max(pose_error(target, wx250s.fk(ours))) < 1e-9
            agree += 1
    assert agree > 250


def test_fast_ik_names_why_it_fails(wx250s):
    ik = SphericalWristIK.for_model(wx250s)
    seed = wx250s.sleep_joints
    far = bridge_state_to_pose([0.9, 0.0, 0.1, 0, 0, 0])
    sol, reason = ik.solve(far, seed, 10.0, 0.0)
    assert sol is None and reason.startswith("out of reach")
    near = wx250s.fk(np.array([0.0, 0.5, 0.5, 0.0, 1.0, 0.0]))
    sol, reason = ik.solve(near, seed, 0.01, 0.0)
    assert sol is None and "joint step over 0.010 rad" in reason
