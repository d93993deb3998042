"""Small vector and rotation helpers for the filter's hot path, on plain floats.

scipy's ``Rotation`` is the reference (and what :mod:`nora_ros.actions` uses), but the filter
must decide a tick in well under 200 us on a loaded 2-core machine, where one numpy call on a
3-vector costs as much as twenty float operations. So vectors here are tuples of floats and
rotations 3x3 tuples of rows; ``test/safety/test_geometry.py`` checks them against scipy.
"""

from __future__ import annotations

import math

Vec = tuple[float, float, float]
Mat = tuple[Vec, Vec, Vec]

IDENTITY: Mat = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


def norm3(v) -> float:
    """Euclidean norm without overflow (a 1e300 command must not become inf)."""
    return math.hypot(v[0], v[1], v[2])


def scale3(v, s: float) -> Vec:
    return (v[0] * s, v[1] * s, v[2] * s)


def add3(a, b) -> Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def sub3(a, b) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def rotvec_matrix(v) -> Mat:
    """Rotation matrix of a rotation vector (Rodrigues' formula)."""
    x, y, z = v
    theta = math.hypot(x, y, z)
    if theta < 1e-15:
        return IDENTITY
    kx, ky, kz = x / theta, y / theta, z / theta
    c, s = math.cos(theta), math.sin(theta)
    t = 1.0 - c
    return (
        (c + kx * kx * t, kx * ky * t - kz * s, kx * kz * t + ky * s),
        (ky * kx * t + kz * s, c + ky * ky * t, ky * kz * t - kx * s),
        (kz * kx * t - ky * s, kz * ky * t + kx * s, c + kz * kz * t),
    )


def matmul3(a, b) -> Mat:
    b0, b1, b2 = b
    return tuple(
        (r[0] * b0[0] + r[1] * b1[0] + r[2] * b2[0],
         r[0] * b0[1] + r[1] * b1[1] + r[2] * b2[1],
         r[0] * b0[2] + r[1] * b1[2] + r[2] * b2[2])
        for r in a
    )  # type: ignore[return-value]


def matvec3(a, v) -> Vec:
    return (dot3(a[0], v), dot3(a[1], v), dot3(a[2], v))


def bridge_euler(rot) -> Vec:
    """Bridge-state (roll, pitch, yaw) of an end-effector rotation: Euler 'xyz' of ``R @ DOWN.T``.

    With ``DOWN = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]``, ``(R @ DOWN.T)[i] = (R[i][2], R[i][1],
    -R[i][0])``. Matches :func:`nora_ros.actions.pose_to_bridge_state` for pitch inside
    (-pi/2, pi/2).
    """
    pitch = math.asin(max(-1.0, min(1.0, -rot[2][2])))
    roll = math.atan2(rot[2][1], -rot[2][0])
    yaw = math.atan2(rot[1][2], rot[0][2])
    return roll, pitch, yaw


def rotation_angle(rot) -> float:
    """Angle (rad) of a rotation matrix."""
    c = (rot[0][0] + rot[1][1] + rot[2][2] - 1.0) / 2.0
    return math.acos(max(-1.0, min(1.0, c)))
