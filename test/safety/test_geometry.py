"""The filter's float-tuple geometry, checked against scipy and the pose helpers.

The filter's IK is :meth:`WidowXModel.ik`, tested in test_kinematics.py (the tests of the fast
solver it once had moved there)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from nora_ros.actions import bridge_state_to_pose, pose_to_bridge_state
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
