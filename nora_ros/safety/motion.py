"""The safety filter's motion limits for one tick, as pure functions of the command, the limits
and what the filter remembers (previous velocities, open-loop budget used): the rotation first
(speed, acceleration, budget, orientation bounds), then the target's displacement (speed,
acceleration, budget, workspace box and floor). Each limit that acts appends
``(Limit, detail)`` to ``acted``; nothing is clipped silently.
"""

from __future__ import annotations

import numpy as np

from nora_ros.actions import EndEffectorCommand
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.geometry import (
    IDENTITY,
    add3,
    bridge_euler,
    dot3,
    matmul3,
    norm3,
    rotvec_matrix,
    scale3,
    sub3,
)
from nora_ros.safety.status import Limit

Vec3 = tuple[float, float, float]
ZERO3: Vec3 = (0.0, 0.0, 0.0)
ORIENTATION_BISECTIONS = 12
"""Bisection steps when a rotation would leave the orientation bounds: 1/4096 of the step."""


def limit_rotation(w: Vec3, w_prev: Vec3, r_t, ol_rotation: float, cfg: SafetyConfig, acted: list,
                   budget_detail: list[str]) -> tuple:
    """The commanded angular velocity ``w`` limited; returns ``(w, rot_step, r_new)``: the velocity,
    this tick's rotation and the target rotation it leads to from ``r_t``."""
    dt = cfg.tick_period
    n = norm3(w)
    if n > cfg.max_angular_speed:
        acted.append((Limit.ANGULAR_SPEED, f"requested {n:.4g} rad/s, limit {cfg.max_angular_speed} rad/s"))
        w = scale3(w, cfg.max_angular_speed / n)
    w, detail = limit_accel(w, w_prev, cfg.max_angular_accel * dt)
    if detail:
        acted.append((Limit.ANGULAR_ACCEL, f"{detail} rad/s in one tick, limit {cfg.max_angular_accel * dt:.4g}"))
    remaining = cfg.open_loop_rotation - ol_rotation
    angle = norm3(w) * dt
    if angle > remaining and angle > 0.0:
        w = scale3(w, max(remaining, 0.0) / angle)
        budget_detail.append(f"rotation {ol_rotation + angle:.4g} rad on one observation would exceed "
                             f"{cfg.open_loop_rotation} rad")
    rot_step = rotvec_matrix(scale3(w, dt))
    r_new = matmul3(rot_step, r_t)
    if rot_step is not IDENTITY:
        before = orientation_excess(cfg, r_t)
        if orientation_excess(cfg, r_new) > before + 1e-12:
            lo, hi = 0.0, 1.0
            for _ in range(ORIENTATION_BISECTIONS):
                mid = 0.5 * (lo + hi)
                if orientation_excess(cfg, matmul3(rotvec_matrix(scale3(w, mid * dt)), r_t)) > before + 1e-12:
                    hi = mid
                else:
                    lo = mid
            rpy = bridge_euler(r_new)
            acted.append((Limit.ORIENTATION, "target (roll, pitch, yaw) "
                          f"({rpy[0]:.3f}, {rpy[1]:.3f}, {rpy[2]:.3f}) rad would leave bounds "
                          f"{cfg.orientation_lower}..{cfg.orientation_upper}; rotation scaled by {lo:.3f}"))
            w = scale3(w, lo)
            rot_step = rotvec_matrix(scale3(w, dt))
            r_new = matmul3(rot_step, r_t)
    return w, rot_step, r_new


def limit_translation(d: Vec3, v_prev: Vec3, p_t: Vec3, ol_translation: float, cfg: SafetyConfig, acted: list,
                      budget_detail: list[str]) -> tuple:
    """The target's displacement ``d`` this tick limited; returns ``(d, p_new)``. Reports the
    open-loop budget (rotation's and translation's details in ``budget_detail``) once."""
    dt = cfg.tick_period
    n = norm3(d)
    if n > cfg.max_step_translation:
        acted.append((Limit.LINEAR_SPEED, f"requested {n / dt:.4g} m/s, limit {cfg.max_linear_speed} m/s"))
        d = scale3(d, cfg.max_step_translation / n)
    v, detail = limit_accel(scale3(d, 1.0 / dt), v_prev, cfg.max_linear_accel * dt)
    if detail:
        acted.append((Limit.LINEAR_ACCEL, f"{detail} m/s in one tick, limit {cfg.max_linear_accel * dt:.4g}"))
    d = scale3(v, dt)
    remaining = cfg.open_loop_translation - ol_translation
    n = norm3(d)
    if n > remaining and n > 0.0:
        d = scale3(d, max(remaining, 0.0) / n)
        budget_detail.append(f"translation {ol_translation + n:.4g} m on one observation would exceed "
                             f"{cfg.open_loop_translation} m")
    if budget_detail:
        acted.append((Limit.OPEN_LOOP_BUDGET, "; ".join(budget_detail) + "; waiting for a newer camera observation"))
    p_new = list(add3(p_t, d))
    lower = (cfg.workspace_lower[0], cfg.workspace_lower[1], cfg.floor_z)
    for axis in range(3):
        lo = min(lower[axis], p_t[axis])
        hi = max(cfg.workspace_upper[axis], p_t[axis])
        want = p_new[axis]
        if want < lo or want > hi:
            p_new[axis] = lo if want < lo else hi
            if axis == 2 and want < lo and cfg.floor_z > cfg.workspace_lower[2]:
                acted.append((Limit.FLOOR, f"target z {want:.4f} m below the floor {cfg.floor_z:.4f} m "
                              f"(table_z {cfg.table_z} + floor_margin {cfg.floor_margin}); stopped at the floor"))
            else:
                side = "below" if want < lo else "above"
                acted.append((Limit.WORKSPACE, f"target {'xyz'[axis]} {want:.4f} m {side} the workspace bound "
                              f"{p_new[axis]:.4f} m; clipped"))
    d = sub3(p_new, p_t)
    return d, p_new


def orientation_excess(cfg: SafetyConfig, rot) -> float:
    """How far (rad, summed over roll/pitch/yaw) ``rot`` lies outside the orientation bounds."""
    out = 0.0
    for a, lo, hi in zip(bridge_euler(rot), cfg.orientation_lower, cfg.orientation_upper, strict=True):
        if a < lo:
            out += lo - a
        elif a > hi:
            out += a - hi
    return out


def limit_accel(v, v_prev, max_dv: float) -> tuple:
    """Limit the change from ``v_prev`` to ``v`` to ``max_dv``; braking along ``v_prev`` is free.

    The reference is the point of the segment [0, v_prev] nearest ``v`` (any slower speed in
    the current direction), so only speeding up, turning and reversing are limited.
    Returns the limited velocity and a detail ("" when the limit did not act).
    """
    pp = dot3(v_prev, v_prev)
    s = 0.0 if pp == 0.0 else min(1.0, max(0.0, dot3(v, v_prev) / pp))
    ref = scale3(v_prev, s)
    dv = sub3(v, ref)
    n = norm3(dv)
    if n <= max_dv * (1.0 + 1e-9):  # at the limit exactly is within it
        return v, ""
    return add3(ref, scale3(dv, max_dv / n)), f"velocity change {n:.4g}"


def command_like(linear: np.ndarray, angular: np.ndarray, src: EndEffectorCommand) -> EndEffectorCommand:
    return EndEffectorCommand(linear, angular, src.gripper, src.stamp, src.chunk_id, src.index, src.observation_stamp)
