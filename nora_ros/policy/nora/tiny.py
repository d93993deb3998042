"""A tiny checkpoint of NORA's architecture, for tests and smoke tests without an 8 GB download.

It is a real Qwen2.5-VL checkpoint folder, only small: NORA's vocabulary (153713 ids: the
Qwen2.5 tokens, special tokens and 2048 ``<robot_action_k>``), two decoder layers of width 64,
a two-block vision tower, random weights, saved with ``save_pretrained`` as safetensors. Beside
the weights it holds what a NORA checkpoint needs to run: tokenizer (the real Qwen2.5
vocabulary when ../shared/data/qwen_tokenizer is present, else a small byte-level one with the
same special and action ids), image processor config, chat template, ``norm_stats.json`` and
a fitted FAST+ table in ``fast/``. So :class:`nora_ros.policy.nora.policy.NoraPolicy` loads it through
exactly the code path a downloaded NORA checkpoint takes.
"""

from __future__ import annotations

import json
import logging
import pathlib
from dataclasses import dataclass

import numpy as np

from nora_ros.actions import ACTION_DIM, NormStats
from nora_ros.errors import ConfigurationError
from nora_ros.policy.nora.checkpoint import FAST_SUBFOLDER, NORM_STATS_FILE, VARIANT_KEY
from nora_ros.policy.nora.qwen_vocab import (
    ENDOFTEXT_ID,
    IM_END_ID,
    IMAGE_PAD_ID,
    VISION_END_ID,
    VISION_START_ID,
    VOCAB_SIZE,
    build_tokenizer,
)

log = logging.getLogger(__name__)


REPO = pathlib.Path(__file__).resolve().parents[3]
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model. ``hidden`` must be divisible by ``heads``; the rotary sections
    ``mrope_section`` sum to half a head's width, as in Qwen2.5-VL."""

    hidden: int = 64
    intermediate: int = 128
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    vision_hidden: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ConfigurationError(f"hidden {self.hidden} must split into {self.heads} heads of even width")
        if self.heads % self.kv_heads:
            raise ConfigurationError(f"heads {self.heads} must be a multiple of kv_heads {self.kv_heads}")
        if self.vision_hidden % self.vision_heads:
            raise ConfigurationError(f"vision_hidden {self.vision_hidden} must split into {self.vision_heads} heads")

    @property
    def mrope_section(self) -> list[int]:
        half = self.hidden // self.heads // 2
        t = half // 4
        h = (half - t) // 2
        return [t, h, half - t - h]


def qwen_tiktoken_path() -> pathlib.Path | None:
    """The real Qwen2.5 rank file in ../shared/data, or None where it is absent."""
    path = SHARED_DATA / "qwen_tokenizer" / "qwen.tiktoken"
    return path if path.is_file() else None


def _bridge_stats() -> tuple[dict, str]:
    """bridge_orig statistics from ../shared/data, else plausible synthetic ones (said in the file)."""
    path = SHARED_DATA / "norm_stats" / "bridge_orig_action_stats.json"
    if path.is_file():
        return json.loads(path.read_text()), f"copied from {path.name}"
    q = [0.03, 0.04, 0.04, 0.08, 0.09, 0.2]
    return (
        {"bridge_orig": {"action": {"q01": [-v for v in q] + [0.0], "q99": q + [1.0], "mask": [True] * 6 + [False]}}},
        "synthetic (../shared/data absent)",
    )


def _training_chunks(stats: NormStats, rng: np.random.Generator) -> tuple[list[np.ndarray], str]:
    """Normalized action chunks (T = 1 and sliding T = 5) to fit the FAST table on.

    Real Bridge episodes where ../shared/data is present, else smooth synthetic trajectories
    (low-frequency sines: the shape of real end-effector deltas). Values are clipped to
    [-1, 1] as NORA's training normalization did.
    """
    folder = SHARED_DATA / "octo_bridge_debug" / "extracted_train"
    episodes = sorted(folder.glob("episode_*.npz")) if folder.is_dir() else []
    if episodes:
        series = [np.load(p)["action"].astype(np.float64) for p in episodes]
        source = f"{len(series)} real Bridge episodes"
    else:
        t = np.linspace(0.0, 1.0, 20)[:, None]
        series = []
        for _ in range(40):
            freq, phase, amp = rng.uniform(0.2, 1.5, ACTION_DIM), rng.uniform(0, 6.3, ACTION_DIM), rng.uniform(0.2, 1.0, ACTION_DIM)
            a = stats.unnormalize(amp * np.sin(2 * np.pi * freq * t + phase))
            a[:, -1] = (a[:, -1] > 0).astype(np.float64)
            series.append(a)
        source = "synthetic smooth trajectories (../shared/data absent)"
    chunks = []
    for a in series:
        x = np.clip(stats.normalize(a), -1.0, 1.0)
        chunks += [x[i : i + 1] for i in range(len(x))]
        chunks += [x[i : i + 5] for i in range(len(x) - 4)]
    return chunks, source


def build_tiny_checkpoint(out_dir: str | pathlib.Path, spec: TinySpec | None = None, real_vocab: bool = True,
                          variant: str | None = "nora") -> pathlib.Path:
    """Write a tiny NORA-architecture checkpoint into ``out_dir`` and return the folder.

    ``real_vocab=False`` forces the small self-built vocabulary even where the real Qwen2.5
    rank file is present (the tests use it to exercise both). ``variant`` (``nora`` or
    ``nora-long``) is written into ``config.json`` as :data:`VARIANT_KEY`, so ``variant: auto``
    knows the horizon; ``None`` leaves it undeclared, like a fine-tune of unknown origin.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration


    spec = spec or TinySpec()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(spec.seed)

    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": VOCAB_SIZE,
            "hidden_size": spec.hidden,
            "intermediate_size": spec.intermediate,
            "num_hidden_layers": spec.layers,
            "num_attention_heads": spec.heads,
            "num_key_value_heads": spec.kv_heads,
            "max_position_embeddings": 4096,
            "rope_scaling": {"type": "mrope", "mrope_section": spec.mrope_section, "rope_theta": 1000000.0},
            "bos_token_id": ENDOFTEXT_ID,
            "eos_token_id": IM_END_ID,
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": spec.vision_depth,
            "hidden_size": spec.vision_hidden,
            "intermediate_size": 2 * spec.vision_hidden,
            "num_heads": spec.vision_heads,
            "out_hidden_size": spec.hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [spec.vision_depth - 1],
        },
        image_token_id=IMAGE_PAD_ID,
        video_token_id=IMAGE_PAD_ID + 1,
        vision_start_token_id=VISION_START_ID,
        vision_end_token_id=VISION_END_ID,
        tie_word_embeddings=True,
    )
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        bos_token_id=ENDOFTEXT_ID, eos_token_id=[IM_END_ID, ENDOFTEXT_ID], pad_token_id=ENDOFTEXT_ID, do_sample=False
    )
    model.save_pretrained(out, safe_serialization=True)
    if variant is not None:
        set_checkpoint_variant(out, variant)

    notes = write_processor_files(out, out, out, real_vocab, seed=spec.seed)
    (out / "TINY_CHECKPOINT.md").write_text(
        "Tiny random-weight checkpoint of NORA's architecture (nora-ros tiny-model). Not a trained model.\n"
        f"{notes}\n"
    )
    log.info("tiny NORA checkpoint written to %s (%s)", out, notes)
    return out


def write_processor_files(tokenizer_dir: pathlib.Path, stats_dir: pathlib.Path, fast_parent: pathlib.Path,
                          real_vocab: bool = True, seed: int = 0) -> str:
    """Write what a NORA checkpoint needs besides weights and config: the tokenizer (the real
    Qwen2.5 vocabulary where ../shared/data has it) and image processor with the chat template
    into ``tokenizer_dir``, ``norm_stats.json`` into ``stats_dir`` and a fitted FAST+ table into
    ``fast_parent``/fast. Shared by the tiny NORA and NORA-1.5 checkpoints; returns a line that
    says where the vocabulary, statistics and FAST data came from."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from nora_ros.policy.fast.tokenizer import FastTokenizer
    from nora_ros.policy.nora.prompt import QWEN25_VL_CHAT_TEMPLATE

    rng = np.random.default_rng(seed)
    for folder in (tokenizer_dir, stats_dir, fast_parent):
        folder.mkdir(parents=True, exist_ok=True)
    tiktoken = qwen_tiktoken_path() if real_vocab else None
    # tokenizer.json written by tokenizers itself (fast); the config is what a Qwen2.5-VL
    # checkpoint's tokenizer_config.json says, so AutoTokenizer loads it too.
    build_tokenizer(tiktoken).save(str(tokenizer_dir / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_prefix_space": False,
        "model_max_length": 32768,
        "chat_template": QWEN25_VL_CHAT_TEMPLATE,
    }
    (tokenizer_dir / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2) + "\n")

    Qwen2VLImageProcessorPil().save_pretrained(tokenizer_dir)
    # Look like a real Qwen2.5-VL / NORA checkpoint: the processor config names the
    # torchvision-backed class; loading falls back to the PIL one where torchvision is absent.
    pp = tokenizer_dir / "preprocessor_config.json"
    pcfg = json.loads(pp.read_text())
    pcfg["image_processor_type"] = "Qwen2VLImageProcessor"
    pcfg["processor_class"] = "Qwen2_5_VLProcessor"
    pp.write_text(json.dumps(pcfg, indent=2) + "\n")
    (tokenizer_dir / "chat_template.json").write_text(json.dumps({"chat_template": QWEN25_VL_CHAT_TEMPLATE}, indent=2) + "\n")

    stats_doc, stats_source = _bridge_stats()
    (stats_dir / NORM_STATS_FILE).write_text(json.dumps(stats_doc, indent=1) + "\n")
    stats = NormStats.from_mapping(stats_doc, "bridge_orig")
    chunks, chunk_source = _training_chunks(stats, rng)
    FastTokenizer.fit(chunks).save(fast_parent / FAST_SUBFOLDER)

    return (f"vocabulary: {'real Qwen2.5 (qwen.tiktoken)' if tiktoken else 'small self-built byte-level'}; "
            f"norm stats: {stats_source}; FAST table fitted on {chunk_source}.")


def set_checkpoint_variant(folder: str | pathlib.Path, variant: str) -> None:
    """Declare ``folder``'s variant in its ``config.json`` (:data:`VARIANT_KEY`)."""
    from nora_ros.policy.nora.config import VARIANT_HORIZON

    if variant not in VARIANT_HORIZON:
        raise ConfigurationError(f"variant must be one of {sorted(VARIANT_HORIZON)}, got '{variant}'")
    path = pathlib.Path(folder) / "config.json"
    cfg = json.loads(path.read_text())
    cfg[VARIANT_KEY] = variant
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
