"""Replay (nora_ros.bag.replay, ``nora-ros replay``) and export (``nora-ros export``) of recorded runs.

The bag is a real two-trial session of the simulated closed loop recorded into one bag, as
``ros2 bag record`` would at the robot. Replaying it with the same deterministic policy must
reproduce every recorded chunk and command exactly; a policy that differs by a known amount
must show exactly that difference, in the dimension it changed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("rosbags")

from bag_helpers import INSTRUCTION, record  # noqa: E402

from nora_ros.actions import ActionChunk  # noqa: E402
from nora_ros.bag.replay import ReplayOptions, recorded_actions_policy, replay  # noqa: E402
from nora_ros.bag.run import RecordedRun  # noqa: E402
from nora_ros.policy.base import Policy  # noqa: E402
from nora_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return record(tmp_path_factory.mktemp("session"), trials=2, session=True, images="jpeg")


@pytest.fixture(scope="module")
def run(session):
    return RecordedRun.open(session.paths[0])


def test_the_session_bag_holds_both_trials(session, run):
    trials = run.trials()
    assert [t.trial_id for t in trials] == [1, 2] and [t.score for t in trials] == ["success", "success"]
    assert all(t.instruction == INSTRUCTION for t in trials)
    ticks = sum(len(log.ticks) for log in session.logs)
    chunks = sum(1 for log in session.logs for r in log.ticks if r.policy.chunk is not None)
    assert len(run.commands) == ticks and len(run.chunks) == chunks
    assert run.tick_period == 0.1


@pytest.mark.parametrize("name", ["scripted", "replay"])
def test_the_same_deterministic_policy_reproduces_the_recording_exactly(run, name):
    expert = ScriptedExpertPolicy()
    policy_for = (lambda trial: expert) if name == "scripted" else (lambda trial: recorded_actions_policy(run, trial))
    result = replay(run, policy_for, policy_name=name)
    s = result.summary()
    assert s["trials"] == 2 and s["policy_failures"] == 0 and s["problems"] == []
    assert s["chunks_compared"] == s["chunks_recorded"] == len(run.chunks) > 40
    assert s["frames_fed"] == len(run.chunks)
    assert s["ticks_compared"] == len(run.commands)
    assert set(s["action_error"]["max"].values()) == {0.0}
    assert set(s["cmd_error"]["max"].values()) == {0.0}
    # the safety filter on the replayed commands and the recorded arm states does what it did
    # (up to the recorded times' nanosecond rounding)
    assert max(s["cmd_safe_error"]["max"].values()) < 1e-12
    assert s["safety_events"]["replayed"] == s["safety_events"]["recorded"]


class Nudged(Policy):
    """The expert with ``dx`` larger by a known amount: the replay must find exactly that."""

    model_id = "nudged"

    def __init__(self, dx: float):
        self.expert, self.dx = ScriptedExpertPolicy(), dx

    def reset(self, instruction):
        self.expert.reset(instruction)

    def act(self, frame, instruction):
        chunk = self.expert.act(frame, instruction)
        actions = chunk.actions.copy()
        actions[:, 0] += self.dx
        return ActionChunk(actions, step_period=chunk.step_period, stamp=chunk.stamp, chunk_id=chunk.chunk_id)


def test_a_policy_that_differs_shows_the_difference_in_its_dimension(run):
    policy = Nudged(0.004)
    s = replay(run, lambda trial: policy, policy_name="nudged").summary()
    err = s["action_error"]
    assert err["max"]["dx"] == pytest.approx(0.004, abs=1e-12) and err["mean"]["dx"] == pytest.approx(0.004, abs=1e-12)
    assert all(v == 0.0 for k, v in err["max"].items() if k != "dx")
    # as a velocity over the 0.2 s step, on the ticks that execute an action
    assert s["cmd_error"]["max"]["vx"] == pytest.approx(0.02, abs=1e-9)
    assert s["cmd_error"]["max"]["vy"] == 0.0


def test_a_tighter_safety_filter_reports_where_it_would_have_acted(run):
    expert = ScriptedExpertPolicy()
    result = replay(run, lambda trial: expert, ReplayOptions(safety={"max_linear_speed": 0.05}), policy_name="scripted")
    s = result.summary()
    assert s["safety_events"]["recorded"] == {}
    assert s["safety_events"]["replayed"]["linear_speed"] > 10
    assert all(any(t0 - 1e-9 <= t <= t1 + 1e-9 for t0, t1, _ in result.trial_bounds) for t, _ in result.safety_replayed)
    assert set(s["action_error"]["max"].values()) == {0.0}  # the policy's side is unchanged


def test_the_safety_filter_replays_the_recorded_decisions_tick_by_tick(tmp_path):
    tight = {"max_linear_speed": 0.06}
    rec = record(tmp_path, safety=tight)
    assert rec.logs[0].limits["linear_speed"] > 5  # the filter acted while recording
    recorded = RecordedRun.open(rec.paths[0])
    expert = ScriptedExpertPolicy()
    result = replay(recorded, lambda trial: expert, ReplayOptions(safety=tight), policy_name="scripted")
    s = result.summary()
    assert s["safety_events"]["recorded"]["linear_speed"] == rec.logs[0].limits["linear_speed"]
    assert result.safety_replayed == result.safety_recorded  # same limits on the same ticks
    assert set(s["cmd_error"]["max"].values()) == {0.0}
    # What the filter sent agrees to a few um/s: the bag holds joints, so the replay's end-effector
    # pose is forward kinematics (as the safety node's topic arm computes it), where the runner
    # read MuJoCo's end-effector site; a speed limit scales the difference into the twist.
    assert 0.0 < max(s["cmd_safe_error"]["max"].values()) < 2e-5


def test_replay_command_writes_plots_report_and_one_json_summary(session, run, tmp_path, capsys):
    from nora_ros.cli import main

    out = tmp_path / "out"
    assert main(["replay", str(session.paths[0]), "--policy", "scripted", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == len(run.frame_messages) and summary["chunks_compared"] == len(run.chunks)
    assert set(summary["action_error"]["max"]) == {"dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"}
    assert set(summary["action_error"]["max"].values()) == {0.0}
    assert set(summary["action_error"]["mean"].values()) == {0.0}
    assert json.loads((out / "replay_summary.json").read_text())["chunks_compared"] == summary["chunks_compared"]
    for png in ("replay_actions.png", "replay_errors.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / png).stat().st_size > 20_000
    assert "chunks compared" in (out / "replay_report.txt").read_text()
    assert main(["replay", str(session.paths[0]), "--policy", "nora", "--out", str(out)]) == 1
    assert "--policy nora needs --model" in capsys.readouterr().err


def test_export_turns_successful_trials_into_bridge_episodes(session, run, tmp_path, capsys):
    from nora_ros.cli import main
    from nora_ros.policy.replay import ReplayPolicy

    out = tmp_path / "dataset"
    assert main(["export", str(session.paths[0]), str(out)]) == 0
    index = json.loads((out / "index.json").read_text())
    assert [e["trial_id"] for e in index] == [1, 2]
    for entry, trial in zip(index, run.trials(), strict=True):
        with np.load(out / f"episode_{entry['episode']:05d}.npz") as ep:
            n = entry["steps"]
            assert ep["action"].shape == (n, 7) and ep["action"].dtype == np.float32
            assert ep["state"].shape == (n, 7) and ep["state"].dtype == np.float32
            assert ep["image_0"].shape == (n, 256, 256, 3) and ep["image_0"].dtype == np.uint8
            assert str(ep["language_instruction"]) == INSTRUCTION
            assert ep["is_first"].tolist() == [1] + [0] * (n - 1) and ep["is_last"].tolist() == [0] * (n - 1) + [1]
            # one step per executed action: the recorded chunks' actions, in order
            recorded = np.array([s.value[0].actions[0] for s in run.within(run.chunks, trial)], dtype=np.float32)
            assert n == len(recorded) and np.array_equal(ep["action"], recorded)
            # the state is where the arm was: near the start pose, gripper open, at the first step
            assert 0.1 < ep["state"][0, 0] < 0.45 and ep["state"][0, 6] == pytest.approx(1.0)
    assert ReplayPolicy.from_npz(out / "episode_00000.npz").actions.shape[0] == index[0]["steps"]
    assert main(["export", str(session.paths[0]), str(out)]) == 1  # never into a folder with episodes
    assert "already holds episodes" in capsys.readouterr().err


def test_exported_episodes_have_the_layout_of_the_real_bridge_episodes(session, tmp_path, bridge_episodes):
    from nora_ros.bag.export import export

    report = export([session.paths[0]], tmp_path / "ds", image_size=64)
    with np.load(report.written[0][0]) as ours, np.load(bridge_episodes[0]) as real:
        for key in ("action", "state", "image_0", "language_instruction", "is_first", "is_last"):
            assert ours[key].dtype.kind == real[key].dtype.kind, key
            assert ours[key].ndim == real[key].ndim and ours[key].shape[1:] == real[key].shape[1:], key
