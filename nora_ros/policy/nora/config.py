"""What selects and runs a NORA checkpoint: :class:`NoraConfig` and the variants' horizons.

Kept apart from loading and inference so the node parameter specs and the CLI can read the
fields and defaults without importing torch.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nora_ros.actions import BRIDGE_STEP_PERIOD
from nora_ros.camera.preprocess import ASPECTS, MODEL_IMAGE_SIZE, PreprocessConfig
from nora_ros.errors import ConfigurationError
from nora_ros.trials.instruction import MAX_INSTRUCTION_CHARS

VARIANT_HORIZON = {"nora": 1, "nora-long": 5, "nora-1.5": 5}
"""Actions per chunk: NORA predicts one step, NORA-Long and NORA-1.5 five (all at 5 Hz)."""

AUTO_VARIANT = "auto"
"""``variant`` default: taken from the checkpoint where it is known (see
:func:`nora_ros.policy.nora.checkpoint.checkpoint_variant`), else the policy refuses to start."""

HORIZON_MARGIN = 5.0
"""Default ``horizon_margin``: logits by which the model must prefer what the length constraint
forbids (ending before the chunk is complete, or going on after it) for the policy to refuse the
chunk as a horizon mismatch: e^5, about 150 to 1. A trained checkpoint of the right horizon ends
where the constraint does; one of another horizon prefers the other far more strongly; the
default tiny random-weight model's scores differ by a fraction of a logit (a random model with
large logits can exceed it: it is then as unfit to act as a mismatched one)."""

AUTO_JPEG = -1
"""``jpeg_quality`` default: the reference's preprocessing for the variant (see
:meth:`NoraConfig.resolved_jpeg_quality`)."""

REFERENCE_JPEG_QUALITY = 95
"""The reference WidowX loop's ``tf.image.encode_jpeg`` quality (as the RLDS training frames)."""

ACTION_HEADS = ("flow", "fast")
"""NORA-1.5's two heads: the flow-matching action expert, or FAST+ tokens from the same VLM."""

DEFAULT_MODEL = "declare-lab/nora"
DEFAULT_FAST_TOKENIZER = "physical-intelligence/fast"
"""The FAST+ universal table NORA uses; a checkpoint folder's ``fast/`` takes precedence."""

DTYPES = ("float32", "bfloat16", "float16")
ACCELERATE_MODES = ("auto", "off", "on")
"""``accelerate``: ``on`` runs the decode steps (NORA) and the Euler steps (NORA-1.5) against a
preallocated cache, compiled (CUDA graphs through ``torch.compile(mode="reduce-overhead")`` on a
GPU), where a probe observation at load gives the same tokens (NORA) or actions within
tolerance (NORA-1.5) as the eager path, else it falls back to eager and logs why; ``off``: eager;
``auto``: off for now everywhere (issue 16: until GPU figures show the gain on a real card), to
become ``on`` on a GPU once they do (:func:`nora_ros.policy.nora.accel.accelerate_wanted`)."""
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")


@dataclass(frozen=True)
class NoraConfig:
    """Everything that selects and runs a NORA checkpoint. ``None`` means "pick for the device".

    - ``model``: local checkpoint folder or hub ID (``declare-lab/nora``, ``declare-lab/nora-long``,
      fine-tuned ones).
    - ``variant``: ``nora`` (1 action per chunk), ``nora-long`` (5), ``nora-1.5`` (5, flow-matching
      action expert), or ``auto``: the checkpoint's own where it is known.
    - ``action_head`` (NORA-1.5): ``flow`` (the action expert; the authors found it better in
      simulation) or ``fast`` (FAST+ tokens from the same VLM; better on their real arm).
    - ``flow_steps`` (NORA-1.5, flow): Euler steps from noise to actions (the reference: 10).
    - ``seed`` (NORA-1.5, flow): seed of the initial noise; the generator restarts at every
      ``reset`` (each trial), so a replay reproduces a run.
    - ``unnorm_key``: which statistics un-normalize actions (``bridge_orig``, LIBERO suites).
    - ``norm_stats``: a statistics file to use instead of the checkpoint's ``norm_stats.json``.
    - ``fast_tokenizer``: FAST+ table (folder, ``tokenizer.json`` or hub ID); ``None`` uses the
      checkpoint's ``fast/`` folder if it has one, else ``physical-intelligence/fast``.
    - ``device``: ``cuda``, ``cuda:1``, ``cpu``; ``None``: the GPU when there is one.
    - ``dtype``: ``bfloat16`` / ``float16`` / ``float32``; ``None``: bfloat16 on a GPU and float32 on a
      CPU for NORA / NORA-Long (the reference's bf16), float32 everywhere for NORA-1.5 (its
      reference runs in float32).
    - ``attention``: ``sdpa`` / ``eager`` / ``flash_attention_2``; ``None``: sdpa.
    - ``lowercase_instruction``: lower-case instructions, as NORA's training data was.
    - ``max_instruction_chars``: longer instructions are rejected, not cut.
    - ``jpeg_quality``: JPEG round trip at this quality before resizing, ``None`` skips it; ``-1``
      (default): as the reference does for the variant: 95 for NORA / NORA-Long with Bridge
      statistics (the reference WidowX loop), none for NORA-1.5 and LIBERO.
    - ``horizon_margin``: logits by which the model must prefer ending early, or going on after
      the chunk, for the chunk to be refused as a horizon mismatch (see
      :data:`HORIZON_MARGIN`); 0 turns the check off.
    - ``image_aspect``: ``squash`` a frame that is not 4:3 to the square as the reference does
      (warned once), or ``crop`` its centre to 4:3 first.
    - ``step_period``: seconds per action (Bridge: 0.2, NORA ran at 5 Hz).
    - ``accelerate``: ``auto`` / ``off`` / ``on`` (see :data:`ACCELERATE_MODES`).
    """

    model: str = DEFAULT_MODEL
    variant: str = AUTO_VARIANT
    action_head: str = "flow"
    flow_steps: int = 10
    seed: int = 0
    unnorm_key: str = "bridge_orig"
    norm_stats: str | None = None
    fast_tokenizer: str | None = None
    device: str | None = None
    dtype: str | None = None
    attention: str | None = None
    lowercase_instruction: bool = True
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    jpeg_quality: int | None = AUTO_JPEG
    image_aspect: str = "squash"
    horizon_margin: float = HORIZON_MARGIN
    step_period: float = BRIDGE_STEP_PERIOD
    accelerate: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigurationError("model must be a checkpoint folder or a hub ID such as 'declare-lab/nora'")
        if self.variant not in VARIANT_HORIZON and self.variant != AUTO_VARIANT:
            raise ConfigurationError(
                f"variant must be one of {[AUTO_VARIANT, *VARIANT_HORIZON]}, got '{self.variant}'")
        if self.action_head not in ACTION_HEADS:
            raise ConfigurationError(f"action_head must be one of {ACTION_HEADS}, got '{self.action_head}'")
        if isinstance(self.flow_steps, bool) or not isinstance(self.flow_steps, int) or not 1 <= self.flow_steps <= 1000:
            raise ConfigurationError(f"flow_steps must be an integer in 1..1000 (the reference uses 10), got {self.flow_steps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ConfigurationError(f"seed must be a non-negative integer, got {self.seed!r}")
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
        if self.jpeg_quality != AUTO_JPEG:
            PreprocessConfig(MODEL_IMAGE_SIZE, self.jpeg_quality)  # validates jpeg_quality
        if not (self.horizon_margin >= 0.0 and math.isfinite(self.horizon_margin)):
            raise ConfigurationError(f"horizon_margin must be >= 0 logits (0: no check), got {self.horizon_margin}")
        if self.accelerate not in ACCELERATE_MODES:
            raise ConfigurationError(f"accelerate must be one of {ACCELERATE_MODES}, got {self.accelerate!r}")
        if self.image_aspect not in ASPECTS:
            raise ConfigurationError(f"image_aspect must be one of {ASPECTS}, got '{self.image_aspect}'")

    @property
    def horizon(self) -> int:
        """Actions per chunk of the configured variant (``auto`` is resolved against the
        checkpoint at load: :meth:`with_variant`)."""
        if self.variant == AUTO_VARIANT:
            raise ConfigurationError("variant 'auto' is resolved when the checkpoint is loaded; its horizon is "
                                     "not known before (give variant explicitly to use it without a checkpoint)")
        return VARIANT_HORIZON[self.variant]

    def with_variant(self, variant: str) -> NoraConfig:
        """This config with ``variant`` resolved (a copy; checked like any config)."""
        import dataclasses

        return dataclasses.replace(self, variant=variant)

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
        if self.variant == "nora-1.5":
            return "float32"  # the reference loads without a dtype: float32 (bf16 moves its actions)
        return "bfloat16" if device.startswith("cuda") else "float32"

    def resolved_jpeg_quality(self) -> int | None:
        """The JPEG quality the reference uses for this variant and statistics, unless one is set:
        95 for NORA / NORA-Long on Bridge (its WidowX loop), none for NORA-1.5 (its reference
        resizes the frame as is) and for LIBERO (NORA's LIBERO loop)."""
        if self.jpeg_quality != AUTO_JPEG:
            return self.jpeg_quality
        if self.variant in ("nora", "nora-long") and self.unnorm_key == "bridge_orig":
            return REFERENCE_JPEG_QUALITY
        return None

    def preprocess(self) -> PreprocessConfig:
        """How this config's frames become the model image."""
        return PreprocessConfig(MODEL_IMAGE_SIZE, self.resolved_jpeg_quality(), self.image_aspect)

    def resolved_attention(self) -> str:
        return self.attention or "sdpa"

