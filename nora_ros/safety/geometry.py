"""Small rotation helpers for the filter's hot path.

scipy's ``Rotation`` is the reference (and what :mod:`nora_ros.actions` uses); constructing a
``Rotation`` costs ~10 us, and the filter needs several per tick within a 200 us budget, so
these closed forms are used per tick instead. ``test/test_safety_geometry.py`` checks them
against scipy.
"""

from __future__ import annotations

import math

import numpy as np

from nora_ros.actions import DOWN

_DOWN_T = np.ascontiguousarray(DOWN.T)


def rotvec_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    x, y, z = float(rotvec[0]), float(rotvec[1]), float(rotvec[2])
    theta = math.sqrt(x * x + y * y + z * z)
    if theta < 1e-12:
        return np.eye(3)
    kx, ky, kz = x / theta, y / theta, z / theta
    c, s = math.cos(theta), math.sin(theta)
    v = 1.0 - c
    return np.array(
        [
            [c + kx * kx * v, kx * ky * v - kz * s, kx * kz * v + ky * s],
            [ky * kx * v + kz * s, c + ky * ky * v, ky * kz * v - kx * s],
            [kz * kx * v - ky * s, kz * ky * v + kx * s, c + kz * kz * v],
        ]
    )


def bridge_euler(rot: np.ndarray) -> tuple[float, float, float]:
    """Bridge-state (roll, pitch, yaw) of an end-effector rotation: Euler 'xyz' of ``R @ DOWN.T``.

    Matches :func:`nora_ros.actions.pose_to_bridge_state` for pitch inside (-pi/2, pi/2).
    """
    m = rot @ _DOWN_T
    pitch = math.asin(max(-1.0, min(1.0, -float(m[2, 0]))))
    roll = math.atan2(float(m[2, 1]), float(m[2, 2]))
    yaw = math.atan2(float(m[1, 0]), float(m[0, 0]))
    return roll, pitch, yaw


def rotation_angle(rot: np.ndarray) -> float:
    """Angle (rad) of a rotation matrix."""
    c = (float(rot[0, 0] + rot[1, 1] + rot[2, 2]) - 1.0) / 2.0
    return math.acos(max(-1.0, min(1.0, c)))


def norm3(v: np.ndarray) -> float:
    """Euclidean norm of a 3-vector without overflow (a 1e300 command must not become inf)."""
    return math.hypot(float(v[0]), float(v[1]), float(v[2]))
