"""One observation as Qwen2.5-VL's model inputs, without the processor.

Shared by NORA's token head (:class:`~nora_ros.policy.nora.policy.NoraPolicy`) and NORA-1.5's
flow head (:class:`~nora_ros.policy.nora.flow_policy.Nora15Policy`): the same prompt ids (cached
per instruction by :class:`~nora_ros.policy.nora.prompt.PromptBuilder`) and the same image path
(TF-style lanczos3 to 224x224, numpy patches) as the reference's processor gives.
"""

from __future__ import annotations

from typing import Any

from nora_ros.camera.frame import Frame
from nora_ros.camera.preprocess import PatchSpec, PreprocessConfig, pixel_patches, to_model_image
from nora_ros.policy.nora.prompt import PromptBuilder
from nora_ros.policy.nora.qwen_vocab import IMAGE_PAD_ID


def observation_inputs(prompt: PromptBuilder, preprocess: PreprocessConfig, patch_spec: PatchSpec, frame: Frame,
                       instruction: str, device: str, dtype: Any) -> dict:
    """The prompt tensors for ``frame`` under ``instruction`` on ``device`` (pixels in ``dtype``).

    ``mm_token_type_ids`` marks the image tokens (1) so that Qwen2.5-VL gives them their 3D
    (time, row, column) rotary positions; without it transformers falls back to 1D positions.
    """
    import torch

    prompt_ids = prompt.ids(instruction)
    rgb = to_model_image(frame.image, frame.encoding, preprocess)
    pixel_values, grid = pixel_patches(rgb, patch_spec)
    input_ids = torch.from_numpy(prompt_ids.copy()).to(device)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values": torch.from_numpy(pixel_values).to(device=device, dtype=dtype),
        "image_grid_thw": torch.from_numpy(grid).to(device),
        "mm_token_type_ids": (input_ids == IMAGE_PAD_ID).to(torch.int32),
    }
