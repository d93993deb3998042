"""What a checkpoint decides before the weights load: its variant (horizon) and its statistics.

A NORA-Long checkpoint run as NORA (or the reverse) decodes into wrong actions without any
error, and NORA-Long / NORA-1.5 checkpoints ship no statistics (the reference takes
declare-lab/nora's): both are decided here, and a contradiction is refused.
"""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import shared_data_path

from nora_ros.errors import ConfigurationError, ModelLoadError
from nora_ros.policy.nora.checkpoint import (
    VARIANT_KEY,
    checkpoint_variant,
    load_norm_stats_with_source,
    resolve_variant,
)
from nora_ros.policy.nora.config import NoraConfig


@pytest.mark.parametrize(("model", "variant"), [
    ("declare-lab/nora", "nora"), ("declare-lab/nora-long", "nora-long"), ("declare-lab/nora-1.5", "nora-1.5"),
    ("declare-lab/nora-1.5-fractal-dpo", "nora-1.5"), ("declare-lab/nora-1.5-libero", "nora-1.5"),
    ("declare-lab/nora-long-libero", "nora-long"), ("someone/nora-finetune", None),
])
def test_hub_ids_name_their_variant(model, variant):
    assert checkpoint_variant(model, None)[0] == variant


def test_a_hub_cache_folder_is_known_by_its_repository(tmp_path):
    folder = tmp_path / "hub" / "models--declare-lab--nora-long" / "snapshots" / "abc123"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert checkpoint_variant(str(folder), folder)[0] == "nora-long"


def test_auto_takes_the_checkpoints_variant_and_a_contradiction_is_refused(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({VARIANT_KEY: "nora-long"}))
    assert resolve_variant(NoraConfig(model=str(folder)), folder).horizon == 5
    assert resolve_variant(NoraConfig(model=str(folder), variant="nora-long"), folder).variant == "nora-long"
    with pytest.raises(ConfigurationError, match=r"variant nora \(T=1\) contradicts.*nora-long \(T=5\)"):
        resolve_variant(NoraConfig(model=str(folder), variant="nora"), folder)
    with pytest.raises(ConfigurationError, match="contradicts"):
        resolve_variant(NoraConfig(model="declare-lab/nora-long", variant="nora"), None)


def test_auto_on_a_checkpoint_of_unknown_variant_asks_for_it(tmp_path):
    folder = tmp_path / "finetune"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigurationError, match="cannot tell which NORA variant.*set variant"):
        resolve_variant(NoraConfig(model=str(folder)), folder)
    assert resolve_variant(NoraConfig(model=str(folder), variant="nora"), folder).horizon == 1


def test_an_action_expert_in_the_weights_makes_it_nora_1_5(tmp_path):
    import numpy as np

    save_file = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed (the model extra)").save_file

    folder = tmp_path / "n15"
    folder.mkdir()
    save_file({"vlm.lm_head.weight": np.zeros((2, 2), np.float32),
               "action_expert.norm.weight": np.zeros(2, np.float32)}, str(folder / "model.safetensors"))
    assert checkpoint_variant(str(folder), folder)[0] == "nora-1.5"


def test_statistics_fall_back_to_declare_lab_nora_from_the_hub_cache(tmp_path, monkeypatch):
    """No norm_stats.json in the checkpoint: the reference's (declare-lab/nora), here from a hub
    cache laid out as huggingface_hub keeps it; offline and not cached is an error naming both."""
    folder = tmp_path / "long"
    folder.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    config = NoraConfig(model=str(folder), variant="nora-long")
    with pytest.raises(ModelLoadError, match=r"has no norm_stats.json, and the reference's \(declare-lab/nora\)"):
        load_norm_stats_with_source(config, folder)
    snap = cache / "models--declare-lab--nora" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (cache / "models--declare-lab--nora" / "refs").mkdir()
    (cache / "models--declare-lab--nora" / "refs" / "main").write_text("a" * 40)
    shutil.copy(shared_data_path("norm_stats", "bridge_orig_action_stats.json"), snap / "norm_stats.json")
    stats, source = load_norm_stats_with_source(config, folder)
    assert source == "declare-lab/nora/norm_stats.json"
    assert stats.key == "bridge_orig" and stats.q99[0] == pytest.approx(0.028309678435325586)


@pytest.mark.parametrize(("variant", "key", "quality"), [
    ("nora", "bridge_orig", 95), ("nora-long", "bridge_orig", 95), ("nora-1.5", "bridge_orig", None),
    ("nora", "libero_10", None),
])
def test_the_jpeg_round_trip_follows_the_reference_for_the_variant(variant, key, quality):
    config = NoraConfig(variant=variant, unnorm_key=key)
    assert config.resolved_jpeg_quality() == quality and config.preprocess().jpeg_quality == quality
    assert NoraConfig(variant="nora-1.5", jpeg_quality=80).resolved_jpeg_quality() == 80
    assert NoraConfig(variant="nora", jpeg_quality=None).resolved_jpeg_quality() is None
