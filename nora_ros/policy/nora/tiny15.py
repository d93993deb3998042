"""A tiny random-weight NORA-1.5 checkpoint in the reference's exact layout, for tests and smoke tests.

``nora-ros tiny-model --variant nora-1.5 DIR`` writes the folder :mod:`nora_ros.policy.nora.nora15`
documents: ``model.safetensors`` with the reference's tensor names (``vlm.model.visual.*``,
``vlm.model.language_model.*``, ``vlm.lm_head.weight`` only, as ``safetensors.save_model`` keeps
one name of the tied pair; ``action_expert.*`` and the four projections), ``vlm/config.json`` in
declare-lab/nora-long's flat Qwen2.5-VL format (readable by transformers 4.5x and 5.x) with a
``generation_config.json`` beside it (what the FAST+ head's greedy decoding would honour),
``processor/`` with NORA's tokenizer, image processor config and chat template, ``norm_stats.json``,
a FAST+ table in ``fast/`` and the reference's ``config.json`` record of its constructor arguments.

Sizes: the VLM must have 16 attention heads so that the expert's 6 heads (width
``int(0.375 H)``) are as wide as the VLM's: hidden 128, 16 heads of 8, 2 KV heads, 2 layers;
expert 48 wide, intermediate 256. Weights are drawn ``N(0, 1/fan_in)`` (embeddings ``N(0, 1)``),
biases ``N(0, 0.01)``, norm gains ``1 + N(0, 0.01)``, so attention is far from uniform and a wrong
rotary base, position or mask changes the output visibly. Its actions mean nothing.
"""

from __future__ import annotations

import json
import logging
import pathlib
from dataclasses import dataclass

from nora_ros.errors import ConfigurationError
from nora_ros.policy.nora.nora15 import PROCESSOR_SUBFOLDER, TIED_PAIR, VLM_PREFIX, VLM_SUBFOLDER, WEIGHTS_FILE
from nora_ros.policy.nora.qwen_vocab import (
    ENDOFTEXT_ID,
    IM_END_ID,
    IMAGE_PAD_ID,
    VISION_END_ID,
    VISION_START_ID,
    VOCAB_SIZE,
)

log = logging.getLogger(__name__)

REFERENCE_INIT_RECORD = {
    "action_chunk_length": 5,
    "action_dim": 7,
    "fast_tokenizer_id": "physical-intelligence/fast",
    "lm_expert_num_attention_head": 6,
    "lm_expert_width_multiplier": 0.375,
    "processor_id": "declare-lab/nora",
    "vlm_model_id": "declare-lab/nora-long",
}
"""What ``PyTorchModelHubMixin`` writes as ``config.json`` for the reference (its defaults); the
reference's loader ignores it, and so does ours."""


@dataclass(frozen=True)
class Tiny15Spec:
    """Sizes of the tiny NORA-1.5; ``heads`` must be 16 for the expert's 6 heads to fit."""

    hidden: int = 128
    heads: int = 16
    kv_heads: int = 2
    layers: int = 2
    intermediate: int = 256
    vision_hidden: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden % self.heads or (self.hidden // self.heads) % 2 or self.heads % self.kv_heads:
            raise ConfigurationError(f"hidden {self.hidden} must split into {self.heads} even heads, a multiple "
                                     f"of {self.kv_heads} KV heads")

    def vlm_config(self) -> dict:
        """The VLM's ``config.json``, in the flat layout of declare-lab/nora-long's (tiny values)."""
        half = self.hidden // self.heads // 2
        t = half // 4
        h = (half - t) // 2
        return {
            "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
            "attention_dropout": 0.0, "bos_token_id": ENDOFTEXT_ID, "eos_token_id": IM_END_ID,
            "vision_start_token_id": VISION_START_ID, "vision_end_token_id": VISION_END_ID,
            "vision_token_id": IMAGE_PAD_ID - 1, "image_token_id": IMAGE_PAD_ID, "video_token_id": IMAGE_PAD_ID + 1,
            "hidden_act": "silu", "hidden_size": self.hidden, "initializer_range": 0.02,
            "intermediate_size": self.intermediate, "max_position_embeddings": 4096, "max_window_layers": 70,
            "num_attention_heads": self.heads, "num_hidden_layers": self.layers, "num_key_value_heads": self.kv_heads,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
            "rope_scaling": {"type": "mrope", "mrope_section": [t, h, half - t - h]},
            "sliding_window": 32768, "use_sliding_window": False, "tie_word_embeddings": True,
            "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": VOCAB_SIZE,
            "vision_config": {
                "depth": self.vision_depth, "hidden_act": "silu", "hidden_size": self.vision_hidden,
                "intermediate_size": 2 * self.vision_hidden, "num_heads": self.vision_heads, "in_chans": 3,
                "out_hidden_size": self.hidden, "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
                "temporal_patch_size": 2, "window_size": 112, "fullatt_block_indexes": [self.vision_depth - 1],
                "tokens_per_second": 2,
            },
        }


def _redraw(module: object, generator: object) -> None:
    """Discriminative random weights (see the module docstring), deterministic for a generator."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                std = 1.0 if name.endswith("embed_tokens.weight") else p[0].numel() ** -0.5
                p.copy_(torch.randn(p.shape, generator=generator) * std)
            elif "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=generator))


def _processor_files(out: pathlib.Path, real_vocab: bool) -> str:
    """Tokenizer, image processor, chat template, statistics and FAST+ table, the same files as
    the tiny NORA's, in NORA-1.5's layout. Returns where they came from."""
    from nora_ros.policy.nora.tiny import write_processor_files

    return write_processor_files(out / PROCESSOR_SUBFOLDER, out, out, real_vocab)


def build_tiny_nora15_checkpoint(out_dir: str | pathlib.Path, spec: Tiny15Spec | None = None,
                                 real_vocab: bool = True) -> pathlib.Path:
    """Write a tiny NORA-1.5 checkpoint into ``out_dir`` (created) and return the folder."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2_5_VLConfig

    from nora_ros.policy.nora.expert import ExpertConfig
    from nora_ros.policy.nora.flow import ActionFlow
    from nora_ros.policy.nora.nora15 import build_empty_vlm

    spec = spec or Tiny15Spec()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files_note = _processor_files(out, real_vocab)
    (out / VLM_SUBFOLDER).mkdir(exist_ok=True)
    (out / VLM_SUBFOLDER / "config.json").write_text(json.dumps(spec.vlm_config(), indent=2) + "\n")
    generation = {"bos_token_id": ENDOFTEXT_ID, "eos_token_id": [IM_END_ID, ENDOFTEXT_ID],
                  "pad_token_id": ENDOFTEXT_ID, "do_sample": False}
    (out / VLM_SUBFOLDER / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    (out / "config.json").write_text(json.dumps(REFERENCE_INIT_RECORD, indent=2) + "\n")

    vlm_config = Qwen2_5_VLConfig.from_pretrained(out / VLM_SUBFOLDER)
    vlm = build_empty_vlm(vlm_config, "sdpa")
    flow = ActionFlow(ExpertConfig.from_vlm(vlm_config.text_config))
    generator = torch.Generator().manual_seed(spec.seed)
    _redraw(vlm, generator)
    _redraw(flow, generator)
    vlm.tie_weights()
    tensors = {VLM_PREFIX + k: v for k, v in vlm.state_dict().items()}
    del tensors[TIED_PAIR[1]]  # the reference's file keeps lm_head of the tied pair
    tensors.update(flow.state_dict())
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    (out / "TINY_CHECKPOINT.md").write_text(
        "Tiny random-weight NORA-1.5 checkpoint (nora-ros tiny-model --variant nora-1.5). Not a trained model.\n"
        f"VLM: hidden {spec.hidden}, {spec.heads} heads, {spec.kv_heads} KV heads, {spec.layers} layers; action expert "
        f"{flow.expert_config.hidden} wide, 6 heads, intermediate {flow.expert_config.intermediate}; seed {spec.seed}.\n"
        f"Layout: model.safetensors (reference tensor names), vlm/config.json (nora-long format), processor/, "
        f"norm_stats.json, fast/. {files_note}\n")
    log.info("tiny NORA-1.5 checkpoint written to %s", out)
    return out
