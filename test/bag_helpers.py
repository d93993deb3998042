"""Recording real simulated runs for the rosbag2 tests (test_bag_*.py): the real world, runner,
safety filter, supervisor and recorder; nothing here stands in for the thing under test."""

from __future__ import annotations

import pathlib
import shutil
from dataclasses import dataclass

import numpy as np

INSTRUCTION = "put the carrot in the pot"


@dataclass
class Recording:
    """What a recorded run left: the bag paths, the runner's own logs, the results file."""

    paths: list[pathlib.Path]
    logs: list
    results: pathlib.Path


def record(folder: pathlib.Path, trials: int = 1, *, session: bool = False, images: str = "raw",
           storage: str = "mcap", seed: int = 0, policy_factory=None, safety: dict | None = None) -> Recording:
    """Run ``trials`` scripted-expert trials (10 Hz control, 5 Hz camera, rendered) and record
    them: one bag per trial in ``folder``, or one bag ``folder/session`` with ``session``."""
    from nora_ros.bag.record import RecordOptions, SessionBag, TrialBags
    from nora_ros.runner import LoopConfig, build_sim_stack, run_sim_trial
    from nora_ros.sim.expert import ScriptedExpertPolicy

    options = RecordOptions(images=images, storage=storage)
    recorder = SessionBag(folder / "session", options) if session else TrialBags(folder, options)
    results = folder / "results.jsonl"
    stack = build_sim_stack(policy_factory or (lambda world: ScriptedExpertPolicy(world)), seed=seed,
                            loop_config=LoopConfig(control_rate_hz=10.0, camera_rate_hz=5.0),
                            results_path=results, recorder=recorder, safety_overrides=safety)
    logs = []
    try:
        for k in range(trials):
            logs.append(run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, INSTRUCTION,
                                      seed=seed + k, on_tick=recorder.on_tick))
    finally:
        stack.close()
    paths = [folder / "session"] if session else list(recorder.paths)
    return Recording(paths, logs, results)


def copy_bag(src: pathlib.Path, dst: pathlib.Path, *, drop: tuple[str, ...] = (), extra=None) -> pathlib.Path:
    """Rewrite a bag with rosbags, leaving out the topics ``drop``; ``extra(writer)`` may add more."""
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer

    with Reader(src) as reader, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for c in reader.connections:
            if c.topic not in drop:
                conns[c.id] = writer.add_connection(c.topic, c.msgtype, msgdef=c.msgdef.data, rihs01=c.digest,
                                                    offered_qos_profiles=c.ext.offered_qos_profiles)
        for c, ns, raw in reader.messages():
            if c.id in conns:
                writer.write(conns[c.id], ns, raw)
        if extra is not None:
            extra(writer)
    return dst


def storage_file(bag: pathlib.Path) -> pathlib.Path:
    (file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    return file


def truncate(bag: pathlib.Path, dst: pathlib.Path, fraction: float) -> pathlib.Path:
    """A copy of ``bag`` whose storage file is cut to ``fraction`` of its size (a killed recording)."""
    shutil.copytree(bag, dst)
    file = storage_file(dst)
    with open(file, "r+b") as f:
        f.truncate(int(file.stat().st_size * fraction))
    return dst


def command_vector(cmd) -> np.ndarray:
    return np.concatenate([cmd.linear, cmd.angular, [cmd.gripper]])
