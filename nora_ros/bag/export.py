"""Successful recorded trials as a fine-tuning dataset: one Bridge-style episode ``.npz`` each.

Format (why this one): the episode layout of BridgeData V2 as the Octo/OpenVLA RLDS loaders
flatten it, and exactly that of ``../shared/data/octo_bridge_debug/extracted_train`` —
``action`` (N, 7) float32 Bridge deltas ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``,
``state`` (N, 7) float32 ``[x, y, z, roll, pitch, yaw, gripper]``, ``image_0`` (N, H, W, 3)
uint8 RGB, ``language_instruction``, ``is_first`` / ``is_last`` int64 — plus ``index.json``
listing the episodes. NORA was pre-trained on these RLDS fields; this package's own tools read
the files (``ReplayPolicy.from_npz``, ``nora-ros safety-replay``, ``nora-ros sim --policy
replay``); and a LeRobot dataset (what NORA's ``lerobot_training`` reads, keys
``observation.images.image``, ``action``, ``task``) is a few lines of ``LeRobotDataset.create``
/ ``add_frame`` over them where the heavy lerobot package (torch, pyarrow, video codecs) is
installed, which it is not here.

A step is one executed action: each ``(chunk_id, index)`` the recorded ``cmd`` stream started.
Its image is the frame the chunk was computed from (for later actions of a chunk, the newest
frame at the step's start); its state is the recorded arm state when that frame was taken.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from nora_ros.bag.run import RecordedRun, Trial
from nora_ros.errors import BagError, ConfigurationError


@dataclass
class ExportReport:
    """Episodes written (``(file, steps)``) and trials left out, each with why."""

    written: list[tuple[pathlib.Path, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def episode_arrays(run: RecordedRun, trial: Trial, image_size: int = 256) -> dict[str, np.ndarray]:
    """The episode of ``trial`` (see the module docstring); raises :class:`BagError` naming what is missing."""
    from nora_ros.actions import pose_to_bridge_state

    chunks = {s.value[0].chunk_id: s.value[0] for s in run.within(run.chunks, trial)}
    commands = [s for s in run.within(run.commands, trial) if s.value.chunk_id != 0]
    if not chunks or not commands:
        raise BagError(f"trial {trial.trial_id}: no recorded action chunks or commands (action_chunk, cmd)")
    frames = run.frames_by_stamp()
    frame_msgs = [m for m in run.frame_messages if m.seq < trial.end_seq]
    steps, last = [], None
    for s in commands:
        key = (s.value.chunk_id, s.value.index)
        if key != last and key[0] in chunks:
            steps.append((s.t, chunks[key[0]], key[1]))
        last = key
    actions, states, images = [], [], []
    for t, chunk, index in steps:
        message = frames.get(round(chunk.stamp * 1e9)) if index == 0 else None
        if message is None:
            earlier = [m for m in frame_msgs if m.t <= t + 1e-9]
            if not earlier:
                raise BagError(f"trial {trial.trial_id}: no camera frame before the step at t={t:.3f} s")
            message = earlier[-1]
        state = run.arm_state_at(message.t)
        if state is None:
            raise BagError(f"trial {trial.trial_id}: no arm state (joint_states) before t={message.t:.3f} s")
        actions.append(chunk.actions[index])
        states.append(pose_to_bridge_state(state.ee_pose, state.gripper))
        images.append(_resize(run.frame(message).rgb(), image_size))
    n = len(actions)
    first = np.zeros(n, dtype=np.int64)
    first[0] = 1
    last_flags = np.zeros(n, dtype=np.int64)
    last_flags[-1] = 1
    return {
        "action": np.asarray(actions, dtype=np.float32),
        "state": np.asarray(states, dtype=np.float32),
        "image_0": np.stack(images).astype(np.uint8),
        "language_instruction": np.array(trial.instruction),
        "is_first": first,
        "is_last": last_flags,
    }


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if not size or image.shape[:2] == (size, size):
        return np.ascontiguousarray(image)
    from PIL import Image

    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.LANCZOS))


def export(bags: Iterable[str | pathlib.Path], out: str | pathlib.Path, *, image_size: int = 256,
           namespace: str = "nora", robot_model: str = "wx250s") -> ExportReport:
    """Write every successful trial of ``bags`` to ``out`` (an empty or new folder)."""
    if image_size < 0:
        raise ConfigurationError(f"image size must be >= 0 (0 keeps the camera's), got {image_size}")
    out = pathlib.Path(out)
    if out.exists() and any(out.glob("episode_*.npz")):
        raise ConfigurationError(f"{out} already holds episodes; export into an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    report, index = ExportReport(), []
    for bag in bags:
        run = RecordedRun.open(bag, namespace=namespace, robot_model=robot_model)
        try:
            trials = run.trials()
        except BagError as exc:
            report.skipped.append(str(exc))
            continue
        for trial in trials:
            where = f"{bag} trial {trial.trial_id}"
            if trial.score != "success":
                report.skipped.append(f"{where}: score '{trial.score or 'none recorded (no trial/result)'}', "
                                      "not success")
                continue
            try:
                arrays = episode_arrays(run, trial, image_size)
            except BagError as exc:
                report.skipped.append(f"{where}: {exc}")
                continue
            k = len(index)
            path = out / f"episode_{k:05d}.npz"
            np.savez_compressed(path, **arrays)
            steps = int(arrays["action"].shape[0])
            index.append({"episode": k, "steps": steps, "language_instruction": trial.instruction,
                          "bag": str(bag), "trial_id": trial.trial_id})
            report.written.append((path, steps))
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return report
