"""What moves the arm: end-effector commands, action chunks, joint states and joint
trajectories, to and from their messages."""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np

from nora_ros.actions import ACTION_DIM, ActionChunk, EndEffectorCommand
from nora_ros.errors import InvalidInputError
from nora_ros.interface.convert.stamps import fill_header, fill_stamp, split_seconds, stamp_to_seconds

# --------------------------------------------------------------------------- commands and chunks


def _set_vector(vec, values: np.ndarray) -> None:
    vec.x, vec.y, vec.z = (float(v) for v in values)


def _get_vector(vec) -> np.ndarray:
    return np.array([vec.x, vec.y, vec.z], dtype=np.float64)


def command_to_msg(cmd: EndEffectorCommand, msg_cls, frame_id: str = ""):
    """An :class:`EndEffectorCommand` as a ``nora_ros/EndEffectorCommand`` message."""
    msg = msg_cls()
    fill_header(msg, cmd.stamp, frame_id)
    _set_vector(msg.twist.linear, cmd.linear)
    _set_vector(msg.twist.angular, cmd.angular)
    msg.gripper = float(cmd.gripper)
    msg.chunk_id = int(cmd.chunk_id)
    msg.index = int(cmd.index)
    fill_stamp(msg.observation_stamp, cmd.observation_stamp)
    return msg


def command_from_msg(msg) -> EndEffectorCommand:
    """A ``nora_ros/EndEffectorCommand`` message as the core's :class:`EndEffectorCommand`.

    Values are not judged here (a NaN is passed on): the safety filter is the one place that
    rejects a command, with its reason, and holds.
    """
    return EndEffectorCommand(
        linear=_get_vector(msg.twist.linear),
        angular=_get_vector(msg.twist.angular),
        gripper=float(msg.gripper),
        stamp=stamp_to_seconds(msg.header.stamp),
        chunk_id=int(msg.chunk_id),
        index=int(msg.index),
        observation_stamp=stamp_to_seconds(msg.observation_stamp),
    )


def chunk_to_msg(chunk: ActionChunk, msg_cls, frame_id: str = "", latency: float = 0.0):
    """An :class:`ActionChunk` as a ``nora_ros/ActionChunk`` message (header stamp = its frame's time)."""
    msg = msg_cls()
    fill_header(msg, chunk.stamp, frame_id)
    msg.chunk_id = int(chunk.chunk_id)
    msg.model_id = str(chunk.model_id)
    msg.step_period = float(chunk.step_period)
    msg.horizon = chunk.horizon
    msg.actions = array.array("d", chunk.actions.reshape(-1).tolist())
    msg.token_ids = array.array("q", [int(t) for t in chunk.token_ids])
    msg.latency = float(latency)
    names = sorted(chunk.timings)
    msg.timing_names = names
    msg.timing_seconds = array.array("d", [float(chunk.timings[n]) for n in names])
    return msg


def chunk_from_msg(msg) -> ActionChunk:
    """A ``nora_ros/ActionChunk`` message as an :class:`ActionChunk` (validated on construction)."""
    flat = np.asarray(msg.actions, dtype=np.float64).reshape(-1)
    horizon = int(msg.horizon)
    if horizon < 1 or flat.size != horizon * ACTION_DIM:
        raise InvalidInputError(
            f"action chunk message holds {flat.size} values; horizon {horizon} x {ACTION_DIM} = "
            f"{horizon * ACTION_DIM} expected"
        )
    names = list(msg.timing_names)
    seconds = list(msg.timing_seconds)
    if len(names) != len(seconds):
        raise InvalidInputError(f"action chunk message has {len(names)} timing names but {len(seconds)} values")
    return ActionChunk(
        actions=flat.reshape(horizon, ACTION_DIM),
        step_period=float(msg.step_period),
        model_id=str(msg.model_id),
        timings=dict(zip(names, (float(s) for s in seconds), strict=True)),
        token_ids=tuple(int(t) for t in msg.token_ids),
        stamp=stamp_to_seconds(msg.header.stamp),
        chunk_id=int(msg.chunk_id),
    )


# --------------------------------------------------------------------------- joints


def joint_positions(msg, names: Sequence[str]) -> np.ndarray:
    """Positions of ``names`` from a ``sensor_msgs/JointState``, matched by name (drivers may
    publish joints in any order and with extra ones, e.g. the two fingers)."""
    index = {str(n): i for i, n in enumerate(msg.name)}
    positions = list(msg.position)
    if len(positions) != len(index):
        raise InvalidInputError(f"joint state has {len(index)} names but {len(positions)} positions")
    missing = [n for n in names if n not in index]
    if missing:
        raise InvalidInputError(f"joint state lacks {missing}; it has {sorted(index)}")
    out = np.array([positions[index[n]] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise InvalidInputError(f"joint state has non-finite positions {dict(zip(names, out.tolist(), strict=True))}")
    return out


def joint_state_msg(msg_cls, names: Sequence[str], positions: Sequence[float], stamp: float,
                    velocities: Sequence[float] | None = None):
    """A ``sensor_msgs/JointState`` message."""
    if len(names) != len(positions):
        raise InvalidInputError(f"{len(names)} joint names but {len(positions)} positions")
    msg = msg_cls()
    fill_header(msg, stamp, "")
    msg.name = [str(n) for n in names]
    msg.position = array.array("d", [float(p) for p in positions])
    if velocities is not None:
        msg.velocity = array.array("d", [float(v) for v in velocities])
    return msg


def joint_trajectory_msg(msg_cls, point_cls, duration_cls, names: Sequence[str], positions: Sequence[float],
                         duration: float, stamp: float):
    """A one-point ``trajectory_msgs/JointTrajectory``: reach ``positions`` ``duration`` s after ``stamp``."""
    if not (math.isfinite(duration) and duration >= 0):
        raise InvalidInputError(f"trajectory duration must be a finite, non-negative number of seconds, got {duration}")
    pos = [float(p) for p in positions]
    if len(pos) != len(names) or not all(math.isfinite(p) for p in pos):
        raise InvalidInputError(f"trajectory needs {len(names)} finite positions, got {pos}")
    msg = msg_cls()
    fill_header(msg, stamp, "")
    msg.joint_names = [str(n) for n in names]
    point = point_cls()
    point.positions = array.array("d", pos)
    sec, nanosec = split_seconds(duration)
    point.time_from_start = duration_cls(sec=sec, nanosec=nanosec)
    msg.points = [point]
    return msg


def trajectory_target(msg) -> tuple[list[str], np.ndarray, float]:
    """Names, final positions and duration (s) of a ``JointTrajectory``'s last point."""
    if not msg.points:
        raise InvalidInputError("joint trajectory has no points")
    point = msg.points[-1]
    names = [str(n) for n in msg.joint_names]
    pos = np.asarray(point.positions, dtype=np.float64).reshape(-1)
    if pos.size != len(names):
        raise InvalidInputError(f"joint trajectory point has {pos.size} positions for {len(names)} joints")
    if not np.all(np.isfinite(pos)):
        raise InvalidInputError(f"joint trajectory has non-finite positions {pos.tolist()}")
    duration = stamp_to_seconds(point.time_from_start)
    return names, pos, duration
