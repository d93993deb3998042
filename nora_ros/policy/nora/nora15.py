"""Loading a NORA-1.5 checkpoint strictly: the VLM and the flow head from one safetensors file.

Layout (what declare-lab's ``VLAWithExpert.save_pretrained`` writes, plus local copies of what
its loader fetches from the hub; ``nora-ros tiny-model --variant nora-1.5`` writes the same)::

    model.safetensors   vlm.model.visual.*, vlm.model.language_model.*, vlm.lm_head.weight
                        (transformers >= 4.52 names; tied embeddings: lm_head or embed_tokens,
                        either is accepted), action_expert.*, action_in_proj.*, action_out_proj.*,
                        action_time_mlp_in.*, action_time_mlp_out.*
    config.json         (optional) the reference's record of its constructor arguments; unused
    vlm/config.json     the VLM config: declare-lab/nora-long's config.json (Qwen2.5-VL-3B), and
                        its generation_config.json (read by the FAST+ head only)
    processor/          declare-lab/nora's tokenizer.json, tokenizer_config.json,
                        preprocessor_config.json, chat template
    norm_stats.json     (optional) else declare-lab/nora's, as the reference does
    fast/               (optional) FAST+ table for ``action_head: fast``, else physical-intelligence/fast

Without ``vlm/`` or ``processor/`` (e.g. a hub ID such as ``declare-lab/nora-1.5``, whose repo
holds only the weights) the config comes from ``declare-lab/nora-long`` and the processor files
from ``declare-lab/nora``, through :func:`resolve_checkpoint` (offline once cached, never remote
code). The reference loads with ``strict=False``, which silently keeps nora-long's VLM weights
for any name it does not recognise; here every missing, unexpected or misshapen tensor is a
:class:`ModelLoadError` that names it.
"""

from __future__ import annotations

import logging
import pathlib
import re
from collections import defaultdict
from dataclasses import dataclass, field

from nora_ros.actions import NormStats
from nora_ros.errors import ConfigurationError, ModelLoadError
from nora_ros.policy.nora.checkpoint import (
    LoadedNora,
    check_action_vocabulary,
    load_fast_tokenizer,
    load_norm_stats_with_source,
    load_tokenizer,
    read_chat_template,
    resolve_checkpoint,
    resolve_variant,
)
from nora_ros.policy.nora.config import NoraConfig
from nora_ros.policy.nora.expert import ExpertConfig

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
VLM_SUBFOLDER = "vlm"
PROCESSOR_SUBFOLDER = "processor"
REFERENCE_VLM_MODEL = "declare-lab/nora-long"
"""Where the reference takes the VLM config (and, unused after loading, its weights)."""
REFERENCE_PROCESSOR_MODEL = "declare-lab/nora"
"""Where the reference takes the processor (tokenizer, image processor, chat template)."""
PROCESSOR_FILES = ("tokenizer.json", "tokenizer_config.json", "preprocessor_config.json", "chat_template.json",
                   "chat_template.jinja", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json")
VLM_PREFIX = "vlm."
FLOW_PREFIXES = ("action_expert.", "action_in_proj.", "action_out_proj.", "action_time_mlp_in.", "action_time_mlp_out.")
TIED_PAIR = ("vlm.lm_head.weight", "vlm.model.language_model.embed_tokens.weight")
"""A tied pair: ``safetensors.save_model`` keeps one of the two names (the reference's file: lm_head)."""


@dataclass(frozen=True)
class Nora15Files:
    """Where each part of a NORA-1.5 checkpoint was found (``sources`` says it in words)."""

    folder: pathlib.Path
    weights: pathlib.Path
    vlm_config: pathlib.Path
    processor: pathlib.Path
    sources: dict[str, str] = field(default_factory=dict)


def resolve_nora15_files(model: str) -> Nora15Files:
    """The weights, VLM config folder and processor folder of checkpoint ``model`` (see module doc)."""
    folder = resolve_checkpoint(model, what="NORA-1.5 checkpoint")
    if not folder.is_dir():
        raise ModelLoadError(f"NORA-1.5 checkpoint {folder} is a file; give the folder holding {WEIGHTS_FILE}")
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        other = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".safetensors"))
        raise ModelLoadError(
            f"NORA-1.5 checkpoint {folder} has no {WEIGHTS_FILE} (found: {other or 'no weight files'}); only a single "
            "safetensors file as the reference saves it is loaded, never pickles")
    sources = {"weights": str(weights)}
    if (folder / VLM_SUBFOLDER / "config.json").is_file():
        vlm_config = folder / VLM_SUBFOLDER
        sources["vlm_config"] = f"{vlm_config}/config.json"
    else:
        vlm_config = resolve_checkpoint(REFERENCE_VLM_MODEL, what=f"the VLM config ({REFERENCE_VLM_MODEL})",
                                        patterns=("config.json", "generation_config.json"))
        sources["vlm_config"] = f"{REFERENCE_VLM_MODEL}/config.json"
    if (folder / PROCESSOR_SUBFOLDER / "tokenizer.json").is_file():
        processor = folder / PROCESSOR_SUBFOLDER
        sources["processor"] = str(processor)
    elif (folder / "tokenizer.json").is_file() and (folder / "preprocessor_config.json").is_file():
        processor = folder
        sources["processor"] = str(folder)
    else:
        processor = resolve_checkpoint(REFERENCE_PROCESSOR_MODEL,
                                       what=f"the processor files ({REFERENCE_PROCESSOR_MODEL})", patterns=PROCESSOR_FILES)
        sources["processor"] = REFERENCE_PROCESSOR_MODEL
    return Nora15Files(folder, weights, vlm_config, processor, sources)


@dataclass(frozen=True)
class LoadedNora15:
    """A loaded NORA-1.5: the VLM, the flow head and what is needed to prompt it."""

    vlm: object
    flow: object
    tokenizer: object
    image_processor: object
    chat_template: str
    norm_stats: NormStats
    norm_stats_source: str
    files: Nora15Files
    device: str
    dtype: str
    variant: str = "nora-1.5"

    @property
    def folder(self) -> pathlib.Path:
        return self.files.folder

    def as_loaded_nora(self, config: NoraConfig) -> LoadedNora:
        """The same VLM as a :class:`LoadedNora`, so ``action_head: fast`` runs through
        :class:`~nora_ros.policy.nora.policy.NoraPolicy` unchanged (the FAST+ table is loaded now:
        ``config.fast_tokenizer``, else the checkpoint's ``fast/``, else physical-intelligence/fast).

        Its ``folder`` is the VLM's config folder (``vlm/`` or declare-lab/nora-long's): NoraPolicy
        reads ``generation_config.json`` from there, and the reference's token decoding uses
        nora-long's (``VLAWithExpert.vlm`` is loaded from it)."""
        return LoadedNora(
            model=self.vlm, tokenizer=self.tokenizer, image_processor=self.image_processor,
            chat_template=self.chat_template, fast=load_fast_tokenizer(config, self.folder),
            norm_stats=self.norm_stats, folder=self.files.vlm_config, device=self.device, dtype=self.dtype,
            variant=self.variant, norm_stats_source=self.norm_stats_source)


def load_nora15(config: NoraConfig) -> LoadedNora15:
    """Load NORA-1.5 checkpoint ``config.model`` on ``config``'s device and dtype (float32 unless
    told otherwise: the reference's precision). Raises :class:`ModelLoadError` or
    :class:`ConfigurationError` saying what is wrong; nothing is loaded from remote code."""
    import torch
    from transformers import AutoImageProcessor, Qwen2_5_VLConfig

    from nora_ros.policy.nora.compat import check_transformers_version
    from nora_ros.policy.nora.flow import ActionFlow

    check_transformers_version()  # the same gate as NORA's: the prefill and cache layout were checked on these
    files = resolve_nora15_files(config.model)
    config = resolve_variant(config, files.folder)
    if config.variant != "nora-1.5":
        raise ConfigurationError(f"{config.model} is loaded as NORA-1.5 but its variant is {config.variant}")
    norm_stats, stats_source = load_norm_stats_with_source(config, files.folder)
    tokenizer = load_tokenizer(files.processor)
    check_action_vocabulary(tokenizer, f"processor files {files.processor}")
    try:
        image_processor = AutoImageProcessor.from_pretrained(files.processor, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load the image processor of {files.processor}: {exc}") from exc
    _check_image_size(image_processor, files.processor)
    try:
        vlm_config = Qwen2_5_VLConfig.from_pretrained(files.vlm_config)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot read the Qwen2.5-VL config in {files.vlm_config}: {exc}") from exc
    expert_config = ExpertConfig.from_vlm(vlm_config.text_config)
    device = config.resolved_device()
    dtype = config.resolved_dtype(device)
    vlm = build_empty_vlm(vlm_config, config.resolved_attention())
    flow = ActionFlow(expert_config)
    load_strict(files.weights, vlm, flow)
    vlm = vlm.to(device=device, dtype=getattr(torch, dtype)).eval().requires_grad_(False)
    flow = flow.to(device=device, dtype=getattr(torch, dtype)).eval().requires_grad_(False)
    log.info("NORA-1.5 loaded from %s (%s), %s on %s; expert %s", files.folder, files.sources, dtype, device, expert_config)
    return LoadedNora15(
        vlm=vlm, flow=flow, tokenizer=tokenizer, image_processor=image_processor,
        chat_template=read_chat_template(files.processor), norm_stats=norm_stats, norm_stats_source=stats_source,
        files=files, device=device, dtype=dtype)


def _check_image_size(image_processor: object, where: pathlib.Path) -> None:
    """The policy feeds a 224x224 image as is (as the reference's processor keeps it): the
    processor's pixel bounds must allow that, or its prompt would not be the reference's."""
    from nora_ros.camera.preprocess import MODEL_IMAGE_SIZE

    size = getattr(image_processor, "size", None) or {}
    lo = size.get("shortest_edge", getattr(image_processor, "min_pixels", None))
    hi = size.get("longest_edge", getattr(image_processor, "max_pixels", None))
    px = MODEL_IMAGE_SIZE * MODEL_IMAGE_SIZE
    if (lo is not None and px < lo) or (hi is not None and px > hi):
        raise ModelLoadError(f"image processor in {where} would rescale a {MODEL_IMAGE_SIZE}x{MODEL_IMAGE_SIZE} image "
                             f"(pixels allowed {lo}..{hi}); NORA-1.5 expects 224x224 as is")


def build_empty_vlm(vlm_config: object, attention: str) -> object:
    """A float32 Qwen2.5-VL with uninitialised weights (they are all loaded next; a random init
    of 3B parameters would cost seconds for nothing). Rotary tables are computed as usual."""
    import contextlib

    import torch
    import transformers
    from transformers import Qwen2_5_VLForConditionalGeneration

    try:
        from transformers.initialization import no_init_weights  # transformers 5
    except ImportError:
        try:
            from transformers.modeling_utils import no_init_weights  # transformers 4
        except ImportError:
            no_init_weights = contextlib.nullcontext
    dtype_kw = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    try:
        with no_init_weights():
            vlm = Qwen2_5_VLForConditionalGeneration._from_config(
                vlm_config, attn_implementation=attention, **{dtype_kw: torch.float32})
    except (ValueError, TypeError, ImportError) as exc:
        raise ModelLoadError(f"cannot build Qwen2.5-VL from its config ({exc})") from exc
    vlm.tie_weights()
    return vlm


def load_strict(weights: pathlib.Path, vlm: object, flow: object) -> None:
    """Copy every tensor of ``weights`` into ``vlm`` (``vlm.`` keys) and ``flow`` (the rest).

    Refuses (:class:`ModelLoadError`) unless the file's names are exactly the model's, up to the
    tied embedding pair (either name suffices when the VLM ties them), and every shape matches.
    Tensors are read one at a time, so the peak memory is the model plus one tensor.
    """
    import torch
    from safetensors import safe_open

    params = {VLM_PREFIX + k: v for k, v in vlm.state_dict(keep_vars=True).items()}
    params.update(flow.state_dict(keep_vars=True))
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            file_keys = set(f.keys())
            source = {k: k for k in file_keys}
            head, emb = TIED_PAIR
            if params.get(head) is not None and params.get(head) is params.get(emb):  # tied in this model
                for have, want in ((head, emb), (emb, head)):
                    if have in file_keys and want not in file_keys:
                        source[want] = have
            missing = sorted(set(params) - set(source))
            unexpected = sorted(set(source) - set(params))
            if missing or unexpected:
                raise ModelLoadError(_key_report(weights, missing, unexpected))
            wrong = [f"{k}: file {tuple(f.get_slice(source[k]).get_shape())}, model {tuple(params[k].shape)}"
                     for k in sorted(params) if tuple(f.get_slice(source[k]).get_shape()) != tuple(params[k].shape)]
            if wrong:
                raise ModelLoadError(f"{weights}: {len(wrong)} tensors have the wrong shape (is the VLM config the one "
                                     f"these weights were trained with?): " + "; ".join(wrong))
            with torch.no_grad():
                for key, param in params.items():
                    param.copy_(f.get_tensor(source[key]))
    except ModelLoadError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a damaged file
        raise ModelLoadError(f"cannot load {weights} ({type(exc).__name__}: {exc})") from exc


def _key_report(weights: pathlib.Path, missing: list[str], unexpected: list[str]) -> str:
    """Every missing and unexpected key, numbered runs folded (``layers.{0-35}.mlp.up_proj.weight``)."""
    parts = [f"{weights} does not hold exactly NORA-1.5's tensors (loaded strictly: the reference's strict=False "
             "would silently keep other weights)"]
    if missing:
        parts.append(f"missing {len(missing)}: {', '.join(compact_keys(missing))}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)}: {', '.join(compact_keys(unexpected))}")
    if any(k.startswith(("vlm.model.layers.", "vlm.visual.")) for k in unexpected):
        parts.append("hint: 'vlm.model.layers.*' / 'vlm.visual.*' are transformers < 4.52 names; rename them to "
                     "'vlm.model.language_model.layers.*' / 'vlm.model.visual.*'")
    return "; ".join(parts)


def compact_keys(keys: list[str]) -> list[str]:
    """``keys`` with runs that differ in one number folded: ``a.{0-3,5}.b``. Every key stays named."""
    groups: dict[tuple[str, int], list[tuple[int, ...]]] = defaultdict(list)
    for key in keys:
        numbers = tuple(int(n) for n in re.findall(r"(?<=\.)\d+(?=\.|$)", key))
        pattern = re.sub(r"(?<=\.)\d+(?=\.|$)", "{}", key)
        groups[(pattern, len(numbers))].append(numbers)
    out = []
    for (pattern, n), found in sorted(groups.items()):
        if n == 1 and len(found) > 1:
            out.append(pattern.format("{" + _ranges(sorted(v[0] for v in found)) + "}"))
        else:
            out.extend(pattern.format(*v) for v in sorted(found))
    return out


def _ranges(values: list[int]) -> str:
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
