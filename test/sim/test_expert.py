"""The scripted expert: Bridge-limited actions, and the done criterion of issue 5 (it succeeds in
at least 8 of 10 seeded trials, scored by the sim check), with and without the safety filter."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("mujoco", reason="the simulator needs the 'sim' extra (pip install -e '.[sim]')")

from nora_ros.actions import ActionChunk  # noqa: E402
from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ConfigurationError, PolicyError  # noqa: E402
from nora_ros.sim import scene  # noqa: E402
from nora_ros.sim.arm import MujocoArm  # noqa: E402
from nora_ros.sim.expert import ExpertConfig, Phase, ScriptedExpertPolicy  # noqa: E402
from nora_ros.sim.rollout import rollout  # noqa: E402
from nora_ros.sim.world import SimWorld  # noqa: E402

SEEDS = range(10)


def _trials(task: str, safety_factory=None):
    world = SimWorld(task=task)
    arm = MujocoArm(world)
    policy = ScriptedExpertPolicy()
    results = [rollout(world, arm, policy, seed=s, safety=safety_factory(world) if safety_factory else None) for s in SEEDS]
    world.close()
    return results


@pytest.fixture(scope="module")
def pot_trials():
    return _trials("carrot_in_pot")


def test_expert_puts_the_carrot_in_the_pot_in_8_of_10_trials(pot_trials):
    wins = [r.success for r in pot_trials]
    assert sum(wins) >= 8, [(s, r.reason) for s, r in zip(SEEDS, pot_trials, strict=True) if not r.success]


def test_expert_actions_respect_bridge_per_step_limits(pot_trials):
    actions = np.array([rec.action for r in pot_trials for rec in r.records])
    assert len(actions) > 100
    assert np.max(np.abs(actions[:, :3])) <= 0.05
    assert np.max(np.linalg.norm(actions[:, :3], axis=1)) <= 0.05
    assert np.max(np.abs(actions[:, 3:6])) <= 0.25
    assert set(np.unique(actions[:, 6])) == {0.0, 1.0}
    assert not any(rec.held for r in pot_trials for rec in r.records)  # IK never refused a step


def test_the_carrot_is_really_lifted_in_the_gripper():
    world = SimWorld(seed=4)
    arm = MujocoArm(world)
    policy = ScriptedExpertPolicy(world)
    heights = []

    def watch(_rec):
        if world.is_grasped("carrot"):
            heights.append(world.object_pose("carrot")[2, 3])

    result = rollout(world, arm, policy, seed=4, on_step=watch)
    assert result.success
    assert max(heights) > scene.POT_HEIGHT + 0.03  # carried over the pot's rim while held by both fingers


def test_expert_puts_the_carrot_on_the_plate():
    results = _trials("carrot_on_plate")
    assert sum(r.success for r in results) >= 8, [r.reason for r in results if not r.success]


def test_expert_through_the_safety_filter():
    safety = pytest.importorskip("nora_ros.safety", reason="the safety filter is not in this checkout")
    results = _trials("carrot_in_pot", lambda world: safety.SafetyFilter(None, world.kinematics))
    assert sum(r.success for r in results) >= 8, [r.reason for r in results if not r.success]
    assert sum(r.holds for r in results) == 0


def test_chunk_format_and_phase_sequence():
    world = SimWorld(seed=1)
    arm = MujocoArm(world)
    policy = ScriptedExpertPolicy()
    phases = []
    chunks: list[ActionChunk] = []
    original = policy.act

    def act(frame, instruction):
        chunk = original(frame, instruction)
        chunks.append(chunk)
        phases.append(policy.phase)
        return chunk

    policy.act = act  # record what the real policy returned, step by step
    assert rollout(world, arm, policy, seed=1).success
    c = chunks[0]
    assert c.actions.shape == (1, 7) and c.horizon == 1
    assert c.step_period == 0.2 and c.model_id == "scripted-expert"
    assert "total" in c.timings
    # LOWER may pass within one step when the carry height is already the drop height
    order = [Phase.APPROACH, Phase.DESCEND, Phase.CLOSE, Phase.LIFT, Phase.CARRY, Phase.RELEASE]
    seen = [p for i, p in enumerate(phases) if (i == 0 or p != phases[i - 1]) and p is not Phase.LOWER]
    assert seen == order


def test_expert_without_ground_truth_or_with_unknown_instruction_raises():
    policy = ScriptedExpertPolicy()
    frame = Frame(np.zeros((4, 4, 3), np.uint8), stamp=0.0)
    with pytest.raises(PolicyError, match="ground truth"):
        policy.act(frame, "put the carrot in the pot")
    world = SimWorld(seed=0)
    with pytest.raises(PolicyError, match="knows only"):
        policy.act(world.observation(render=False), "stack the blocks")


def test_expert_reads_the_world_when_frames_carry_no_ground_truth():
    world = SimWorld(seed=0)
    policy = ScriptedExpertPolicy(world)
    chunk = policy.act(Frame(np.zeros((4, 4, 3), np.uint8), stamp=0.0), "Put the carrot in the pot")
    assert np.linalg.norm(chunk.actions[0, :3]) > 0  # it moves toward the carrot


def test_bad_expert_config_is_rejected():
    with pytest.raises(ConfigurationError, match="max_step"):
        ExpertConfig(max_step=0.08)
    with pytest.raises(ConfigurationError, match="max_rotation"):
        ExpertConfig(max_rotation=0.3)
    with pytest.raises(ConfigurationError, match="carry_height"):
        ExpertConfig(carry_height=0.05)
    with pytest.raises(ConfigurationError, match="gain"):
        ExpertConfig(gain=1.5)


def test_expert_restarts_from_the_measurement_when_the_arm_does_not_follow():
    """If the arm stands still (the safety filter held), the expert must not believe its own aim
    reached the goal and go quiet: after two still observations it aims from the measurement."""
    world = SimWorld(seed=0)
    policy = ScriptedExpertPolicy(config=ExpertConfig(resync_distance=1.0))  # only the standstill rule
    policy.reset(world.task.instruction)
    steps = [np.linalg.norm(policy.act(world.observation(render=False), world.task.instruction).actions[0, :3])
             for _ in range(12)]  # the world never steps: the arm never moves
    assert min(steps[2:]) > 0.01, steps
    assert policy.phase is Phase.APPROACH
