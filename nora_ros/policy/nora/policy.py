"""The NORA backend: Qwen2.5-VL + FAST+ through transformers, behind the Policy interface.

One observation becomes one action chunk in five timed stages:

1. ``preprocess``: the frame is resized to 224x224 (lanczos3, antialiased, as in training) and
   cut into vision patches with numpy (:mod:`nora_ros.camera.preprocess`); the prompt's token ids
   are computed once per instruction (:mod:`nora_ros.policy.nora.prompt`). No PIL, no processor
   call per step.
2. ``prefill`` and 3. ``decode``: greedy decoding restricted to the action tokens and
   ``<|im_end|>`` by a length-aware FAST+ constraint, in our own loop that scores only those
   2049 output rows (:mod:`nora_ros.policy.nora.decoding`; same choices as ``generate`` with the
   constraint's LogitsProcessor), so the output can only spell exactly ``T x 7``
   coefficients and stops there.
4. ``fast_decode``: FAST+ tokens to a normalized ``(T, 7)`` chunk; any malformed sequence
   raises :class:`PolicyError` (from :class:`FastDecodeError`) and never becomes motion.
5. ``unnormalize``: ``[-1, 1]`` to Bridge units where the statistics' mask is true; values
   outside ``[-1, 1]`` (NORA's training range) and a gripper outside ``[0, 1]`` are clipped,
   logged and reported in the chunk's ``metadata``.

Loading never runs remote code, reads safetensors weights only, honours ``HF_HUB_OFFLINE``,
and checks the vocabulary really holds NORA's 2048 action tokens.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import re
import time
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ACTION_DIM, BRIDGE_STEP_PERIOD, GRIPPER_DIM, ActionChunk, NormStats
from nora_ros.camera.frame import Frame
from nora_ros.camera.preprocess import MODEL_IMAGE_SIZE, PatchSpec, PreprocessConfig, pixel_patches, to_model_image
from nora_ros.errors import ConfigurationError, FastDecodeError, ModelLoadError, NoraError, PolicyError
from nora_ros.policy.base import Policy
from nora_ros.policy.nora.prompt import QWEN25_VL_CHAT_TEMPLATE, PromptBuilder
from nora_ros.policy.nora.qwen_vocab import (
    ACTION_TOKEN_OFFSET,
    IM_END_ID,
    IMAGE_PAD_ID,
    N_ACTION_TOKENS,
    VOCAB_SIZE,
    action_token,
)
from nora_ros.policy.nora.tiny import FAST_SUBFOLDER, NORM_STATS_FILE
from nora_ros.trials.instruction import MAX_INSTRUCTION_CHARS

CLIP_LOG_PERIOD = 5.0
"""Seconds between two warnings about actions clipped to the training range."""
log = logging.getLogger(__name__)

VARIANT_HORIZON = {"nora": 1, "nora-long": 5}
"""Actions per chunk: NORA predicts one step, NORA-Long five (both at 5 Hz)."""

DEFAULT_MODEL = "declare-lab/nora"
DEFAULT_FAST_TOKENIZER = "physical-intelligence/fast"
"""The FAST+ universal table NORA uses; a checkpoint folder's ``fast/`` takes precedence."""

DTYPES = ("float32", "bfloat16", "float16")
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


# --------------------------------------------------------------------------- loading


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_checkpoint(model: str, what: str = "checkpoint", patterns: tuple[str, ...] | None = None) -> pathlib.Path:
    """A local folder for ``model`` (a folder, or a hub ID fetched to / found in the HF cache).

    Raises :class:`ModelLoadError` naming the path or ID and what to do.
    """
    path = pathlib.Path(model).expanduser()
    if path.exists():
        return path
    if not _HUB_ID.match(model) or model.startswith((".", "/", "~")):
        raise ModelLoadError(
            f"{what} folder {path} does not exist: give an existing folder or a hub ID such as '{DEFAULT_MODEL}' "
            "(`nora-ros tiny-model OUT_DIR` writes a small test checkpoint)"
        )
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(
            repo_id=model,
            allow_patterns=list(patterns) if patterns else ["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"],
            local_files_only=_offline(),
        )
    except Exception as exc:  # hub errors are many types: name the ID and the remedy
        hint = (
            "HF_HUB_OFFLINE is set and it is not in the local cache: download it on a machine with network access "
            f"(`huggingface-cli download {model}`) and copy the cache, or pass a local folder"
            if _offline()
            else f"check the ID and your network, or download it first (`huggingface-cli download {model}`) "
            "and pass the folder"
        )
        raise ModelLoadError(f"cannot get {what} '{model}' from the Hugging Face hub ({type(exc).__name__}: {exc}); {hint}") from exc
    return pathlib.Path(local)


def _read_chat_template(folder: pathlib.Path) -> str:
    """The checkpoint's own chat template: processor files, then tokenizer_config.json."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    for name in ("chat_template.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            tmpl = json.loads(path.read_text()).get("chat_template")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ModelLoadError(f"{path} is not valid JSON ({exc})") from exc
        if isinstance(tmpl, str) and tmpl:
            return tmpl
    log.warning("checkpoint %s has no chat template; using Qwen2.5-VL's", folder)
    return QWEN25_VL_CHAT_TEMPLATE


def check_action_vocabulary(tokenizer: object, where: str) -> None:
    """Raise :class:`ModelLoadError` unless the vocabulary has NORA's layout.

    A plain Qwen2.5-VL checkpoint (no ``<robot_action_k>`` tokens) would otherwise generate
    text whose ids happen to fall in the action range, or nothing usable at all.
    """
    vocab = tokenizer.get_vocab()
    wrong = [k for k in range(N_ACTION_TOKENS) if vocab.get(action_token(k)) != ACTION_TOKEN_OFFSET + k]
    if wrong:
        k = wrong[0]
        raise ModelLoadError(
            f"{where} lacks NORA's action tokens: {len(wrong)} of {N_ACTION_TOKENS} <robot_action_k> tokens are "
            f"missing or misplaced (e.g. {action_token(k)} is id {vocab.get(action_token(k))}, expected "
            f"{ACTION_TOKEN_OFFSET + k}); is this a plain Qwen2.5-VL checkpoint? Use a NORA checkpoint "
            f"such as {DEFAULT_MODEL}"
        )
    for name, want in (("<|im_end|>", IM_END_ID), ("<|image_pad|>", IMAGE_PAD_ID)):
        if vocab.get(name) != want:
            raise ModelLoadError(f"{where}: token {name} is id {vocab.get(name)}, expected {want} (Qwen2.5 layout)")


def load_tokenizer(folder: pathlib.Path) -> object:
    """The checkpoint's ``tokenizer.json`` as a ``tokenizers.Tokenizer``.

    Read by the Rust library directly: transformers 5 rebuilds a 150k-entry BPE in Python
    (seconds), and the policy only needs ids. A checkpoint without ``tokenizer.json`` (only
    vocab.json + merges.txt) goes through AutoTokenizer once and is converted.
    """
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    try:
        if path.is_file():
            return Tokenizer.from_file(str(path))
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(folder, trust_remote_code=False).backend_tokenizer
    except Exception as exc:  # tokenizers raises bare Exceptions on malformed files
        raise ModelLoadError(f"cannot load the tokenizer of {folder}: {exc}") from exc


def load_norm_stats(config: NoraConfig, folder: pathlib.Path | None) -> NormStats:
    """Statistics by ``unnorm_key`` from ``config.norm_stats`` or the checkpoint's norm_stats.json."""
    if config.norm_stats is not None:
        return NormStats.from_json(config.norm_stats, config.unnorm_key)
    path = folder / NORM_STATS_FILE if folder is not None else None
    if path is None or not path.is_file():
        raise ModelLoadError(
            f"checkpoint {config.model} has no {NORM_STATS_FILE}: pass the statistics file explicitly "
            "(NoraConfig.norm_stats / --norm-stats, e.g. ../shared/data/norm_stats/bridge_orig_action_stats.json)"
        )
    return NormStats.from_json(path, config.unnorm_key)


def load_fast_tokenizer(config: NoraConfig, folder: pathlib.Path) -> object:
    """The FAST+ table: ``config.fast_tokenizer``, else the checkpoint's ``fast/``, else the hub's."""
    from nora_ros.policy.fast.tokenizer import FastTokenizer

    source = config.fast_tokenizer
    if source is None:
        source = str(folder / FAST_SUBFOLDER) if (folder / FAST_SUBFOLDER).is_dir() else DEFAULT_FAST_TOKENIZER
    path = resolve_checkpoint(source, what="FAST+ tokenizer", patterns=("tokenizer.json", "processor_config.json"))
    try:
        return FastTokenizer.load(path)
    except NoraError as exc:
        raise ModelLoadError(f"FAST+ tokenizer '{source}' cannot be loaded: {exc}") from exc


@dataclass(frozen=True)
class LoadedNora:
    """What :func:`load_nora` returns: the model and everything needed to prompt and decode it."""

    model: object
    tokenizer: object
    image_processor: object
    chat_template: str
    fast: object
    norm_stats: NormStats
    folder: pathlib.Path
    device: str
    dtype: str


def load_nora(config: NoraConfig) -> LoadedNora:
    """Load the checkpoint ``config.model`` (see :class:`NoraConfig`); raise ModelLoadError if unusable."""
    import torch
    from transformers import AutoImageProcessor, Qwen2_5_VLForConditionalGeneration

    folder = resolve_checkpoint(config.model)
    if not folder.is_dir():
        raise ModelLoadError(f"checkpoint {folder} is a file; give the checkpoint folder (with config.json)")
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"checkpoint folder {folder} has no config.json: is it a Qwen2.5-VL / NORA checkpoint?")
    if not any(folder.glob("*.safetensors")):
        raise ModelLoadError(
            f"checkpoint folder {folder} has no .safetensors weights (only safetensors are loaded, never pickles): "
            "download the full checkpoint or convert its weights to safetensors"
        )
    norm_stats = load_norm_stats(config, folder)
    tokenizer = load_tokenizer(folder)
    check_action_vocabulary(tokenizer, f"checkpoint {folder}")
    fast = load_fast_tokenizer(config, folder)
    device = config.resolved_device()
    dtype = config.resolved_dtype(device)
    try:
        image_processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the image processor of {folder}: {exc}") from exc
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            folder,
            dtype=getattr(torch, dtype),
            attn_implementation=config.resolved_attention(),
            use_safetensors=True,
            trust_remote_code=False,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load Qwen2.5-VL weights from {folder}: {exc}") from exc
    model = model.to(device).eval()
    n_out = int(model.get_output_embeddings().weight.shape[0])
    if n_out < VOCAB_SIZE:
        raise ModelLoadError(
            f"checkpoint {folder}: the model's output layer has {n_out} entries, fewer than NORA's {VOCAB_SIZE}: "
            "it cannot produce the action tokens"
        )
    return LoadedNora(
        model=model,
        tokenizer=tokenizer,
        image_processor=image_processor,
        chat_template=_read_chat_template(folder),
        fast=fast,
        norm_stats=norm_stats,
        folder=folder,
        device=device,
        dtype=dtype,
    )


# --------------------------------------------------------------------------- the policy


def finish_actions(normalized: np.ndarray, stats: NormStats) -> tuple[np.ndarray, dict[str, object]]:
    """Unnormalize a ``(T, 7)`` chunk; clip what lies outside the training range and say so.

    Normalized values beyond ``[-1, 1]`` are outside everything NORA was trained on (its
    targets were clipped there); they are clipped back and counted. The gripper ends in
    ``[0, 1]``. Returns the actions and a report (empty dict when nothing was clipped).
    """
    x = np.asarray(normalized, dtype=np.float64)
    report: dict[str, object] = {}
    over = (np.abs(x) > 1.0) & stats.mask
    if over.any():
        report["clipped_normalized"] = {
            "count": int(over.sum()),
            "dims": sorted({int(d) for d in np.argwhere(over)[:, 1]}),
            "max_abs": float(np.abs(x[over]).max()),
        }
        x = np.where(over, np.clip(x, -1.0, 1.0), x)
    a = stats.unnormalize(x)
    g = a[:, GRIPPER_DIM]
    if np.any((g < 0.0) | (g > 1.0)):
        report["clipped_gripper"] = {"values": [float(v) for v in g], "range": [0.0, 1.0]}
        a[:, GRIPPER_DIM] = np.clip(g, 0.0, 1.0)
    return a, report


class NoraPolicy(Policy):
    """NORA / NORA-Long behind :class:`nora_ros.policy.base.Policy` (see the module docstring)."""

    def __init__(self, config: NoraConfig | None = None, loaded: LoadedNora | None = None):
        import torch

        from nora_ros.policy.fast.tokenizer import FastConstraint
        from nora_ros.policy.nora.decoding import FastConstraintProcessor, candidate_head

        self.config = config or NoraConfig()
        self.loaded = loaded or load_nora(self.config)
        self.model_id = self.config.model
        self.horizon = self.config.horizon
        self.step_period = self.config.step_period
        self._preprocess = PreprocessConfig(MODEL_IMAGE_SIZE, self.config.jpeg_quality)
        self.patch_spec = PatchSpec.from_processor(self.loaded.image_processor)
        self._check_image_size()
        n_image_tokens = self.patch_spec.n_image_tokens(MODEL_IMAGE_SIZE, MODEL_IMAGE_SIZE)
        self.prompt = PromptBuilder(
            tokenizer=self.loaded.tokenizer,
            n_image_tokens=n_image_tokens,
            chat_template=self.loaded.chat_template,
            lowercase=self.config.lowercase_instruction,
            max_instruction_chars=self.config.max_instruction_chars,
        )
        self.constraint = FastConstraint(self.loaded.fast, self.horizon, ACTION_DIM)
        self.max_new_tokens = self.constraint.max_tokens + 1
        self.processor = FastConstraintProcessor(self.constraint, end_id=IM_END_ID)
        self._head = candidate_head(self.loaded.model, self.processor.candidate_ids)
        self._chunks = 0
        self._clipped_unlogged = 0
        self._clip_logged_at = -math.inf
        self._torch = torch
        self._dtype = getattr(torch, self.loaded.dtype)

    def _check_image_size(self) -> None:
        """The fast path feeds a 224x224 image as is; the checkpoint's processor must agree."""
        ip = self.loaded.image_processor
        size = getattr(ip, "size", None) or {}
        lo = size.get("shortest_edge", getattr(ip, "min_pixels", None))
        hi = size.get("longest_edge", getattr(ip, "max_pixels", None))
        px = MODEL_IMAGE_SIZE * MODEL_IMAGE_SIZE
        if (lo is not None and px < lo) or (hi is not None and px > hi):
            raise ModelLoadError(
                f"checkpoint {self.loaded.folder}: its image processor would rescale a {MODEL_IMAGE_SIZE}x"
                f"{MODEL_IMAGE_SIZE} image (pixels allowed {lo}..{hi}); NORA expects 224x224 as is"
            )

    def reset(self, instruction: str) -> None:
        """Validate the instruction and tokenize the prompt now, so the first step is not slower."""
        self.prompt.ids(instruction)

    def model_inputs(self, frame: Frame, instruction: str) -> dict:
        """The Qwen2.5-VL prompt tensors for one observation, without the processor.

        ``mm_token_type_ids`` marks the image tokens (1) so that Qwen2.5-VL gives them their 3D
        (time, row, column) rotary positions; without it transformers falls back to 1D positions.
        """
        torch = self._torch
        prompt_ids = self.prompt.ids(instruction)
        rgb = to_model_image(frame.image, frame.encoding, self._preprocess)
        pixel_values, grid = pixel_patches(rgb, self.patch_spec)
        device = self.loaded.device
        input_ids = torch.from_numpy(prompt_ids.copy()).to(device)
        return {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "pixel_values": torch.from_numpy(pixel_values).to(device=device, dtype=self._dtype),
            "image_grid_thw": torch.from_numpy(grid).to(device),
            "mm_token_type_ids": (input_ids == IMAGE_PAD_ID).to(torch.int32),
        }

    def act(self, frame: Frame, instruction: str) -> ActionChunk:
        from nora_ros.policy.nora.decoding import constrained_greedy

        torch = self._torch
        t0 = time.perf_counter()
        inputs = self.model_inputs(frame, instruction)
        t1 = time.perf_counter()
        marks: list[float] = []
        cuda = self.loaded.device.startswith("cuda")

        def prefill_done() -> None:
            if cuda:
                torch.cuda.synchronize()
            marks.append(time.perf_counter())

        try:
            with torch.inference_mode():
                generated = constrained_greedy(
                    self.loaded.model, inputs, self.processor, self._head, self.max_new_tokens, prefill_done
                )
        except (RuntimeError, FastDecodeError) as exc:  # torch (e.g. out of memory) or the constraint
            raise PolicyError(f"NORA inference failed ({type(exc).__name__}: {exc}); the arm holds") from exc
        t3 = time.perf_counter()
        t2 = marks[0] if marks else t3
        normalized = self.decode_tokens(generated)
        t4 = time.perf_counter()
        actions, report = finish_actions(normalized, self.loaded.norm_stats)
        if report:
            self._log_clipping(report, t4)
        t5 = time.perf_counter()
        timings = {
            "preprocess": t1 - t0,
            "prefill": t2 - t1,
            "decode": t3 - t2,
            "fast_decode": t4 - t3,
            "unnormalize": t5 - t4,
            "total": t5 - t0,
        }
        chunk = ActionChunk(
            actions=actions,
            step_period=self.step_period,
            model_id=self.model_id,
            timings=timings,
            token_ids=tuple(generated),
            stamp=frame.stamp,
            chunk_id=self._chunks,
            metadata=report,
        )
        self._chunks += 1
        return chunk

    def _log_clipping(self, report: dict, now: float) -> None:
        """Warn about clipped actions at most every :data:`CLIP_LOG_PERIOD` s with a count: a model
        that keeps leaving the training range would otherwise log every chunk (5 per second).
        Every chunk still carries its own report in ``metadata``."""
        self._clipped_unlogged += 1
        if now - self._clip_logged_at < CLIP_LOG_PERIOD:
            return
        more = f" ({self._clipped_unlogged - 1} more chunks clipped since the last warning)" \
            if self._clipped_unlogged > 1 else ""
        log.warning("chunk %d: clipped to the training range: %s%s", self._chunks, report, more)
        self._clip_logged_at, self._clipped_unlogged = now, 0

    def decode_tokens(self, generated: list[int]) -> np.ndarray:
        """Generated ids (``... <|im_end|>``) to the normalized ``(T, 7)`` chunk, or PolicyError."""
        if self.processor.dead_end:
            raise PolicyError(f"constrained decoding reached a dead end after tokens {generated}; the arm holds")
        if not generated or generated[-1] != IM_END_ID:
            raise PolicyError(
                f"generation did not finish with <|im_end|> within {self.max_new_tokens} tokens "
                f"(got {len(generated)} tokens); the arm holds"
            )
        body = generated[:-1]
        fast_ids = [t - ACTION_TOKEN_OFFSET for t in body]
        if any(not 0 <= k < N_ACTION_TOKENS for k in fast_ids):
            raise PolicyError(f"generated a non-action token among {body}; the arm holds")
        try:
            return self.loaded.fast.decode(fast_ids, self.horizon, ACTION_DIM)
        except FastDecodeError as exc:
            raise PolicyError(f"the generated chunk does not decode ({exc}); the arm holds") from exc

    def close(self) -> None:
        self.loaded = None  # type: ignore[assignment]
