"""The scripted expert predicting chunks: its first action is the expert's, the rest follow its
script on the predicted world, the noise is seeded, and its script resumes where the arm is."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")

from nora_ros.errors import ConfigurationError  # noqa: E402
from nora_ros.sim.chunking_expert import ChunkingConfig, ChunkingExpertPolicy  # noqa: E402
from nora_ros.sim.expert import ScriptedExpertPolicy  # noqa: E402
from nora_ros.sim.tasks import TASKS  # noqa: E402
from nora_ros.sim.world import SimWorld  # noqa: E402

INSTRUCTION = TASKS["carrot_in_pot"].instruction


@pytest.fixture(scope="module")
def world():
    w = SimWorld(task="carrot_in_pot", seed=3)
    yield w
    w.close()


def test_first_action_is_the_experts_and_the_chunk_follows_its_script(world):
    frame = world.observation(render=False)
    plain = ScriptedExpertPolicy(world)
    plain.reset(INSTRUCTION)
    expert_action = plain.act(frame, INSTRUCTION).actions[0]
    policy = ChunkingExpertPolicy(world, ChunkingConfig(horizon=5))
    policy.reset(INSTRUCTION)
    chunk = policy.act(frame, INSTRUCTION)
    assert chunk.actions.shape == (5, 7) and chunk.horizon == 5
    np.testing.assert_array_equal(chunk.actions[0], expert_action)
    # approaching from rest: each predicted step speeds up by at most max_step_change (the ramp),
    # then slows as the predicted arm nears the hover point (a chunk, not one action repeated)
    steps = np.linalg.norm(chunk.actions[:, :3], axis=1)
    assert np.all(np.diff(steps) <= plain.config.max_step_change + 1e-12)
    assert steps[1] > steps[0] and steps[-1] < steps.max()


def test_noise_is_seeded_and_sized(world):
    frame = world.observation(render=False)

    def chunk(seed, noise):
        p = ChunkingExpertPolicy(world, ChunkingConfig(5, noise, noise * 5, seed))
        p.reset(INSTRUCTION)
        return p.act(frame, INSTRUCTION).actions

    clean = chunk(0, 0.0)
    a, b, c = chunk(7, 0.01), chunk(7, 0.01), chunk(8, 0.01)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = (a - clean)[:, :3]
    assert 0.003 < d.std() < 0.03 and np.array_equal(a[:, 6], clean[:, 6])
    with pytest.raises(ConfigurationError):
        ChunkingConfig(horizon=0)


def test_the_script_resumes_after_the_executed_prefix(world):
    """Two observations of the same unmoved arm 0.2 s apart: one step elapsed at most, so the
    script resumes after action 0, and the second chunk's first action continues the ramp."""
    frame = world.observation(render=False)
    policy = ChunkingExpertPolicy(world, ChunkingConfig(horizon=5))
    policy.reset(INSTRUCTION)
    first = policy.act(frame, INSTRUCTION)
    later = type(frame)(frame.image, frame.stamp + 0.2, frame.encoding, frame.extras)
    second = policy.act(later, INSTRUCTION)
    # the expert's ramp: the resumed step is the previous step plus at most one change
    s0, s1 = np.linalg.norm(first.actions[0, :3]), np.linalg.norm(second.actions[0, :3])
    assert s1 > s0 and s1 <= s0 + policy.expert.config.max_step_change + 1e-12
