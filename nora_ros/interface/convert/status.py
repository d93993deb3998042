"""State and health: safety status, trial status and results, the simulator's ground truth
(JSON on a String) and ``/diagnostics``."""

from __future__ import annotations

import array
import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from nora_ros.errors import InvalidInputError
from nora_ros.interface.convert.stamps import fill_header, fill_stamp

# --------------------------------------------------------------------------- status messages


def safety_status_to_msg(
    msg_cls,
    *,
    stamp: float,
    frame_id: str = "",
    enabled: bool,
    estopped: bool,
    estop_reason: str = "",
    holding: bool,
    limits: Sequence[tuple[str, str]] = (),
    at_start: bool = False,
    start_trial_id: int = 0,
    ticks: int = 0,
    held_ticks: int = 0,
):
    """A ``nora_ros/SafetyStatus`` message; ``limits`` are ``(name, detail)`` pairs, in order."""
    msg = msg_cls()
    fill_header(msg, stamp, frame_id)
    msg.enabled = bool(enabled)
    msg.estopped = bool(estopped)
    msg.estop_reason = str(estop_reason)
    msg.holding = bool(holding)
    msg.limits = [str(name) for name, _ in limits]
    msg.details = [str(detail) for _, detail in limits]
    msg.at_start = bool(at_start)
    msg.start_trial_id = int(start_trial_id)
    msg.ticks = int(ticks)
    msg.held_ticks = int(held_ticks)
    return msg


def trial_state_value(msg_cls, state_name: str) -> int:
    """The ``nora_ros/TrialStatus`` constant for a state name (``"RUNNING"`` -> ``msg_cls.RUNNING``)."""
    name = str(state_name).upper()
    value = getattr(msg_cls, name, None)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"trial state '{state_name}' has no TrialStatus constant")
    return value


def trial_status_to_msg(
    msg_cls,
    *,
    stamp: float,
    trial_id: int,
    instruction: str,
    state_name: str,
    reason: str = "",
    steps: int = 0,
    start_pose: Sequence[float] = (),
):
    """A ``nora_ros/TrialStatus`` message for the supervisor's state ``state_name``."""
    msg = msg_cls()
    fill_header(msg, stamp, "")
    msg.trial_id = int(trial_id)
    msg.instruction = str(instruction)
    msg.state = trial_state_value(msg_cls, state_name)
    msg.state_name = str(state_name).upper()
    msg.reason = str(reason)
    msg.steps = int(steps)
    msg.start_pose = array.array("d", [float(v) for v in start_pose])
    return msg


def trial_state_name(msg) -> str:
    """The state name of a ``nora_ros/TrialStatus`` message, from its numeric ``state``."""
    for name in ("IDLE", "RESETTING", "RUNNING", "AWAITING_SCORE", "DONE", "ABORTED"):
        if getattr(type(msg), name, None) == msg.state:
            return name
    raise InvalidInputError(f"trial status holds unknown state {msg.state}")


def score_value_constant(msg_cls, score_name: str) -> int:
    """The ``nora_ros/TrialResult`` constant for a score name (``"success"`` -> ``msg_cls.SUCCESS``)."""
    name = str(score_name).upper() or "UNSCORED"
    value = getattr(msg_cls, name, None)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInputError(f"score '{score_name}' has no TrialResult constant")
    return value


def trial_result_to_msg(
    msg_cls,
    *,
    trial_id: int,
    task: str,
    instruction: str,
    model_id: str,
    score_name: str,
    score_value: float,
    note: str,
    start_time: float,
    end_time: float,
    steps: int,
    duration: float | None = None,
    safety_events: Sequence[str] = (),
    recording_path: str = "",
    results_file: str = "",
):
    """A ``nora_ros/TrialResult`` message (header stamp = end time). ``duration`` is the seconds
    the policy ran (the results file's ``duration_s``: RUNNING, without the move to the start
    pose); ``None``: end - start."""
    if not (math.isfinite(score_value) and 0.0 <= score_value <= 1.0):
        raise InvalidInputError(f"score value must lie in [0, 1], got {score_value}")
    msg = msg_cls()
    fill_header(msg, end_time, "")
    msg.trial_id = int(trial_id)
    msg.task = str(task)
    msg.instruction = str(instruction)
    msg.model_id = str(model_id)
    msg.score = score_value_constant(msg_cls, score_name)
    msg.score_value = float(score_value)
    msg.note = str(note)
    fill_stamp(msg.start_time, start_time)
    fill_stamp(msg.end_time, end_time)
    msg.steps = int(steps)
    msg.duration = float(max(0.0, end_time - start_time if duration is None else duration))
    msg.safety_events = [str(e) for e in safety_events]
    msg.recording_path = str(recording_path)
    msg.results_file = str(results_file)
    return msg


# --------------------------------------------------------------------------- simulator ground truth


def ground_truth_to_json(truth: Mapping[str, object], stamp: float) -> str:
    """The simulator's ground truth (:meth:`nora_ros.sim.world.SimWorld.ground_truth`) as JSON text
    for ``sim/ground_truth`` (std_msgs/String), stamped like the camera frame it goes with.
    Arrays become nested lists; the scripted expert policy reads it back as ``Frame.extras``."""

    def plain(v):
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (np.floating, np.integer, np.bool_)):
            return v.item()
        return v

    return json.dumps({"stamp": float(stamp), **plain(dict(truth))})


def ground_truth_from_json(text: str) -> tuple[float, dict[str, object]]:
    """``(stamp, truth)`` from :func:`ground_truth_to_json`'s text, poses as 4x4 numpy arrays."""

    try:
        data = json.loads(text)
        stamp = float(data.pop("stamp"))
        data["ee_pose"] = np.asarray(data["ee_pose"], dtype=np.float64).reshape(4, 4)
        data["objects"] = {k: np.asarray(v, dtype=np.float64).reshape(4, 4) for k, v in data["objects"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInputError(f"simulator ground truth is malformed: {exc}") from exc
    if "joints" in data:
        data["joints"] = np.asarray(data["joints"], dtype=np.float64)
    return stamp, data


# --------------------------------------------------------------------------- diagnostics


def diagnostics_to_msg(array_cls, status_cls, key_value_cls, reports, stamp: float, hardware_id: str = ""):
    """A ``diagnostic_msgs/DiagnosticArray`` from :class:`nora_ros.diagnostics.DiagnosticReport` items.

    ``level`` is a ROS ``byte``, which rosidl's Python code holds as a 1-byte ``bytes``.
    """
    msg = array_cls()
    fill_stamp(msg.header.stamp, stamp)
    out = []
    for report in reports:
        status = status_cls()
        status.level = bytes([int(report.level)])
        status.name = str(report.name)
        status.message = str(report.message)
        status.hardware_id = str(hardware_id)
        status.values = [key_value_cls(key=str(k), value=str(v)) for k, v in report.values.items()]
        out.append(status)
    msg.status = out
    return msg
