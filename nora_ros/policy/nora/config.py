"""What selects and runs a NORA checkpoint: :class:`NoraConfig` and the variants' horizons.

Kept apart from loading and inference so the node parameter specs and the CLI can read the
fields and defaults without importing torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nora_ros.actions import BRIDGE_STEP_PERIOD
from nora_ros.camera.preprocess import MODEL_IMAGE_SIZE, PreprocessConfig
from nora_ros.errors import ConfigurationError
from nora_ros.trials.instruction import MAX_INSTRUCTION_CHARS

VARIANT_HORIZON = {"nora": 1, "nora-long": 5}
"""Actions per chunk: NORA predicts one step, NORA-Long five (both at 5 Hz)."""

DEFAULT_MODEL = "declare-lab/nora"
DEFAULT_FAST_TOKENIZER = "physical-intelligence/fast"
"""The FAST+ universal table NORA uses; a checkpoint folder's ``fast/`` takes precedence."""

DTYPES = ("float32", "bfloat16", "float16")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class NoraConfig:
    """Everything that selects and runs a NORA checkpoint. ``None`` means "pick for the device".

    - ``model``: local checkpoint folder or hub ID (``declare-lab/nora``, ``declare-lab/nora-long``,
      fine-tuned ones).
    - ``variant``: ``nora`` (1 action per chunk) or ``nora-long`` (5).
    - ``unnorm_key``: which statistics un-normalize actions (``bridge_orig``, LIBERO suites).
    - ``norm_stats``: a statistics file to use instead of the checkpoint's ``norm_stats.json``.
    - ``fast_tokenizer``: FAST+ table (folder, ``tokenizer.json`` or hub ID); ``None`` uses the
      checkpoint's ``fast/`` folder if it has one, else ``physical-intelligence/fast``.
    - ``device``: ``cuda``, ``cuda:1``, ``cpu``; ``None``: the GPU when there is one.
    - ``dtype``: ``bfloat16`` / ``float16`` / ``float32``; ``None``: bfloat16 on a GPU, float32 on a CPU.
    - ``attention``: ``sdpa`` / ``eager`` / ``flash_attention_2``; ``None``: sdpa.
    - ``lowercase_instruction``: lower-case instructions, as NORA's training data was.
    - ``max_instruction_chars``: longer instructions are rejected, not cut.
    - ``jpeg_quality``: JPEG round trip before resizing (the reference loop's 95), ``None`` skips it.
    - ``step_period``: seconds per action (Bridge: 0.2, NORA ran at 5 Hz).
    """

    model: str = DEFAULT_MODEL
    variant: str = "nora"
    unnorm_key: str = "bridge_orig"
    norm_stats: str | None = None
    fast_tokenizer: str | None = None
    device: str | None = None
    dtype: str | None = None
    attention: str | None = None
    lowercase_instruction: bool = True
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    jpeg_quality: int | None = None
    step_period: float = BRIDGE_STEP_PERIOD

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError("model must be a checkpoint folder or a hub ID such as 'declare-lab/nora'")
        if self.variant not in VARIANT_HORIZON:
            raise ConfigurationError(f"variant must be one of {sorted(VARIANT_HORIZON)}, got '{self.variant}'")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ConfigurationError(f"dtype must be one of {DTYPES} or None (auto), got '{self.dtype}'")
        if self.attention is not None and self.attention not in ATTENTIONS:
            raise ConfigurationError(f"attention must be one of {ATTENTIONS} or None (auto), got '{self.attention}'")
        if self.device is not None and not re.fullmatch(r"cpu|cuda(:\d+)?|mps", self.device):
            raise ConfigurationError(f"device must be 'cpu', 'cuda', 'cuda:N' or None (auto), got '{self.device}'")
        if not isinstance(self.max_instruction_chars, int) or not 1 <= self.max_instruction_chars <= 4096:
            raise ConfigurationError(f"max_instruction_chars must be 1..4096, got {self.max_instruction_chars}")
        if not (self.step_period > 0):
            raise ConfigurationError(f"step_period must be positive seconds, got {self.step_period}")
        if not self.unnorm_key:
            raise ConfigurationError("unnorm_key must name a statistics entry, e.g. 'bridge_orig'")
        PreprocessConfig(MODEL_IMAGE_SIZE, self.jpeg_quality)  # validates jpeg_quality

    @property
    def horizon(self) -> int:
        return VARIANT_HORIZON[self.variant]

    def resolved_device(self) -> str:
        import torch

        if self.device is not None:
            if self.device.startswith("cuda") and not torch.cuda.is_available():
                raise ConfigurationError(f"device '{self.device}' requested but CUDA is not available; use device='cpu'")
            return self.device
        return "cuda" if torch.cuda.is_available() else "cpu"

    def resolved_dtype(self, device: str) -> str:
        if self.dtype is not None:
            return self.dtype
        return "bfloat16" if device.startswith("cuda") else "float32"

    def resolved_attention(self) -> str:
        return self.attention or "sdpa"

