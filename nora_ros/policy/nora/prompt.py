"""NORA's exact prompt: the Qwen2.5-VL chat template, one user turn [image, instruction].

The prompt is what NORA was trained on (DESIGN.md section 6): the default system prompt
"You are a helpful assistant.", one user turn with the image then the instruction, and the
generation prompt ``<|im_start|>assistant\\n``. The image placeholder ``<|image_pad|>`` is
repeated once per merged vision patch (64 for a 224x224 image), as Qwen2.5-VL's processor does.

On the robot the instruction stays the same for a whole trial, so :class:`PromptBuilder`
renders and tokenizes once per instruction and keeps the ids; each step then only needs the
image. Rendering uses jinja2 with transformers' settings (trim_blocks, lstrip_blocks) so a
checkpoint's own template renders identically.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nora_ros.errors import ConfigurationError
from nora_ros.policy.nora.qwen_vocab import IMAGE_PAD_ID
from nora_ros.trials.instruction import MAX_INSTRUCTION_CHARS, validate_instruction

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."
"""Injected by the Qwen2.5-VL template when the conversation has no system turn."""

QWEN25_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)
"""Qwen2.5-VL's chat template (the one in Qwen2.5-VL and NORA checkpoints), used when a
checkpoint ships none."""

IMAGE_PLACEHOLDER = "<|image_pad|>"


def nora_messages(instruction: str) -> list[dict]:
    """The conversation NORA sees: one user turn, the image then the instruction."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]


def render_prompt(instruction: str, chat_template: str = QWEN25_VL_CHAT_TEMPLATE) -> str:
    """The prompt text with a single ``<|image_pad|>`` placeholder, rendered as transformers does."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return env.from_string(chat_template).render(messages=nora_messages(instruction), add_generation_prompt=True)


def expand_image_tokens(ids: list[int], n_image_tokens: int, image_pad_id: int = IMAGE_PAD_ID) -> list[int]:
    """Repeat the single image placeholder id ``n_image_tokens`` times (exactly one must exist)."""
    where = [i for i, t in enumerate(ids) if t == image_pad_id]
    if len(where) != 1:
        raise ConfigurationError(f"prompt template must hold exactly one image placeholder, found {len(where)}")
    i = where[0]
    return ids[:i] + [image_pad_id] * n_image_tokens + ids[i + 1 :]


@dataclass
class PromptBuilder:
    """Token ids of NORA's prompt, computed once per instruction.

    ``tokenizer`` is a ``tokenizers.Tokenizer`` (a transformers fast tokenizer's
    ``backend_tokenizer``); ``n_image_tokens`` is 64 for a 224x224 image. ``lowercase``
    lower-cases the instruction as NORA's training data did. The instruction is validated
    (empty, too long, control characters) before anything else happens.
    """

    tokenizer: object
    n_image_tokens: int
    chat_template: str = QWEN25_VL_CHAT_TEMPLATE
    lowercase: bool = True
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def text(self, instruction: str) -> str:
        """The rendered prompt text (one placeholder) for ``instruction``, after validation."""
        return render_prompt(self.normalize(instruction), self.chat_template)

    def normalize(self, instruction: str) -> str:
        text = validate_instruction(instruction, self.max_instruction_chars)
        return text.lower() if self.lowercase else text

    def ids(self, instruction: str) -> np.ndarray:
        """``(1, L)`` int64 prompt ids for ``instruction`` (cached; the array is read-only)."""
        cached = self._cache.get(instruction)
        if cached is not None:
            return cached
        ids = self.tokenizer.encode(self.text(instruction), add_special_tokens=False).ids
        arr = np.asarray([expand_image_tokens(list(ids), self.n_image_tokens)], dtype=np.int64)
        arr.setflags(write=False)
        if len(self._cache) >= 16:  # one instruction per trial: a small cache is plenty
            self._cache.clear()
        self._cache[instruction] = arr
        return arr
