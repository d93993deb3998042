"""Recording the in-process runner as rosbag2, on the topics the nodes use.

:class:`TopicRecorder` turns what the runner sees (:class:`~nora_ros.runner.TickRecord`, the
supervisor's :class:`~nora_ros.trials.supervisor.TrialStatus` events) into exactly the messages the
sim, policy, safety and supervisor nodes would publish, converted by :mod:`nora_ros.interface.convert`
(the nodes' own conversions), so ``ros2 bag play`` of a simulated run drives the real nodes.

Two recorders plug into the supervisor's :class:`~nora_ros.trials.supervisor.Recorder` hook, both also
a status listener (:meth:`on_status`) and a tick sink (:meth:`on_tick`):

- :class:`TrialBags`: one bag per trial (``<folder>/trial_0001``...), its path in the trial's
  result. The bag holds the instruction and the RESETTING status, every tick while RUNNING,
  and the statuses up to the trial's end with its ``trial/result`` (export needs the score).
- :class:`SessionBag`: every trial in one bag, as ``ros2 bag record`` at the robot would.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.bag import topics as T
from nora_ros.bag.types import MessageClasses
from nora_ros.bag.writer import STORAGES, BagWriter
from nora_ros.errors import ConfigurationError

if TYPE_CHECKING:
    from nora_ros.runner import TickRecord
    from nora_ros.trials.state import TrialStatus

IMAGE_MODES = ("jpeg", "raw")
FINGERS = ("left_finger", "right_finger")


@dataclass(frozen=True)
class RecordOptions:
    """How a run is recorded.

    ``images``: ``jpeg`` stores sensor_msgs/CompressedImage on ``camera/image_raw/compressed``
    (what image_transport's compressed plugin publishes; about 20x smaller), ``raw`` stores
    sensor_msgs/Image on ``camera/image_raw``. ``storage``: ``mcap`` or ``sqlite3``.
    ``robot_model`` names the joints of ``joint_states``; ``base_frame`` is the commands' frame.
    """

    images: str = "jpeg"
    jpeg_quality: int = 90
    storage: str = "mcap"
    namespace: str = T.DEFAULT_NAMESPACE
    robot_model: str = "wx250s"
    base_frame: str = ""
    results_file: str = ""

    def __post_init__(self) -> None:
        if self.images not in IMAGE_MODES:
            raise ConfigurationError(f"images must be one of {IMAGE_MODES}, got '{self.images}'")
        if not (isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100):
            raise ConfigurationError(f"jpeg_quality must be an integer in [1, 100], got {self.jpeg_quality!r}")
        if self.storage not in STORAGES:
            raise ConfigurationError(f"storage must be one of {STORAGES}, got '{self.storage}'")

    @property
    def frame_id(self) -> str:
        return self.base_frame or f"{self.robot_model}/base_link"


class TopicRecorder:
    """Writes the runner's events to an open :class:`BagWriter` as the nodes' messages."""

    def __init__(self, writer: BagWriter, options: RecordOptions):
        from nora_ros.robot.kinematics import WidowXModel

        self.writer = writer
        self.options = options
        self.m = writer.classes
        self.joint_names = list(WidowXModel.from_name(options.robot_model).joint_names) + list(FINGERS)

    def status(self, event: TrialStatus) -> None:
        """A supervisor event on ``trial/status``; a new trial's instruction on ``instruction``
        (as the operator sent it), and a finished trial's result on ``trial/result``."""
        from nora_ros.interface.convert import trial_result_to_msg, trial_status_to_msg
        from nora_ros.trials.state import TrialState

        stamp = max(float(event.stamp), 0.0)
        if event.state is TrialState.RESETTING and event.reason.startswith("new trial"):
            self.writer.write(T.INSTRUCTION, self.m.String(data=event.instruction), stamp)
        self.writer.write(T.TRIAL_STATUS, trial_status_to_msg(
            self.m.TrialStatus, stamp=stamp, trial_id=event.trial_id, instruction=event.instruction,
            state_name=event.state.value, reason=event.reason, steps=event.steps,
            start_pose=event.start_pose), stamp)
        r = event.result
        if r is not None:
            self.writer.write(T.TRIAL_RESULT, trial_result_to_msg(
                self.m.TrialResult, trial_id=r.trial_id, task=r.task, instruction=r.instruction,
                model_id=r.model_id, score_name=r.score.kind.value, score_value=r.score.value or 0.0,
                note=r.score.note, start_time=max(r.start_time, 0.0), end_time=max(r.end_time, r.start_time, 0.0),
                steps=r.steps, duration=r.duration_s, safety_events=r.safety_events, recording_path=r.recording or "",
                results_file=self.options.results_file), stamp)

    def tick(self, rec: TickRecord) -> None:
        """One control tick: camera (with ground truth), joint states, chunk, cmd, cmd_safe,
        safety/status, in the order the nodes publish them, all at the tick's time."""
        from nora_ros.interface.convert import (
            camera_info,
            chunk_to_msg,
            command_to_msg,
            frame_to_compressed,
            frame_to_image,
            ground_truth_to_json,
            joint_state_msg,
            safety_status_to_msg,
        )
        from nora_ros.robot.kinematics import gripper_to_finger

        now, w, m, frame_id = rec.now, self.writer, self.m, self.options.frame_id
        frame = rec.frame
        if frame is not None:
            truth = {k: v for k, v in frame.extras.items() if k != "rendered"}
            if "objects" in truth and "ee_pose" in truth:  # the sim node publishes it first
                w.write(T.GROUND_TRUTH, m.String(data=ground_truth_to_json(truth, frame.stamp)), now)
            if self.options.images == "jpeg":
                w.write(T.COMPRESSED, frame_to_compressed(frame, m.CompressedImage, self.options.jpeg_quality), now)
            else:
                w.write(T.IMAGE, frame_to_image(frame, m.Image), now)
            h, wd = frame.image.shape[:2]
            w.write(T.CAMERA_INFO, camera_info(m.CameraInfo, h, wd, frame.stamp, frame.frame_id), now)
        state = rec.state
        finger = gripper_to_finger(state.gripper)
        w.write(T.JOINT_STATES, joint_state_msg(m.JointState, self.joint_names,
                                                list(state.joints) + [finger, finger], state.stamp), now)
        out = rec.policy
        if out.chunk is not None:
            w.write(T.ACTION_CHUNK, chunk_to_msg(out.chunk, m.ActionChunk, frame_id, out.latency), now)
        if out.command is not None:
            w.write(T.CMD, command_to_msg(out.command, m.EndEffectorCommand, frame_id), now)
        result = rec.result
        w.write(T.CMD_SAFE, command_to_msg(result.executed, m.EndEffectorCommand, frame_id), now)
        s = result.status
        w.write(T.SAFETY_STATUS, safety_status_to_msg(
            m.SafetyStatus, stamp=now, frame_id=frame_id, enabled=s.enabled, estopped=s.estopped,
            estop_reason=s.estop_reason, holding=result.holding,
            limits=[(lim.value, d) for lim, d in zip(s.limits, s.details, strict=True)],
            ticks=s.tick, held_ticks=s.held_ticks), now)


class TrialBags:
    """One bag per trial in ``folder``; a :class:`~nora_ros.trials.supervisor.Recorder` (see the
    module docstring). Wire it with ``TrialSupervisor(recorder=bags)``,
    ``supervisor.add_listener(bags.on_status)`` and the runner's ``on_tick=bags.on_tick``."""

    def __init__(self, folder: str | pathlib.Path, options: RecordOptions | None = None):
        self.folder = pathlib.Path(folder)
        self.options = options or RecordOptions()
        self.classes = MessageClasses()
        self.paths: list[pathlib.Path] = []
        self._bag: TopicRecorder | None = None
        self._trial = 0
        self._recording = False
        self._reset_event: TrialStatus | None = None

    # ------------------------------------------------------------------ Recorder
    def start(self, trial_id: int, instruction: str) -> str:
        self.close()
        path = self._free_path(f"trial_{trial_id:04d}")
        writer = BagWriter(path, storage=self.options.storage, namespace=self.options.namespace,
                           classes=self.classes)
        self._bag = TopicRecorder(writer, self.options)
        self._trial = trial_id
        if self._reset_event is not None and self._reset_event.trial_id == trial_id:
            self._bag.status(self._reset_event)
        self._recording = True
        self.paths.append(path)
        return str(path)

    def stop(self) -> None:
        """Ticks are no longer recorded; the bag closes after the trial's final status."""
        self._recording = False

    # ------------------------------------------------------------------ runner hooks
    def on_status(self, event: TrialStatus) -> None:
        from nora_ros.trials.state import TrialState

        if event.state is TrialState.RESETTING:
            self._reset_event = event
            return
        if self._bag is None or event.trial_id != self._trial:
            return
        self._bag.status(event)
        if event.state in (TrialState.DONE, TrialState.ABORTED):
            self.close()

    def on_tick(self, rec: TickRecord) -> None:
        if self._recording and self._bag is not None:
            self._bag.tick(rec)

    def close(self) -> None:
        """Finish the open bag, if any (also at the end of a session)."""
        bag, self._bag = self._bag, None
        self._recording = False
        if bag is not None:
            bag.writer.close()

    def _free_path(self, name: str) -> pathlib.Path:
        path, k = self.folder / name, 1
        while path.exists():  # an earlier session's bag: never overwrite a recording
            k += 1
            path = self.folder / f"{name}-{k}"
        return path


class SessionBag:
    """Every trial of a session in one bag at ``path`` (a :class:`~nora_ros.trials.supervisor.Recorder`
    whose ``start`` returns the same path for each trial); ticks are recorded while a trial runs."""

    def __init__(self, path: str | pathlib.Path, options: RecordOptions | None = None):
        self.options = options or RecordOptions()
        self.path = pathlib.Path(path)
        self._bag = TopicRecorder(BagWriter(self.path, storage=self.options.storage,
                                            namespace=self.options.namespace), self.options)
        self._recording = False

    def start(self, trial_id: int, instruction: str) -> str:
        self._recording = True
        return str(self.path)

    def stop(self) -> None:
        self._recording = False

    def on_status(self, event: TrialStatus) -> None:
        if not self._bag.writer.closed:
            self._bag.status(event)

    def on_tick(self, rec: TickRecord) -> None:
        if self._recording:
            self._bag.tick(rec)

    @property
    def counts(self) -> dict[str, int]:
        return dict(self._bag.writer.counts)

    def close(self) -> None:
        self._bag.writer.close()
