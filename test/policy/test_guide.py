"""ChunkGuide (what real-time chunking hands a policy) checks itself; policies that cannot be guided say so."""

from __future__ import annotations

import numpy as np
import pytest

from nora_ros.camera.frame import Frame
from nora_ros.errors import ConfigurationError, InvalidInputError
from nora_ros.policy.base import ChunkGuide
from nora_ros.policy.replay import ReplayPolicy
from nora_ros.sim.expert import ScriptedExpertPolicy


def _actions(k: int = 3) -> np.ndarray:
    return np.arange(7 * k, dtype=np.float64).reshape(k, 7) / 100.0


def test_a_guide_keeps_a_read_only_float64_copy_of_its_actions():
    given = _actions().astype(np.float32)
    guide = ChunkGuide(given, frozen_steps=1, execution_horizon=2)
    assert guide.actions.dtype == np.float64 and guide.actions.shape == (3, 7) and guide.prior_steps == 3
    assert guide.guidance_weight == 5.0  # the paper's beta
    assert not guide.actions.flags.writeable
    given[0, 0] = 9.0
    assert guide.actions[0, 0] == 0.0  # a copy: the executing chunk may change without moving the guide
    assert ChunkGuide(_actions(), np.int64(0), np.int32(5), 0).guidance_weight == 0.0


@pytest.mark.parametrize(("actions", "reason"), [
    (np.zeros((3, 6)), r"shape \(K, 7\)"),
    (np.zeros(7), r"shape \(K, 7\)"),
    (np.zeros((0, 7)), r"K >= 1"),
    (np.zeros((1, 3, 7)), r"shape \(K, 7\)"),
    ("carrot", "numbers"),
])
def test_a_misshapen_guide_is_refused(actions, reason):
    with pytest.raises(InvalidInputError, match=reason):
        ChunkGuide(actions, 1, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_guide_with_a_nan_or_infinity_is_refused_naming_the_step(bad):
    actions = _actions()
    actions[2, 4] = bad
    with pytest.raises(InvalidInputError, match=r"NaN or infinity \(steps \[2\]\)"):
        ChunkGuide(actions, 1, 2)


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("frozen_steps", -1, "frozen_steps must be >= 0"),
    ("frozen_steps", 1.5, "frozen_steps must be an integer"),
    ("frozen_steps", True, "frozen_steps must be an integer"),
    ("execution_horizon", 0, "execution_horizon must be >= 1"),
    ("execution_horizon", "2", "execution_horizon must be an integer"),
    ("guidance_weight", -0.1, "finite and >= 0"),
    ("guidance_weight", float("nan"), "finite and >= 0"),
    ("guidance_weight", float("inf"), "finite and >= 0"),
    ("guidance_weight", "5", "must be a number"),
])
def test_out_of_range_guide_parameters_are_refused(field, value, reason):
    kwargs = {"frozen_steps": 1, "execution_horizon": 2, "guidance_weight": 5.0, field: value}
    with pytest.raises(InvalidInputError, match=reason):
        ChunkGuide(_actions(), **kwargs)


def test_check_horizon_refuses_a_guide_that_cannot_describe_the_chunk():
    ChunkGuide(_actions(5), 4, 5).check_horizon(5)  # the limits themselves are fine
    with pytest.raises(InvalidInputError, match="6 prior actions for a 5-step chunk"):
        ChunkGuide(_actions(6), 1, 2).check_horizon(5)
    with pytest.raises(InvalidInputError, match="no step of the new chunk would execute"):
        ChunkGuide(_actions(), 5, 2).check_horizon(5)
    with pytest.raises(InvalidInputError, match="execution_horizon 6 > horizon 5"):
        ChunkGuide(_actions(), 1, 6).check_horizon(5)


@pytest.mark.parametrize("policy", [ScriptedExpertPolicy(), ReplayPolicy(np.zeros((4, 7)))],
                         ids=["scripted-expert", "replay"])
def test_a_policy_without_a_flow_head_refuses_guidance_and_names_itself(policy):
    assert policy.supports_guide is False
    frame = Frame(np.zeros((4, 4, 3), np.uint8), stamp=0.0)
    with pytest.raises(ConfigurationError, match=r"needs NORA-1.5's flow head \(action_head: flow\)") as info:
        policy.act_guided(frame, "put the carrot on the plate", ChunkGuide(_actions(), 1, 2))
    assert f"'{policy.model_id}'" in str(info.value) and type(policy).__name__ in str(info.value)
