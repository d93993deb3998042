"""The checkpoint's generation_config.json: the own loop applies what greedy generate applies
(repetition penalty, prompt included) and refuses what it does not."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
from conftest_nora import tiny_checkpoint  # noqa: F401  (session fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ModelLoadError  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.decoding import constrained_greedy  # noqa: E402
from nora_ros.policy.nora.generation import (  # noqa: E402
    GENERATION_CONFIG_FILE,
    KNOWN_SETTINGS,
    CandidatePenalty,
    GreedySettings,
    greedy_settings,
    load_greedy_settings,
)
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, IM_END_ID, VOCAB_SIZE  # noqa: E402

QWEN25_VL_GENERATION = {  # Qwen2.5-VL-3B-Instruct's generation_config.json
    "bos_token_id": 151643, "pad_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1, "transformers_version": "4.49.0",
}
INSTRUCTIONS = ["put the carrot on the plate", "open the drawer", "Move the Spoon to the left", "pick up the red block"]


# ------------------------------------------------------------------ reading the config


def test_qwen25_vl_config_gives_its_penalty_and_sampling_is_ignored():
    settings = greedy_settings(QWEN25_VL_GENERATION, "qwen", min_prompt_tokens=80)
    assert settings == GreedySettings(repetition_penalty=1.05, source="qwen")


@pytest.mark.parametrize(("name", "value"), [
    ("no_repeat_ngram_size", 3), ("bad_words_ids", [[5]]), ("sequence_bias", [[[5], -1.0]]), ("min_new_tokens", 2),
    ("suppress_tokens", [198]), ("begin_suppress_tokens", [198]), ("forced_eos_token_id", IM_END_ID),
    ("forced_bos_token_id", 1), ("num_beams", 4), ("num_beam_groups", 2), ("num_return_sequences", 2),
    ("penalty_alpha", 0.6), ("guidance_scale", 1.5), ("dola_layers", "high"), ("stop_strings", ["\n"]),
    ("encoder_repetition_penalty", 1.2), ("exponential_decay_length_penalty", [5, 1.1]), ("max_time", 1.0),
    ("token_healing", True), ("watermarking_config", {"greenlist_ratio": 0.25}), ("constraints", ["x"]),
])
def test_settings_the_loop_does_not_apply_refuse_to_load_naming_them(name, value):
    with pytest.raises(ModelLoadError, match=f"{name} = "):
        greedy_settings({**QWEN25_VL_GENERATION, name: value}, "cfg", min_prompt_tokens=80)


@pytest.mark.parametrize(("name", "value"), [
    ("num_beams", 1), ("no_repeat_ngram_size", 0), ("suppress_tokens", []), ("guidance_scale", None),
    ("do_sample", True), ("max_new_tokens", 7), ("max_length", 20), ("renormalize_logits", True),
    ("min_length", 80), ("eos_token_id", IM_END_ID), ("some_future_key", 3),
])
def test_defaults_and_settings_without_a_greedy_effect_are_accepted(name, value):
    assert greedy_settings({**QWEN25_VL_GENERATION, name: value}, "cfg", min_prompt_tokens=80).repetition_penalty == 1.05


def test_min_length_beyond_the_shortest_prompt_is_refused():
    with pytest.raises(ModelLoadError, match="min_length = 81 exceeds the shortest prompt"):
        greedy_settings({"min_length": 81}, "cfg", min_prompt_tokens=80)


def test_an_end_token_that_is_not_im_end_is_refused():
    with pytest.raises(ModelLoadError, match="eos_token_id = 151643 does not include <|im_end|>"):
        greedy_settings({"eos_token_id": 151643}, "cfg", min_prompt_tokens=80)


@pytest.mark.parametrize("value", [0, -1.0, "1.05", float("nan"), True])
def test_a_bad_penalty_is_refused(value):
    with pytest.raises(ModelLoadError, match="repetition_penalty must be a positive number"):
        greedy_settings({"repetition_penalty": value}, "cfg", min_prompt_tokens=80)


def test_file_missing_or_malformed(tmp_path):
    assert load_greedy_settings(tmp_path, 80).repetition_penalty == 1.0
    (tmp_path / GENERATION_CONFIG_FILE).write_text("{nope")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        load_greedy_settings(tmp_path, 80)


def test_every_setting_of_the_installed_generation_config_is_decided():
    """A setting added by a newer transformers must be classified before that version is accepted."""
    from transformers import GenerationConfig

    assert set(GenerationConfig().to_dict()) <= KNOWN_SETTINGS


# ------------------------------------------------------------------ the penalty itself


@pytest.mark.parametrize("penalty", [1.05, 1.3, 0.8])
def test_candidate_penalty_is_transformers_repetition_penalty_on_the_candidates(penalty):
    from transformers import RepetitionPenaltyLogitsProcessor

    rng = np.random.default_rng(1)
    candidates = [*range(ACTION_TOKEN_OFFSET, ACTION_TOKEN_OFFSET + 300), IM_END_ID]
    prompt = [151644, 8948, IM_END_ID, 198, 151644, 872, IM_END_ID, ACTION_TOKEN_OFFSET + 4]
    generated = [ACTION_TOKEN_OFFSET + 10, ACTION_TOKEN_OFFSET + 11, ACTION_TOKEN_OFFSET + 10]
    ours = CandidatePenalty(penalty, candidates, torch.tensor([prompt]))
    for token in generated:
        ours.note(token)
    scores = torch.from_numpy(rng.normal(size=(1, VOCAB_SIZE)).astype(np.float32) * 5)
    scores[0, ACTION_TOKEN_OFFSET + 11] = 0.0
    expected = RepetitionPenaltyLogitsProcessor(penalty)(torch.tensor([prompt + generated]), scores.clone())
    assert torch.equal(ours(scores[0, candidates]), expected[0, candidates])
    changed = ours(scores[0, candidates]) != scores[0, candidates]
    assert changed.sum() == 3  # <|im_end|> (twice in the prompt), 4 and 10; 11 scores 0


# ------------------------------------------------------------------ against generate


def _sharpen(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """The tiny checkpoint with every tensor redrawn (seeded) and its own output layer, as NORA-Long.

    The tiny builder's small init barely reacts to image or instruction and, with the output layer
    tied to the embeddings, keeps repeating the last token whatever a penalty does: redrawn, it
    gives different chunks for different inputs and a penalty changes its choices."""
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name not in ("model.safetensors", "config.json"):
            (dst / item.name).symlink_to(item.resolve())
    gen = torch.Generator().manual_seed(1)
    weights = load_file(str(src / "model.safetensors"))
    out = {}
    for key in sorted(weights):
        shape = weights[key].shape
        if len(shape) >= 2:
            std = 1.0 if key.endswith("embed_tokens.weight") else shape[1:].numel() ** -0.5
            out[key] = torch.randn(shape, generator=gen) * std
        else:
            out[key] = (1.0 if "norm" in key else 0.0) + 0.1 * torch.randn(shape, generator=gen)
    embed = next(k for k in out if k.endswith("embed_tokens.weight"))
    out["lm_head.weight"] = torch.randn(out[embed].shape, generator=gen)
    save_file(out, str(dst / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((src / "config.json").read_text())
    config["tie_word_embeddings"] = False
    config.setdefault("text_config", {})["tie_word_embeddings"] = False
    config["nora_ros_variant"] = "nora-long"
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    return dst


@pytest.fixture(scope="module")
def sharp_checkpoint(tiny_checkpoint, tmp_path_factory):  # noqa: F811
    return _sharpen(tiny_checkpoint, tmp_path_factory.mktemp("sharp") / "ckpt")


def _with_penalty(sharp: pathlib.Path, folder: pathlib.Path, penalty: float) -> pathlib.Path:
    """``sharp`` (linked) with a generation_config.json that sets ``repetition_penalty``."""
    folder.mkdir()
    for item in sharp.iterdir():
        if item.name != GENERATION_CONFIG_FILE:
            (folder / item.name).symlink_to(item.resolve())
    doc = json.loads((sharp / GENERATION_CONFIG_FILE).read_text())
    (folder / GENERATION_CONFIG_FILE).write_text(json.dumps({**doc, "repetition_penalty": penalty}, indent=2))
    return folder


@pytest.mark.parametrize("penalty", [1.05, 1.3])
def test_own_loop_with_the_checkpoints_penalty_chooses_what_generate_chooses(sharp_checkpoint, tmp_path, penalty):
    """NORA's reference: GenerationConfig.from_pretrained(checkpoint), do_sample=False, generate; here
    with the FAST constraint as logits_processor, which generate runs after its repetition penalty."""
    from transformers import GenerationConfig, LogitsProcessorList

    folder = _with_penalty(sharp_checkpoint, tmp_path / "ckpt", penalty)
    # Random weights drawn large enough to react to the input also rank action tokens far above
    # <|im_end|> where the chunk ends: the horizon check would refuse them, so it is off here.
    policy = NoraPolicy(NoraConfig(model=str(folder), device="cpu", horizon_margin=0.0))
    assert policy.greedy.repetition_penalty == penalty and policy.horizon == 5
    rng = np.random.default_rng(11)
    chunks, changed = set(), 0
    for i in range(8):
        frame = Frame(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), float(i))
        instruction = INSTRUCTIONS[i % len(INSTRUCTIONS)]
        ours = policy.act(frame, instruction).token_ids
        inputs = policy.model_inputs(frame, instruction)
        config = GenerationConfig.from_pretrained(folder)
        config.do_sample = False
        config.max_new_tokens = policy.max_new_tokens
        policy.processor.begin(inputs["input_ids"].shape[1])
        with torch.inference_mode():
            out = policy.loaded.model.generate(**inputs, generation_config=config,
                                               logits_processor=LogitsProcessorList([policy.processor]))
            plain = constrained_greedy(policy.loaded.model, inputs, policy.processor, policy._head,
                                       policy.max_new_tokens, settings=None)
        assert tuple(out[0, inputs["input_ids"].shape[1]:].tolist()) == ours
        chunks.add(ours)
        changed += tuple(plain) != ours
    assert len(chunks) > 1  # the inputs matter, so the comparison covers more than one path
    assert changed > 0  # the penalty changes choices on this model: without it the test could not fail
