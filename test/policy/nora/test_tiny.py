"""The tiny checkpoint and the real loading code: what a NORA checkpoint must hold, and clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest_nora import tiny_checkpoint  # noqa: F401  (session fixture)

pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.errors import ConfigurationError, InvalidInputError, ModelLoadError  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora, load_norm_stats  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, IM_END_ID, VOCAB_SIZE, action_token  # noqa: E402


@pytest.fixture
def checkpoint_copy(tiny_checkpoint, tmp_path):  # noqa: F811
    """A private copy of the tiny checkpoint that a test may damage."""
    dst = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


def test_tiny_checkpoint_holds_what_a_nora_checkpoint_needs(tiny_checkpoint):  # noqa: F811
    names = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
            "chat_template.json", "norm_stats.json", "fast"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)  # safetensors only
    cfg = json.loads((tiny_checkpoint / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert cfg["text_config"]["vocab_size"] == VOCAB_SIZE == 153713
    assert (tiny_checkpoint / "fast" / "tokenizer.json").is_file()


def test_tiny_checkpoint_loads_through_the_real_code(tiny_checkpoint):  # noqa: F811
    loaded = load_nora(NoraConfig(model=str(tiny_checkpoint), device="cpu"))
    assert type(loaded.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert loaded.dtype == "float32" and loaded.device == "cpu"
    assert loaded.model.get_output_embeddings().weight.shape[0] == VOCAB_SIZE
    assert loaded.tokenizer.token_to_id(action_token(2047)) == ACTION_TOKEN_OFFSET + 2047
    assert loaded.tokenizer.token_to_id("<|im_end|>") == IM_END_ID
    assert loaded.norm_stats.key == "bridge_orig" and loaded.norm_stats.mask.tolist() == [True] * 6 + [False]
    assert 256 <= loaded.fast.vocab_size <= 2048
    assert "<|vision_start|><|image_pad|><|vision_end|>" in loaded.chat_template


def test_cli_writes_a_checkpoint_with_the_fallback_vocabulary(tmp_path, capsys):
    from nora_ros.cli import main

    out = tmp_path / "tiny_cli"
    assert main(["tiny-model", str(out), "--fallback-vocab"]) == 0
    assert "small self-built" in (out / "TINY_CHECKPOINT.md").read_text()
    assert str(out) in capsys.readouterr().out
    loaded = load_nora(NoraConfig(model=str(out), device="cpu"))
    # Same special and action ids as the real vocabulary, far fewer real pieces.
    assert loaded.tokenizer.token_to_id(action_token(0)) == ACTION_TOKEN_OFFSET
    assert loaded.tokenizer.get_vocab_size() == VOCAB_SIZE


def test_missing_checkpoint_names_the_path_and_the_remedy(tmp_path):
    missing = tmp_path / "no_such_checkpoint"
    with pytest.raises(ModelLoadError, match=f"{missing}.*does not exist.*tiny-model"):
        load_nora(NoraConfig(model=str(missing)))


def test_hub_id_offline_and_not_cached_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with pytest.raises(ModelLoadError, match="declare-lab/nora.*HF_HUB_OFFLINE.*huggingface-cli download"):
        load_nora(NoraConfig(model="declare-lab/nora"))


def test_checkpoint_without_safetensors_is_refused(checkpoint_copy):
    (checkpoint_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no .safetensors weights"):
        load_nora(NoraConfig(model=str(checkpoint_copy)))


def test_checkpoint_without_action_tokens_is_refused(checkpoint_copy):
    """A plain Qwen2.5-VL vocabulary (no <robot_action_k>) must not load as NORA."""
    tok_file = checkpoint_copy / "tokenizer.json"
    # Rename the action tokens (a plain-text edit: a JSON round trip of 19 MB is slow).
    tok_file.write_text(tok_file.read_text().replace('"<robot_action_', '"<other_token_'))
    with pytest.raises(ModelLoadError, match="lacks NORA's action tokens: 2048 of 2048"):
        load_nora(NoraConfig(model=str(checkpoint_copy)))


def test_checkpoint_without_norm_stats_asks_for_a_file(checkpoint_copy):
    (checkpoint_copy / "norm_stats.json").unlink()
    with pytest.raises(ModelLoadError, match="norm_stats.json.*--norm-stats"):
        load_nora(NoraConfig(model=str(checkpoint_copy)))


def test_a_given_norm_stats_file_replaces_the_checkpoints(checkpoint_copy, bridge_norm_stats_file):
    (checkpoint_copy / "norm_stats.json").unlink()
    stats = load_norm_stats(NoraConfig(model=str(checkpoint_copy), norm_stats=str(bridge_norm_stats_file)), checkpoint_copy)
    np.testing.assert_allclose(stats.q99[0], 0.028309678435325586)


def test_nan_statistics_are_a_clear_error(checkpoint_copy):
    stats_file = checkpoint_copy / "norm_stats.json"
    doc = json.loads(stats_file.read_text())
    doc["bridge_orig"]["action"]["q99"][2] = float("nan")
    stats_file.write_text(json.dumps(doc))
    with pytest.raises(InvalidInputError, match="q99 has non-finite values"):
        load_nora(NoraConfig(model=str(checkpoint_copy)))


def test_unknown_unnorm_key_lists_the_available_ones(tiny_checkpoint):  # noqa: F811
    with pytest.raises(ConfigurationError, match="libero_spatial.*available.*bridge_orig"):
        load_nora(NoraConfig(model=str(tiny_checkpoint), unnorm_key="libero_spatial"))


def test_libero_bounds_file_is_read_by_key(tiny_checkpoint):  # noqa: F811
    from conftest import shared_data_path

    bounds = shared_data_path("norm_stats", "nora_libero_bounds.json")
    stats = load_norm_stats(NoraConfig(model=str(tiny_checkpoint), norm_stats=str(bounds), unnorm_key="libero_object"), tiny_checkpoint)
    assert stats.q01[0] == pytest.approx(-0.5383928418159485)
    assert stats.mask.tolist() == [True] * 7 and stats.binarize_gripper  # the reference's LIBERO handling


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"variant": "nora-xl"}, "variant must be one of"),
        ({"dtype": "int8"}, "dtype must be one of"),
        ({"attention": "flash"}, "attention must be one of"),
        ({"device": "gpu0"}, "device must be"),
        ({"max_instruction_chars": 0}, "max_instruction_chars"),
        ({"jpeg_quality": 0}, "jpeg_quality"),
        ({"model": " "}, "hub ID"),
    ],
)
def test_bad_config_values_say_how_to_fix(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        NoraConfig(**kwargs)


def test_config_defaults_pick_for_the_device():
    from nora_ros.policy.nora.checkpoint import resolve_variant

    cfg = NoraConfig()
    assert cfg.model == "declare-lab/nora" and cfg.unnorm_key == "bridge_orig" and cfg.variant == "auto"
    assert resolve_variant(cfg, None).horizon == 1  # declare-lab/nora is known to be NORA
    assert NoraConfig(variant="nora-long").horizon == 5 and NoraConfig(variant="nora-1.5").horizon == 5
    assert cfg.resolved_dtype("cuda") == "bfloat16" and cfg.resolved_dtype("cpu") == "float32"
    assert NoraConfig(variant="nora-1.5").resolved_dtype("cuda") == "float32"  # as the reference runs it
    assert cfg.resolved_attention() == "sdpa"
    assert cfg.max_instruction_chars == 256 and cfg.lowercase_instruction is True
