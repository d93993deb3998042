"""Random-weight models at NORA's full size (Qwen2.5-VL-3B backbone; NORA-1.5's 36-layer expert),
for the GPU benchmarks: the architecture is what matters for speed and memory, not the weights."""

from __future__ import annotations

import argparse


def full_size_model(loaded, device: str, dtype: str):
    """A random-weight Qwen2.5-VL of NORA's size (3B backbone, 153713 vocab), built on ``device``."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from nora_ros.policy.nora.qwen_vocab import IM_END_ID, IMAGE_PAD_ID, VISION_END_ID, VISION_START_ID, VOCAB_SIZE

    config = Qwen2_5_VLConfig(
        text_config={"vocab_size": VOCAB_SIZE, "hidden_size": 2048, "intermediate_size": 11008,
                     "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
                     "max_position_embeddings": 128000,
                     "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0},
                     "eos_token_id": IM_END_ID, "tie_word_embeddings": True},
        vision_config={"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                       "out_hidden_size": 2048, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]},
        image_token_id=IMAGE_PAD_ID, video_token_id=IMAGE_PAD_ID + 1,
        vision_start_token_id=VISION_START_ID, vision_end_token_id=VISION_END_ID, tie_word_embeddings=True,
    )
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=getattr(torch, dtype), attn_implementation="sdpa"
        )
    return model.eval()


def full_size_nora15(loaded, device: str, dtype: str):
    """``loaded`` with random weights of NORA-1.5's size: the 3B VLM and its 36-layer expert."""
    import dataclasses

    import torch

    from nora_ros.policy.nora.expert import ExpertConfig
    from nora_ros.policy.nora.flow import ActionFlow

    vlm = full_size_model(loaded, device, dtype)
    with torch.device(device):
        flow = ActionFlow(ExpertConfig.from_vlm(vlm.config.text_config))
    return dataclasses.replace(loaded, vlm=vlm, flow=flow.to(getattr(torch, dtype)).eval())


def refuse_cpu_full_size(args: argparse.Namespace) -> bool:
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.full_size and not device.startswith("cuda"):
        print("--full-size needs a GPU: the 3B model takes ~15 GB in float32 on a CPU and minutes per step "
              "(50 timed steps per path would take hours); run scripts/gpu_bench.sh on a GPU machine")
        return True
    return False
