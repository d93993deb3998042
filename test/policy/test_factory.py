"""make_policy: the one place that maps a configuration to a kind of policy (the nodes ask it)."""

from __future__ import annotations

import pytest

from nora_ros.interface.node_specs import policy_config
from nora_ros.policy import ReplayPolicy
from nora_ros.policy.factory import make_policy
from nora_ros.policy.nora.config import NoraConfig


def test_the_policy_nodes_parameters_build_a_replay_policy_with_the_variant_horizon(bridge_episodes):
    episode = bridge_episodes[0]
    policy = make_policy(policy_config({"model": f"replay:{episode}", "variant": "nora-long"}))
    assert isinstance(policy, ReplayPolicy) and policy.horizon == 5
    assert policy.model_id == f"replay:{episode.name}"
    assert not policy.needs_ground_truth


def test_scripted_is_the_sim_expert_and_it_asks_for_ground_truth():
    pytest.importorskip("mujoco", reason="MuJoCo is not installed (the sim extra)")
    policy = make_policy(NoraConfig(model="scripted"))
    assert policy.model_id == "scripted-expert" and policy.needs_ground_truth


def test_a_missing_checkpoint_folder_is_a_load_error_naming_it(tmp_path):
    pytest.importorskip("torch", reason="torch is not installed (the model extra)")
    from nora_ros.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="does-not-exist"):
        make_policy(NoraConfig(model=str(tmp_path / "does-not-exist")))


def test_the_policy_nodes_jpeg_quality_0_means_none_and_its_default_is_the_references():
    assert policy_config({"jpeg_quality": 0}).jpeg_quality is None
    assert policy_config({}).jpeg_quality == -1 and policy_config({}).variant == "auto"
    assert policy_config({"jpeg_quality": 80}).jpeg_quality == 80
