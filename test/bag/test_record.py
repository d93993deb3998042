"""Recording the in-process runner as rosbag2 (nora_ros.bag.record), read back with rosbags.

A real simulated trial (MuJoCo world, scripted expert, safety filter, supervisor) is recorded
through the supervisor's Recorder hook and read back: every topic the nodes publish is there,
with the names, types and QoS they use, in counts that match the run, holding exactly what
the runner computed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("rosbags")

from bag_helpers import INSTRUCTION, command_vector, record  # noqa: E402

from nora_ros.bag import topics as T  # noqa: E402
from nora_ros.bag.read import read_bag  # noqa: E402
from nora_ros.bag.run import RecordedRun  # noqa: E402

NS = "/nora"


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def recorded(request, tmp_path_factory):
    return record(tmp_path_factory.mktemp(f"rec_{request.param}"), storage=request.param)


def test_a_recorded_trial_reads_back_with_every_topic_and_counts_that_match_the_run(recorded):
    (path,) = recorded.paths
    (log,) = recorded.logs
    storage = "mcap" if any(path.glob("*.mcap")) else "sqlite3"
    assert any(path.glob(f"*.{'mcap' if storage == 'mcap' else 'db3'}")) and (path / "metadata.yaml").is_file()
    bag = read_bag(path)
    assert bag.problems == []
    counts = bag.counts
    expected = {f"{NS}/{t.name}": t.msgtype for t in T.RUN_TOPICS + (T.CAMERA_INFO, T.TRIAL_RESULT, T.GROUND_TRUTH)}
    assert {t: bag.types[t] for t in expected} == expected
    ticks = len(log.ticks)
    frames = sum(1 for r in log.ticks if r.frame is not None)
    # frames = camera rate x duration, within one (a frame at both ends of the first-to-last tick span)
    assert abs(counts[f"{NS}/camera/image_raw"] - 5.0 * log.sim_s) <= 1.0 + 1e-9
    assert abs(counts[f"{NS}/camera/image_raw"] - 5.0 * (bag.end - bag.start)) <= 1.0
    assert counts[f"{NS}/camera/image_raw"] == counts[f"{NS}/sim/ground_truth"] == frames
    for topic in ("cmd", "cmd_safe", "safety/status", "joint_states"):
        assert counts[f"{NS}/{topic}"] == ticks, topic
    assert counts[f"{NS}/action_chunk"] == sum(1 for r in log.ticks if r.policy.chunk is not None) > 20
    assert counts[f"{NS}/instruction"] == 1 and counts[f"{NS}/trial/result"] == 1
    run = RecordedRun(bag)
    assert [s.value[1] for s in run.statuses] == ["RESETTING", "RUNNING", "AWAITING_SCORE", "DONE"]
    assert run.instructions[0].value == INSTRUCTION
    (trial,) = run.trials()
    assert trial.score == "success" and trial.instruction == INSTRUCTION
    assert trial.start == pytest.approx(log.ticks[0].now, abs=1e-9)
    # the trial's result names its bag
    assert json.loads(recorded.results.read_text())["recording"] == str(path)


def test_the_recorded_messages_are_what_the_runner_computed(recorded):
    (log,) = recorded.logs
    run = RecordedRun.open(recorded.paths[0])
    commands = [r.policy.command for r in log.ticks]
    assert len(run.commands) == len(commands)
    assert all(np.array_equal(command_vector(s.value), command_vector(c)) for s, c in zip(run.commands, commands,
                                                                                          strict=True))
    executed = [r.result.executed for r in log.ticks]
    assert all(np.array_equal(command_vector(s.value), command_vector(c))
               for s, c in zip(run.safe_commands, executed, strict=True))
    chunks = [r.policy.chunk for r in log.ticks if r.policy.chunk is not None]
    assert all(np.array_equal(s.value[0].actions, c.actions) for s, c in zip(run.chunks, chunks, strict=True))
    # raw images: the first recorded frame is the rendered frame, pixel for pixel, with its ground truth
    first = next(r.frame for r in log.ticks if r.frame is not None)
    frame = run.frame(run.frame_messages[0])
    assert frame.image.shape == (480, 640, 3) and np.array_equal(frame.image, first.image)
    assert np.array_equal(frame.extras["ee_pose"], first.extras["ee_pose"])
    # joint states: the measured joints of every tick, fingers as the sim node publishes them
    assert np.array_equal(run.joint_states[5].value.joints, log.ticks[5].state.joints)
    assert run.joint_states[0].value.gripper == pytest.approx(log.ticks[0].state.gripper, abs=1e-12)


def test_latched_topics_are_recorded_transient_local_so_bag_play_matches_the_nodes(recorded):
    from rosbags.interfaces import QosDurability, QosReliability
    from rosbags.rosbag2 import Reader

    with Reader(recorded.paths[0]) as reader:
        qos = {c.topic: c.ext.offered_qos_profiles[0] for c in reader.connections}
    assert qos[f"{NS}/trial/status"].durability == QosDurability.TRANSIENT_LOCAL
    assert qos[f"{NS}/safety/status"].durability == QosDurability.TRANSIENT_LOCAL
    assert qos[f"{NS}/camera/image_raw"].reliability == QosReliability.BEST_EFFORT
    assert qos[f"{NS}/cmd"].reliability == QosReliability.RELIABLE
    assert qos[f"{NS}/cmd"].durability == QosDurability.VOLATILE


def test_jpeg_images_are_compressed_images_much_smaller_and_close_to_the_frame(tmp_path, recorded):
    rec = record(tmp_path, images="jpeg")
    bag = read_bag(rec.paths[0])
    assert f"{NS}/camera/image_raw/compressed" in bag.counts and f"{NS}/camera/image_raw" not in bag.counts
    raw_size = sum(f.stat().st_size for f in recorded.paths[0].iterdir())
    jpeg_size = sum(f.stat().st_size for f in rec.paths[0].iterdir())
    assert jpeg_size * 5 < raw_size
    run = RecordedRun(bag)
    assert run.missing == []
    first = next(r.frame for r in rec.logs[0].ticks if r.frame is not None)
    frame = run.frame(run.frame_messages[0])
    assert frame.encoding == "bgr8"
    assert np.abs(frame.rgb().astype(int) - first.image.astype(int)).mean() < 3.0


def test_a_recorder_that_cannot_start_aborts_the_trial_and_says_why(tmp_path):
    blocker = tmp_path / "bags"
    blocker.write_text("not a folder")
    from nora_ros.bag.record import TrialBags
    from nora_ros.runner import build_sim_stack, run_sim_trial
    from nora_ros.sim.expert import ScriptedExpertPolicy

    bags = TrialBags(blocker)
    stack = build_sim_stack(lambda world: ScriptedExpertPolicy(world), results_path=tmp_path / "r.jsonl",
                            recorder=bags)
    try:
        log = run_sim_trial(stack.world, stack.arm, stack.loop, stack.supervisor, INSTRUCTION, seed=0,
                            on_tick=bags.on_tick)
    finally:
        stack.close()
    result = json.loads((tmp_path / "r.jsonl").read_text())
    assert log.outcome == "ABORTED" and result["score"] == "abort"
    assert "recorder failed to start" in result["reason"] and str(blocker) in result["reason"]


def test_demo_records_every_trial_by_default_and_no_record_turns_it_off(tmp_path, capsys):
    from nora_ros.cli import main

    assert main(["demo", "--trials", "2", "--out", str(tmp_path / "on")]) == 0
    bags = sorted((tmp_path / "on" / "bags").iterdir())
    assert [b.name for b in bags] == ["trial_0001", "trial_0002"]
    lines = [json.loads(line) for line in (tmp_path / "on" / "results.jsonl").read_text().splitlines()]
    assert [r["recording"] for r in lines] == [str(b) for b in bags]
    assert read_bag(bags[1]).counts[f"{NS}/camera/image_raw/compressed"] > 10
    assert main(["demo", "--trials", "1", "--no-record", "--out", str(tmp_path / "off")]) == 0
    assert not (tmp_path / "off" / "bags").exists()
    assert json.loads((tmp_path / "off" / "results.jsonl").read_text())["recording"] is None
    capsys.readouterr()
