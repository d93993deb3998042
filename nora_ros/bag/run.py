"""A recorded run as the core's types: frames, chunks, commands, safety decisions, arm states,
trials.

:class:`RecordedRun` reads the topics of :mod:`nora_ros.bag.topics` from a
:class:`~nora_ros.bag.read.BagContents` through :mod:`nora_ros.interface.convert` (the nodes' own
conversions) and splits the run into trials (:class:`Trial`) by ``trial/status``: the policy
only acts while a trial is RUNNING, so that is what a replay covers. A topic that is missing or
holds bad messages becomes a problem naming it (:attr:`RecordedRun.problems`), and the rest
stays usable; :meth:`RecordedRun.require` turns the problems that matter to a caller into a
:class:`BagError`.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nora_ros.actions import ActionChunk, EndEffectorCommand
from nora_ros.bag import topics as T
from nora_ros.bag.read import BagContents, RecordedMessage, read_bag
from nora_ros.camera.frame import Frame
from nora_ros.errors import BagError, NoraError
from nora_ros.robot.arm import ArmState


@dataclass(frozen=True)
class Stamped:
    """A value with the bag time (s) it was recorded at and its place in the bag's order."""

    t: float
    value: Any
    seq: int = 0


@dataclass(frozen=True)
class Trial:
    """One trial of the run: RUNNING from ``start`` to ``end`` (bag times). What belongs to it
    is what the bag holds between its RUNNING status and the status that ended it (``seq``
    bounds, exclusive): a trial can end and the next begin at the same timestamp, so times alone
    cannot tell. ``score`` is the recorded result's score name (``"success"``...) or ``""`` when
    none was recorded."""

    trial_id: int
    instruction: str
    start: float
    end: float
    score: str = ""
    start_seq: int = -1
    end_seq: int = 2**62

    def contains(self, item: Stamped | RecordedMessage) -> bool:
        return self.start_seq < item.seq < self.end_seq


class RecordedRun:
    """The recorded run of one bag (see the module docstring). ``robot_model`` names the joints
    read from ``joint_states``."""

    def __init__(self, contents: BagContents, namespace: str = T.DEFAULT_NAMESPACE, robot_model: str = "wx250s"):
        from nora_ros.robot.kinematics import WidowXModel

        self.contents = contents
        self.namespace = namespace
        self.model = WidowXModel.from_name(robot_model)
        self.problems: list[str] = list(contents.problems)
        self.missing: list[str] = []
        name = self._name
        self.image_topic = next((name(t) for t in (T.IMAGE, T.COMPRESSED) if contents.topic(name(t))), name(T.IMAGE))
        self.frame_messages = contents.topic(self.image_topic)
        self.truths: dict[int, dict] = {}
        for s in self._convert(T.GROUND_TRUTH, lambda m: _truth(m.data)):
            stamp, truth = s.value
            self.truths[round(stamp * 1e9)] = truth
        self.chunks: list[Stamped] = self._convert(T.ACTION_CHUNK, lambda m: (_chunk(m), float(m.latency)))
        self.commands: list[Stamped] = self._convert(T.CMD, _command)
        self.safe_commands: list[Stamped] = self._convert(T.CMD_SAFE, _command)
        self.safety: list[Stamped] = self._convert(T.SAFETY_STATUS, lambda m: tuple(str(x) for x in m.limits))
        self.statuses: list[Stamped] = self._convert(T.TRIAL_STATUS, _status)
        self.results: list[Stamped] = self._convert(T.TRIAL_RESULT, _result)
        self.instructions: list[Stamped] = self._convert(T.INSTRUCTION, lambda m: str(m.data))
        self.joint_topic = next((t for t in T.joint_states_candidates(namespace) if contents.topic(t)),
                                name(T.JOINT_STATES))
        self.joint_states: list[Stamped] = self._convert_topic(self.joint_topic, self._arm_state)
        self._joint_times = [s.t for s in self.joint_states]
        for topic in T.RUN_TOPICS:
            present = self.frame_messages if topic is T.IMAGE else contents.topic(
                self.joint_topic if topic is T.JOINT_STATES else name(topic))
            if not present:
                names = ([name(T.IMAGE), name(T.COMPRESSED)] if topic is T.IMAGE else
                         [self.joint_topic] if topic is T.JOINT_STATES else [name(topic)])
                wanted = " or ".join(names)
                other = [contents.types[n] for n in names if n in contents.types]
                why = f" (it is there as {other[0]}, which could not be read)" if other else ""
                self.missing.append(wanted)
                self.problems.append(f"missing topic {wanted} ({topic.msgtype}){why}")

    @classmethod
    def open(cls, path, namespace: str = T.DEFAULT_NAMESPACE, robot_model: str = "wx250s") -> RecordedRun:
        """Read the bag at ``path`` (only this package's topics are decoded)."""
        wanted = {T.resolve(namespace, t.name) for t in T.ALL_TOPICS} | set(T.joint_states_candidates(namespace))
        return cls(read_bag(path, wanted), namespace, robot_model)

    # ------------------------------------------------------------------ reading helpers
    def _name(self, topic: T.Topic) -> str:
        return T.resolve(self.namespace, topic.name)

    def _convert(self, topic: T.Topic, convert: Callable[[Any], Any]) -> list[Stamped]:
        return self._convert_topic(self._name(topic), convert)

    def _convert_topic(self, name: str, convert: Callable[[Any], Any]) -> list[Stamped]:
        out, bad, first = [], 0, ""
        for m in self.contents.topic(name):
            try:
                out.append(Stamped(m.t, convert(m.msg), m.seq))
            except (NoraError, ValueError, TypeError, KeyError, AttributeError) as exc:
                bad += 1
                first = first or f"t={m.t:.3f} s: {exc}"
        if bad:
            self.problems.append(f"{name}: {bad} message(s) could not be used, first at {first}")
        return out

    def _arm_state(self, msg) -> ArmState:
        from nora_ros.interface.convert import joint_positions, stamp_to_seconds
        from nora_ros.robot.kinematics import finger_to_gripper

        q = joint_positions(msg, self.model.joint_names)
        names = [str(n) for n in msg.name]
        gripper = 1.0
        if "left_finger" in names:
            gripper = min(1.0, max(0.0, finger_to_gripper(float(joint_positions(msg, ["left_finger"])[0]))))
        return ArmState(joints=q, ee_pose=self.model.fk(q), gripper=gripper, stamp=stamp_to_seconds(msg.header.stamp))

    # ------------------------------------------------------------------ queries
    def frame(self, m: RecordedMessage) -> Frame:
        """The camera message ``m`` as a :class:`Frame`, with the simulator's ground truth for its
        stamp in ``extras`` when the bag has it."""
        from nora_ros.interface.convert import compressed_to_frame, image_to_frame

        try:
            frame = (compressed_to_frame if m.msgtype.endswith("CompressedImage") else image_to_frame)(m.msg)
        except NoraError as exc:
            raise BagError(f"{m.topic} at t={m.t:.3f} s: {exc}") from exc
        truth = self.truths.get(round(frame.stamp * 1e9))
        return dataclasses.replace(frame, extras=truth) if truth is not None else frame

    def frames_by_stamp(self) -> dict[int, RecordedMessage]:
        """Camera messages by header stamp (ns): chunks name the frame they came from by its stamp."""
        from nora_ros.interface.convert import stamp_to_seconds

        out = {}
        for m in self.frame_messages:
            try:
                out[round(stamp_to_seconds(m.msg.header.stamp) * 1e9)] = m
            except BagError as exc:
                self.problems.append(str(exc))
        return out

    def arm_state_at(self, t: float) -> ArmState | None:
        """The latest recorded arm state at or before ``t``."""
        i = bisect.bisect_right(self._joint_times, t + 1e-9) - 1
        return self.joint_states[i].value if i >= 0 else None

    def trials(self, instruction: str = "") -> list[Trial]:
        """The trials of the run (see :class:`Trial`). Without ``trial/status`` the whole bag is
        one trial whose instruction is ``instruction``, else the last one on ``instruction``."""
        start, end = self.contents.start, self.contents.end
        if not self.statuses:
            text = instruction or (self.instructions[-1].value if self.instructions else "")
            if not text:
                raise BagError(f"{self.contents.path}: no instruction: the bag has neither "
                               f"{self._name(T.TRIAL_STATUS)} "
                               f"nor {self._name(T.INSTRUCTION)}; give one (--instruction)")
            return [Trial(0, text, start, end)]
        scores = {tid: score for tid, score in (s.value for s in self.results)}
        out: list[Trial] = []
        running: dict[int, Stamped] = {}
        for s in self.statuses:
            tid, state, text = s.value
            if state == "RUNNING" and tid not in running:
                running[tid] = s
            elif state != "RUNNING" and tid in running:
                r = running.pop(tid)
                out.append(Trial(tid, instruction or r.value[2], r.t, s.t, scores.get(tid, ""), r.seq, s.seq))
        for tid, r in running.items():  # the bag ends while it runs
            out.append(Trial(tid, instruction or r.value[2], r.t, end, scores.get(tid, ""), r.seq))
        return sorted(out, key=lambda tr: tr.start)

    def within(self, items: Iterable[Stamped], trial: Trial) -> list[Stamped]:
        return [s for s in items if trial.contains(s)]

    def require(self, topics: Iterable[str] = ()) -> None:
        """Raise :class:`BagError` naming every problem when any of ``topics`` (absolute names;
        default: every topic of a full run) is missing, or the bag had other problems."""
        needed = set(topics) if topics else set(self.missing)
        if needed & set(self.missing) or (not topics and self.problems):
            raise BagError(f"{self.contents.path}: " + "; ".join(self.problems))

    @property
    def tick_period(self) -> float:
        """The control period of the recording (median spacing of ``cmd``), to the microsecond."""
        times = np.array([s.t for s in self.commands])
        if times.size < 2:
            return math.nan
        return round(float(np.median(np.diff(times))), 6)


# --------------------------------------------------------------------------- message readers


def _truth(text: str) -> tuple[float, dict]:
    from nora_ros.interface.convert import ground_truth_from_json

    return ground_truth_from_json(text)


def _chunk(msg) -> ActionChunk:
    from nora_ros.interface.convert import chunk_from_msg

    return chunk_from_msg(msg)


def _command(msg) -> EndEffectorCommand:
    from nora_ros.interface.convert import command_from_msg

    return command_from_msg(msg)


def _status(msg) -> tuple[int, str, str]:
    from nora_ros.interface.convert import trial_state_name

    return int(msg.trial_id), trial_state_name(msg), str(msg.instruction)


def _result(msg) -> tuple[int, str]:
    names = {getattr(type(msg), n): n.lower() for n in ("UNSCORED", "SUCCESS", "FAILURE", "PARTIAL", "ABORT")}
    return int(msg.trial_id), names.get(int(msg.score), "")
