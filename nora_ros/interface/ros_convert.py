"""Conversions between ROS 2 messages and the core's types, without importing ROS.

The nodes in :mod:`nora_ros.nodes` are thin shells; what they compute lives here, where it is
tested without a ROS installation (DESIGN.md section 2). Every function that builds a message
takes the message *class* as an argument (``sensor_msgs.msg.Image`` in a node, a plain stand-in
in a test), and every function that reads one only touches its fields (duck typing). Values
are written with the Python types rosidl's generated setters accept (``float`` for float64,
``int`` for integers, ``array.array`` for numeric arrays), so the same code works on real
messages.

Bad input raises :class:`nora_ros.errors.InvalidInputError` naming the problem: an image in an
unsupported encoding, a ``step`` or data size that does not match, a non-finite stamp, a joint
missing from a ``JointState``. Nothing is silently padded, cropped or zeroed.
"""

from __future__ import annotations

import array
import math
from collections.abc import Mapping, Sequence

import numpy as np

from nora_ros.actions import ACTION_DIM, ActionChunk, EndEffectorCommand
from nora_ros.camera.frame import Frame
from nora_ros.errors import InvalidInputError

IMAGE_CHANNELS: Mapping[str, int] = {"rgb8": 3, "bgr8": 3, "mono8": 1}
"""sensor_msgs/Image encodings we read and write, with their channel counts (8 bits each)."""

_NS = 1_000_000_000


# --------------------------------------------------------------------------- time


def stamp_to_seconds(stamp) -> float:
    """A ``builtin_interfaces/Time`` (``sec``, ``nanosec``) as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def split_seconds(seconds: float) -> tuple[int, int]:
    """Float seconds as ``(sec, nanosec)`` with ``0 <= nanosec < 1e9``, rounded to the nanosecond.

    Negative and non-finite times raise: a ROS stamp cannot hold them, and a NaN stamp would
    defeat every age check downstream.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidInputError(f"a stamp must be a finite, non-negative number of seconds, got {seconds}")
    total_ns = round(seconds * _NS)
    return int(total_ns // _NS), int(total_ns % _NS)


def fill_stamp(stamp, seconds: float):
    """Set a ``builtin_interfaces/Time`` in place from float seconds; returns it."""
    stamp.sec, stamp.nanosec = split_seconds(seconds)
    return stamp


def seconds_to_stamp(seconds: float, time_cls):
    """A new ``time_cls`` (``builtin_interfaces.msg.Time``) holding ``seconds``."""
    sec, nanosec = split_seconds(seconds)
    return time_cls(sec=sec, nanosec=nanosec)


def _fill_header(msg, stamp: float, frame_id: str) -> None:
    fill_stamp(msg.header.stamp, stamp)
    msg.header.frame_id = str(frame_id)


# --------------------------------------------------------------------------- images


def _data_bytes(data) -> np.ndarray:
    """The message's ``uint8[]`` data as a flat uint8 array (no copy when possible)."""
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _byte_array(a: np.ndarray) -> array.array:
    """``a``'s bytes as the ``array.array('B')`` rosidl stores uint8[] in, copied once."""
    out = array.array("B")
    out.frombytes(memoryview(np.ascontiguousarray(a)).cast("B"))
    return out


def image_to_array(msg) -> np.ndarray:
    """A ``sensor_msgs/Image`` as ``HxWx3`` (rgb8, bgr8) or ``HxW`` (mono8) uint8, row padding removed.

    ``step`` (bytes per row) may exceed ``width * channels`` (drivers pad rows for alignment);
    the padding is cut off. The data must hold exactly ``step * height`` bytes, as the message
    definition says.
    """
    encoding = str(msg.encoding)
    if encoding not in IMAGE_CHANNELS:
        raise InvalidInputError(
            f"image encoding '{encoding}' is not supported; use one of {sorted(IMAGE_CHANNELS)} "
            "(e.g. set the camera driver's pixel format to rgb8, or republish through image_proc)"
        )
    channels = IMAGE_CHANNELS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height < 1 or width < 1:
        raise InvalidInputError(f"image is empty: {height}x{width}")
    row = width * channels
    if step < row:
        raise InvalidInputError(f"image step {step} is smaller than width x channels = {width} x {channels} = {row}")
    flat = _data_bytes(msg.data)
    if flat.size != step * height:
        raise InvalidInputError(
            f"image data holds {flat.size} bytes; {encoding} {height}x{width} with step {step} needs "
            f"step x height = {step * height}"
        )
    rows = flat.reshape(height, step)[:, :row]
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.ascontiguousarray(rows).reshape(shape)


def image_to_frame(msg) -> Frame:
    """A ``sensor_msgs/Image`` as a :class:`Frame` stamped with the header's time.

    rgb8 and bgr8 keep their encoding (the policy converts once, where it preprocesses); a mono8
    image becomes rgb8 with the grey value in every channel, because the model takes colour input.
    """
    img = image_to_array(msg)
    encoding = str(msg.encoding)
    if encoding == "mono8":
        img = np.repeat(img[:, :, None], 3, axis=2)
        encoding = "rgb8"
    return Frame(
        image=img,
        stamp=stamp_to_seconds(msg.header.stamp),
        encoding=encoding,
        frame_id=str(msg.header.frame_id) or "camera",
    )


def array_to_image(image: np.ndarray, encoding: str, msg_cls, stamp: float, frame_id: str, step: int | None = None):
    """A new ``msg_cls`` (``sensor_msgs.msg.Image``) holding ``image``.

    ``image`` is ``HxWx3`` uint8 for rgb8 / bgr8, ``HxW`` (or ``HxWx1``) for mono8. ``step``
    defaults to ``width * channels``; a larger one pads each row with zeros (what some drivers
    do; used to test readers).
    """
    if encoding not in IMAGE_CHANNELS:
        raise InvalidInputError(f"image encoding '{encoding}' is not supported; use one of {sorted(IMAGE_CHANNELS)}")
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InvalidInputError(f"image must be uint8 for {encoding}, got {img.dtype}")
    channels = IMAGE_CHANNELS[encoding]
    if channels == 1 and img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if img.ndim != expected_ndim or (channels == 3 and img.shape[2] != 3) or img.shape[0] < 1 or img.shape[1] < 1:
        want = "HxW" if channels == 1 else "HxWx3"
        raise InvalidInputError(f"{encoding} image must be {want}, got shape {img.shape}")
    height, width = int(img.shape[0]), int(img.shape[1])
    row = width * channels
    step = row if step is None else int(step)
    if step < row:
        raise InvalidInputError(f"step {step} is smaller than width x channels = {row}")
    rows = img.reshape(height, row)
    if step > row:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row] = rows
        rows = padded
    msg = msg_cls()
    _fill_header(msg, stamp, frame_id)
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = step
    msg.data = _byte_array(rows)
    return msg


def frame_to_image(frame: Frame, msg_cls, frame_id: str | None = None):
    """A :class:`Frame` as a ``sensor_msgs/Image`` in the frame's own encoding."""
    return array_to_image(frame.image, frame.encoding, msg_cls, frame.stamp, frame_id or frame.frame_id)


def compressed_to_frame(msg) -> Frame:
    """A ``sensor_msgs/CompressedImage`` (jpeg or png, as image_transport's compressed plugin
    sends over a slow link) as a bgr8 :class:`Frame`."""
    import cv2  # lazy: only the policy node reading compressed images needs OpenCV

    buf = _data_bytes(msg.data)
    if buf.size == 0:
        raise InvalidInputError("compressed image holds no data")
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if img is None:
        raise InvalidInputError(f"compressed image (format '{msg.format}', {buf.size} bytes) does not decode")
    return Frame(image=img, stamp=stamp_to_seconds(msg.header.stamp), encoding="bgr8",
                 frame_id=str(msg.header.frame_id) or "camera")


def frame_to_compressed(frame: Frame, msg_cls, quality: int, frame_id: str | None = None):
    """A :class:`Frame` as a JPEG ``sensor_msgs/CompressedImage`` (for a slow link to a policy on
    another computer); ``format`` is what image_transport's compressed plugin writes."""
    import cv2  # lazy: only a camera node publishing compressed images needs OpenCV

    if not 1 <= int(quality) <= 100:
        raise InvalidInputError(f"JPEG quality must lie in [1, 100], got {quality}")
    bgr = frame.image if frame.encoding == "bgr8" else frame.image[..., ::-1]
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise InvalidInputError("JPEG encoding failed")
    msg = msg_cls()
    _fill_header(msg, frame.stamp, frame_id or frame.frame_id)
    msg.format = f"{frame.encoding}; jpeg compressed bgr8"
    msg.data = _byte_array(buf)
    return msg


def camera_info(msg_cls, height: int, width: int, stamp: float, frame_id: str):
    """An uncalibrated ``sensor_msgs/CameraInfo`` for an image of ``height x width``.

    All-zero K/P mark the camera as uncalibrated (REP 104): the policy needs no intrinsics, and
    inventing them would mislead tools that do.
    """
    msg = msg_cls()
    _fill_header(msg, stamp, frame_id)
    msg.height = int(height)
    msg.width = int(width)
    msg.distortion_model = "plumb_bob"
    return msg


# --------------------------------------------------------------------------- commands and chunks


def _set_vector(vec, values: np.ndarray) -> None:
    vec.x, vec.y, vec.z = (float(v) for v in values)


def _get_vector(vec) -> np.ndarray:
    return np.array([vec.x, vec.y, vec.z], dtype=np.float64)


def command_to_msg(cmd: EndEffectorCommand, msg_cls, frame_id: str = ""):
    """An :class:`EndEffectorCommand` as a ``nora_ros/EndEffectorCommand`` message."""
    msg = msg_cls()
    _fill_header(msg, cmd.stamp, frame_id)
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
    _fill_header(msg, chunk.stamp, frame_id)
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
    _fill_header(msg, stamp, frame_id)
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
    _fill_header(msg, stamp, "")
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
    safety_events: Sequence[str] = (),
    recording_path: str = "",
    results_file: str = "",
):
    """A ``nora_ros/TrialResult`` message (header stamp = end time)."""
    if not (math.isfinite(score_value) and 0.0 <= score_value <= 1.0):
        raise InvalidInputError(f"score value must lie in [0, 1], got {score_value}")
    msg = msg_cls()
    _fill_header(msg, end_time, "")
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
    msg.duration = float(max(0.0, end_time - start_time))
    msg.safety_events = [str(e) for e in safety_events]
    msg.recording_path = str(recording_path)
    msg.results_file = str(results_file)
    return msg


# --------------------------------------------------------------------------- simulator ground truth


def ground_truth_to_json(truth: Mapping[str, object], stamp: float) -> str:
    """The simulator's ground truth (:meth:`nora_ros.sim.world.SimWorld.ground_truth`) as JSON text
    for ``sim/ground_truth`` (std_msgs/String), stamped like the camera frame it goes with.
    Arrays become nested lists; the scripted expert policy reads it back as ``Frame.extras``."""
    import json

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
    import json

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
    _fill_header(msg, stamp, "")
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
    _fill_header(msg, stamp, "")
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
