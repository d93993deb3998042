"""Input checks of the safety filter: what makes a command or an arm measurement untrustworthy.

Each returns ``(limit, detail)`` for the first problem found, or None. A rejected input makes
the filter hold still; the detail names the field and the value.
"""

from __future__ import annotations

import math

import numpy as np

from nora_ros.actions import EndEffectorCommand
from nora_ros.robot.kinematics import WidowXModel
from nora_ros.safety.config import SafetyConfig
from nora_ros.safety.status import Limit


def check_state(model: WidowXModel, config: SafetyConfig, state, now: float | None) -> tuple[Limit, str] | None:
    """Why the arm measurement ``state`` cannot be trusted at ``now`` (None: it can; ``now`` None: no age check)."""
    n = model.n_joints
    try:
        joints = np.asarray(state.joints, dtype=np.float64)
        pose = np.asarray(state.ee_pose, dtype=np.float64)
        stamp = float(state.stamp)
        gripper = float(state.gripper)
    except (AttributeError, TypeError, ValueError) as exc:
        return Limit.STALE_STATE, f"arm state is malformed: {exc}"
    if joints.shape != (n,) or pose.shape != (4, 4):
        return Limit.STALE_STATE, (f"arm state has joints {joints.shape} and pose {pose.shape}; "
                                   f"{model.name} needs ({n},) and (4, 4)")
    if not (all(math.isfinite(v) for v in joints.tolist()) and all(math.isfinite(v) for v in pose.ravel().tolist())
            and math.isfinite(stamp) and math.isfinite(gripper)):
        return Limit.NON_FINITE, "arm state has non-finite values (joints, pose, gripper or stamp)"
    if now is not None and now - stamp > config.max_state_age:
        return Limit.STALE_STATE, (f"arm state is {now - stamp:.3f} s old (max_state_age "
                                   f"{config.max_state_age} s)")
    return None


def check_command(cfg: SafetyConfig, cmd: EndEffectorCommand, now: float, last_stamp: float,
                  obs_stamp: float) -> tuple[Limit, str] | None:
    """Why ``cmd`` must be rejected at ``now`` (None: it may run), given the last accepted command
    stamp and the newest observation stamp used so far."""
    for name, values in (("linear", cmd.linear), ("angular", cmd.angular)):
        if not all(math.isfinite(v) for v in values.tolist()):
            return Limit.NON_FINITE, f"command {name} velocity {values.tolist()} is not finite; held"
    for name in ("gripper", "stamp", "observation_stamp"):
        value = float(getattr(cmd, name))
        if not math.isfinite(value):
            return Limit.NON_FINITE, f"command {name} is {value}; held"
    if not 0.0 <= cmd.gripper <= 1.0:
        return Limit.INVALID_COMMAND, f"command gripper {cmd.gripper} outside [0, 1] (1 = open); held"
    if cmd.stamp < last_stamp:
        return Limit.OUT_OF_ORDER, (f"command stamp {cmd.stamp:.6f} s is older than the last accepted "
                                    f"{last_stamp:.6f} s; held")
    age = now - cmd.stamp
    if abs(age) > cfg.max_command_age:
        when = f"{age:.3f} s old" if age > 0 else f"{-age:.3f} s in the future"
        return Limit.STALE_COMMAND, f"command is {when} (max_command_age {cfg.max_command_age} s); held"
    if cmd.observation_stamp > cmd.stamp:
        return Limit.OUT_OF_ORDER, (f"command's observation stamp {cmd.observation_stamp:.6f} s is after the "
                                    f"command stamp {cmd.stamp:.6f} s; held")
    # A zero twist moves nothing, so the observation it claims to be based on does not matter:
    # the policy side sends such holds (stamped 0) whenever no action is due.
    if cmd.observation_stamp < obs_stamp and not cmd.is_zero():
        return Limit.OUT_OF_ORDER, (f"command's observation stamp {cmd.observation_stamp:.6f} s is older than "
                                    f"one already used ({obs_stamp:.6f} s); held")
    return None
