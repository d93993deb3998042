"""declare-lab/nora's inference path on our loaded model, for the policy benchmark's comparison:
PIL resize, chat template and processor per step, unconstrained ``generate``, action tokens
picked out and FAST-decoded afterwards (read for facts from the reference's ``inference.py``)."""

from __future__ import annotations

import time

import numpy as np


class _FirstCall:
    """A do-nothing logits processor that notes when prefill ended (its first call)."""

    def __init__(self, cuda: bool) -> None:
        self.first_call: float | None = None
        self.cuda = cuda

    def __call__(self, input_ids, scores):
        if self.first_call is None:
            if self.cuda:
                import torch

                torch.cuda.synchronize()
            self.first_call = time.perf_counter()
        return scores


class ReferenceStyle:
    """declare-lab/nora's inference path, on our loaded model (for comparison only)."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.loaded = policy.loaded
        self.processor = self._processor()
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.loaded.folder)

    def _processor(self):
        """The checkpoint's Qwen2.5-VL processor where transformers can build it (it needs
        torchvision for its video part); else the same steps by hand: image processor on the
        PIL image, chat template, tokenizer, image placeholder expanded per merged patch."""
        try:
            from transformers import AutoProcessor

            return AutoProcessor.from_pretrained(self.loaded.folder)
        except Exception:  # noqa: BLE001 - any failure means: do its steps by hand
            return None

    def inputs(self, rgb: np.ndarray, instruction: str) -> dict:
        from PIL import Image

        loaded = self.loaded
        image = Image.fromarray(rgb).resize((224, 224))  # qwen_vl_utils with resized_height/width
        messages = [{"role": "user", "content": [
            {"type": "image", "image": image, "resized_height": 224, "resized_width": 224},
            {"type": "text", "text": instruction}]}]
        if self.processor is not None:
            text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return dict(self.processor(text=[text], images=[image], padding=True, return_tensors="pt"))
        text = self.tokenizer.apply_chat_template(
            messages, chat_template=loaded.chat_template, tokenize=False, add_generation_prompt=True
        )
        vision = loaded.image_processor(images=[image], return_tensors="pt")
        n = int(vision["image_grid_thw"][0].prod()) // loaded.image_processor.merge_size**2
        text = text.replace("<|image_pad|>", "<|image_pad|>" * n, 1)
        enc = dict(self.tokenizer([text], padding=True, return_tensors="pt"))
        # What Qwen2.5-VL's processor adds: which tokens are image tokens (for 3D positions).
        enc["mm_token_type_ids"] = (enc["input_ids"] == self.tokenizer.convert_tokens_to_ids("<|image_pad|>")).int()
        return {**enc, **vision}

    def step(self, rgb: np.ndarray, instruction: str) -> tuple[dict[str, float], int, bool]:
        import torch

        from nora_ros.errors import FastDecodeError
        from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, N_ACTION_TOKENS

        policy, loaded = self.policy, self.loaded
        t0 = time.perf_counter()
        inputs = self.inputs(rgb, instruction)
        inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(getattr(torch, loaded.dtype))
        t1 = time.perf_counter()
        marker = _FirstCall(loaded.device.startswith("cuda"))
        from transformers import GenerationConfig, LogitsProcessorList

        gen = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=policy.max_new_tokens,
                               eos_token_id=self.tokenizer.convert_tokens_to_ids("<|im_end|>"),
                               pad_token_id=self.tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        with torch.inference_mode():
            out = loaded.model.generate(**inputs, generation_config=gen, logits_processor=LogitsProcessorList([marker]))
        t3 = time.perf_counter()
        t2 = marker.first_call or t3
        generated = out[0, inputs["input_ids"].shape[1]:]
        ids = generated[(generated >= ACTION_TOKEN_OFFSET) & (generated < ACTION_TOKEN_OFFSET + N_ACTION_TOKENS)]
        ok = True
        try:
            normalized = loaded.fast.decode((ids - ACTION_TOKEN_OFFSET).tolist(), policy.horizon)
        except FastDecodeError:
            ok = False
            normalized = np.zeros((policy.horizon, 7))  # timing only; the reference returns zeros too
        t4 = time.perf_counter()
        stats = loaded.norm_stats
        _ = 0.5 * (normalized + 1) * (stats.q99 - stats.q01) + stats.q01  # the reference unnormalizes every dim
        t5 = time.perf_counter()
        times = {"preprocess": t1 - t0, "prefill": t2 - t1, "decode": t3 - t2, "fast_decode": t4 - t3,
                 "unnormalize": t5 - t4, "total": t5 - t0}
        return times, int(generated.shape[0]), ok
