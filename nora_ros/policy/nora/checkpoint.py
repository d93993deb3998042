"""Loading a NORA checkpoint: folder or hub ID, safetensors only, no remote code.

Everything :class:`~nora_ros.policy.nora.policy.NoraPolicy` needs besides the weights comes
from the checkpoint folder too (tokenizer, chat template, image processor, FAST+ table,
statistics), each checked on load so that a wrong file is a :class:`ModelLoadError` naming it,
not wrong actions later. Honours ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from dataclasses import dataclass

from nora_ros.actions import NormStats
from nora_ros.errors import ConfigurationError, ModelLoadError, NoraError
from nora_ros.policy.nora.config import AUTO_VARIANT, DEFAULT_FAST_TOKENIZER, DEFAULT_MODEL, VARIANT_HORIZON, NoraConfig
from nora_ros.policy.nora.prompt import QWEN25_VL_CHAT_TEMPLATE
from nora_ros.policy.nora.qwen_vocab import (
    ACTION_TOKEN_OFFSET,
    IM_END_ID,
    IMAGE_PAD_ID,
    N_ACTION_TOKENS,
    VOCAB_SIZE,
    action_token,
)

log = logging.getLogger(__name__)

FAST_SUBFOLDER = "fast"
"""Where a checkpoint folder keeps its FAST+ table (``tokenizer.json`` + ``processor_config.json``)."""

NORM_STATS_FILE = "norm_stats.json"

REFERENCE_STATS_MODEL = "declare-lab/nora"
"""Where the reference takes ``norm_stats.json`` for every NORA variant (NORA-Long and NORA-1.5
checkpoints ship none): the fallback when a checkpoint has no statistics of its own."""

KNOWN_VARIANTS = (
    ("declare-lab/nora-1.5", "nora-1.5"),  # and nora-1.5-fractal-dpo, nora-1.5-libero
    ("declare-lab/nora-long", "nora-long"),
    ("declare-lab/nora", "nora"),
)
"""Hub IDs (exact, or the prefix of a ``-suffix`` fine-tune of the same family) whose variant is
known: a NORA-Long checkpoint run as ``nora`` decodes its first 7 coefficients into wrong
actions without any error, so a contradiction is refused."""

VARIANT_KEY = "nora_ros_variant"
"""Key in a checkpoint's ``config.json`` naming its variant (written by ``nora-ros tiny-model``; a
lab can add it to its own fine-tunes)."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


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


def _hub_id_of(model: str, folder: pathlib.Path | None) -> str | None:
    """The hub ID ``model`` names, or that a Hugging Face cache folder
    (``.../models--ORG--NAME/snapshots/REV``) belongs to."""
    if _HUB_ID.match(model) and not pathlib.Path(model).expanduser().exists():
        return model
    for part in (folder.resolve().parts if folder is not None else ()):
        if part.startswith("models--") and part.count("--") == 2:
            _, org, name = part.split("--")
            return f"{org}/{name}"
    return None


def _has_action_expert(folder: pathlib.Path) -> bool:
    """A NORA-1.5 file: ``action_expert.*`` keys in ``model.safetensors`` (header only)."""
    path = folder / "model.safetensors"
    if not path.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return any(k.startswith("action_expert.") for k in f.keys())
    except Exception as exc:  # a damaged file: say so rather than guess
        raise ModelLoadError(f"cannot read the tensor names of {path}: {exc}") from exc


def checkpoint_variant(model: str, folder: pathlib.Path | None) -> tuple[str | None, str]:
    """The variant a checkpoint is, and how that is known: ``(variant or None, reason)``.

    Known from the hub ID (:data:`KNOWN_VARIANTS`, also for a folder in the hub cache), from
    ``config.json``'s :data:`VARIANT_KEY`, or from the weights (an action expert is NORA-1.5).
    """
    if folder is not None and folder.is_dir():
        if _has_action_expert(folder):
            return "nora-1.5", f"{folder / 'model.safetensors'} holds an action expert"
        cfg = folder / "config.json"
        if cfg.is_file():
            try:
                named = json.loads(cfg.read_text()).get(VARIANT_KEY)
            except (json.JSONDecodeError, AttributeError) as exc:
                raise ModelLoadError(f"{cfg} is not valid JSON ({exc})") from exc
            if named is not None:
                if named not in VARIANT_HORIZON:
                    raise ModelLoadError(f"{cfg}: {VARIANT_KEY} is {named!r}, not one of {sorted(VARIANT_HORIZON)}")
                return str(named), f"{cfg} says {VARIANT_KEY}: {named}"
    hub = _hub_id_of(model, folder)
    if hub is not None:
        for prefix, variant in KNOWN_VARIANTS:
            if hub == prefix or hub.startswith(prefix + "-"):
                return variant, f"{hub} is a {variant} checkpoint"
    return None, f"{model} is not a checkpoint whose variant is known"


def resolve_variant(config: NoraConfig, folder: pathlib.Path | None) -> NoraConfig:
    """``config`` with its variant tied to the checkpoint: ``auto`` takes the checkpoint's, an
    explicit variant that contradicts a known one is refused, and ``auto`` on a checkpoint of
    unknown variant asks for it (a wrong horizon gives wrong actions without an error)."""
    known, why = checkpoint_variant(config.model, folder)
    if config.variant == AUTO_VARIANT:
        if known is None:
            raise ConfigurationError(
                f"cannot tell which NORA variant {config.model} is ({why}): set variant to nora (1 action per "
                f"chunk), nora-long (5) or nora-1.5, or add \"{VARIANT_KEY}\" to its config.json")
        return config.with_variant(known)
    if known is not None and known != config.variant:
        raise ConfigurationError(
            f"variant {config.variant} (T={VARIANT_HORIZON[config.variant]}) contradicts the checkpoint: {why} "
            f"(T={VARIANT_HORIZON[known]}); a wrong horizon decodes into wrong actions without an error. Use "
            f"variant {known} or auto")
    return config


def read_chat_template(folder: pathlib.Path) -> str:
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
    """Statistics by ``unnorm_key``: ``config.norm_stats``, else the checkpoint's norm_stats.json,
    else :data:`REFERENCE_STATS_MODEL`'s (what the reference uses for every variant)."""
    stats, _ = load_norm_stats_with_source(config, folder)
    return stats


def load_norm_stats_with_source(config: NoraConfig, folder: pathlib.Path | None) -> tuple[NormStats, str]:
    """:func:`load_norm_stats` and the file the statistics came from."""
    if config.norm_stats is not None:
        return NormStats.from_json(config.norm_stats, config.unnorm_key), str(config.norm_stats)
    path = folder / NORM_STATS_FILE if folder is not None else None
    if path is not None and path.is_file():
        return NormStats.from_json(path, config.unnorm_key), str(path)
    try:
        ref = resolve_checkpoint(REFERENCE_STATS_MODEL, what=f"{REFERENCE_STATS_MODEL}'s statistics",
                                 patterns=(NORM_STATS_FILE,))
    except ModelLoadError as exc:
        raise ModelLoadError(
            f"checkpoint {config.model} has no {NORM_STATS_FILE}, and the reference's ({REFERENCE_STATS_MODEL}) "
            f"cannot be had: {exc}. Pass a statistics file (NoraConfig.norm_stats / --norm-stats, e.g. "
            "../shared/data/norm_stats/bridge_orig_action_stats.json)") from exc
    log.info("checkpoint %s has no %s: using %s's", config.model, NORM_STATS_FILE, REFERENCE_STATS_MODEL)
    return NormStats.from_json(ref / NORM_STATS_FILE, config.unnorm_key), f"{REFERENCE_STATS_MODEL}/{NORM_STATS_FILE}"


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
    variant: str = ""
    norm_stats_source: str = ""


def load_nora(config: NoraConfig) -> LoadedNora:
    """Load the checkpoint ``config.model`` (see :class:`NoraConfig`); raise ModelLoadError if unusable."""
    import torch
    from transformers import AutoImageProcessor, Qwen2_5_VLForConditionalGeneration

    from nora_ros.policy.nora.compat import check_transformers_version

    check_transformers_version()  # colcon does not enforce setup.py's pin: refuse an unchecked transformers here
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
    config = resolve_variant(config, folder)
    norm_stats, stats_source = load_norm_stats_with_source(config, folder)
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
        chat_template=read_chat_template(folder),
        fast=fast,
        norm_stats=norm_stats,
        folder=folder,
        device=device,
        dtype=dtype,
        variant=config.variant,
        norm_stats_source=stats_source,
    )

