"""What greedy ``generate`` would apply from a checkpoint's ``generation_config.json``.

NORA's reference (declare-lab/nora ``inference/nora.py``) loads ``GenerationConfig.from_pretrained``
from the checkpoint, sets ``do_sample=False`` and calls ``generate``: everything else in that file
acts as written. A Qwen2.5 base config carries ``repetition_penalty`` 1.05, which changes scores
on every step (``<|im_end|>`` is in NORA's prompt twice, and an action token once chosen is
penalized from then on), so the policy's own loop must apply it too, in ``generate``'s order:
repetition penalty first, then the FAST constraint's mask (a ``logits_processor`` passed to
``generate`` runs after the built-in ones).

What is read, and how (:func:`greedy_settings`):

- ``repetition_penalty``: applied (:class:`CandidatePenalty`, transformers'
  ``RepetitionPenaltyLogitsProcessor`` over every token of the sequence so far, prompt included).
- ``do_sample``: ignored; the reference forces ``False``. So are the sampling-only settings
  (``temperature``, ``top_k``, ``top_p``, ``min_p``, ``typical_p``, ``epsilon_cutoff``,
  ``eta_cutoff``, ``top_h``) and what changes no greedy choice (ids of special tokens, output and
  cache options, assisted-decoding options, ``renormalize_logits``, ``remove_invalid_values``,
  beam-only options while ``num_beams`` is 1).
- ``max_length`` / ``max_new_tokens``: not applied: the FAST constraint decides the length (the
  reference stops after at most 20 new tokens by default; a chunk that needs more is cut there
  and decodes to zeros in the reference, a bug not reproduced).
- ``eos_token_id``: must include ``<|im_end|>``, where NORA's chunks end.
- ``min_length``: accepted while it cannot bite (not above the shortest prompt).
- Anything else that would change a greedy choice or the sequence (``no_repeat_ngram_size``,
  ``bad_words_ids``, ``sequence_bias``, ``min_new_tokens``, ``suppress_tokens``,
  ``begin_suppress_tokens``, forced tokens, ``num_beams`` > 1, contrastive search, DoLa,
  ``guidance_scale``, ``stop_strings``, ``max_time``, ...): refused at load with
  :class:`ModelLoadError` naming the setting, never silently different tokens.

Keys transformers does not know are ignored, as ``generate`` ignores them. The file is read as
plain JSON, so the result does not depend on the installed transformers' parsing.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nora_ros.errors import ModelLoadError
from nora_ros.policy.nora.qwen_vocab import IM_END_ID

if TYPE_CHECKING:
    import torch

GENERATION_CONFIG_FILE = "generation_config.json"

# (setting, value at which generate does nothing with it) for settings nora_ros refuses when set
# otherwise: each would change a greedy choice, or the sequence, in ways the own loop does not do.
_REFUSED_UNLESS = {
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "encoder_repetition_penalty": (None, 1.0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "forced_decoder_ids": (None,),
    "exponential_decay_length_penalty": (None,),
    "num_beams": (None, 1),
    "num_beam_groups": (None, 1),
    "num_return_sequences": (None, 1),
    "penalty_alpha": (None, 0, 0.0),
    "dola_layers": (None,),
    "constraints": (None,),
    "force_words_ids": (None,),
    "guidance_scale": (None, 1, 1.0),
    "token_healing": (None, False),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "max_time": (None,),
}

# Settings that change no greedy choice of NORA's loop (see the module docstring).
_IGNORED = frozenset({
    "do_sample", "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_h",
    "bos_token_id", "pad_token_id", "decoder_start_token_id", "max_length", "max_new_tokens",
    "output_attentions", "output_hidden_states", "output_scores", "output_logits", "return_dict_in_generate",
    "return_legacy_cache", "use_cache", "cache_implementation", "cache_config", "max_cache_len", "compile_config",
    "disable_compile", "prefill_chunk_size", "continuous_batching_config", "low_memory", "generation_kwargs",
    "renormalize_logits", "remove_invalid_values", "length_penalty", "early_stopping", "diversity_penalty",
    "is_assistant", "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold",
    "assistant_early_exit", "assistant_lookbehind", "assistant_ensemble_weight", "target_lookbehind",
    "prompt_lookup_num_tokens", "max_matching_ngram_size", "speculation_type", "use_mtp",
    "transformers_version", "_from_model_config", "_commit_hash",
})

APPLIED_SETTINGS = frozenset({"repetition_penalty", "eos_token_id", "min_length"})
"""Settings :func:`greedy_settings` applies or checks itself."""

KNOWN_SETTINGS = APPLIED_SETTINGS | _IGNORED | frozenset(_REFUSED_UNLESS)
"""Every setting this module has decided about; a test checks it covers the installed
``GenerationConfig``'s, so a new transformers setting cannot slip through unnoticed."""


@dataclass(frozen=True)
class GreedySettings:
    """The parts of a generation config that NORA's own loop applies.

    ``repetition_penalty`` 1.0 is none. ``source`` says where they came from (for logs).
    """

    repetition_penalty: float = 1.0
    source: str = "transformers defaults"

    def candidate_penalty(self, candidate_ids: Sequence[int], prompt_ids: torch.Tensor) -> CandidatePenalty | None:
        """A fresh :class:`CandidatePenalty` for one sequence, or ``None`` when there is no penalty."""
        if self.repetition_penalty == 1.0:
            return None
        return CandidatePenalty(self.repetition_penalty, candidate_ids, prompt_ids)


class CandidatePenalty:
    """transformers' ``RepetitionPenaltyLogitsProcessor`` on the candidate scores of one sequence.

    Every candidate id that occurs anywhere in the sequence so far (prompt and generated tokens)
    has its score divided by ``penalty`` when positive and multiplied by it otherwise, in float32
    as ``generate`` does; other candidates keep theirs. Only candidates can be chosen, so only
    their penalty matters: :meth:`__call__` takes the scores in ``candidate_ids`` order, and
    :meth:`note` records each generated token.
    """

    def __init__(self, penalty: float, candidate_ids: Sequence[int], prompt_ids: torch.Tensor):
        import torch

        self.penalty = float(penalty)
        self.ids = torch.as_tensor(list(candidate_ids), dtype=torch.long, device=prompt_ids.device)
        self.seen = torch.isin(self.ids, prompt_ids.reshape(-1).to(torch.long))

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        import torch

        penalized = torch.where(scores < 0, scores * self.penalty, scores / self.penalty)
        return torch.where(self.seen, penalized, scores)

    def note(self, token_id: int) -> None:
        """``token_id`` joined the sequence."""
        self.seen |= self.ids == int(token_id)


def read_generation_config(folder: str | pathlib.Path) -> tuple[dict[str, object], str]:
    """The checkpoint's ``generation_config.json`` as a dict and its path; ``({}, reason)`` when absent."""
    path = pathlib.Path(folder) / GENERATION_CONFIG_FILE
    if not path.is_file():
        return {}, f"no {GENERATION_CONFIG_FILE} in {folder}: transformers defaults"
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelLoadError(f"{path} must hold a JSON object, got {type(doc).__name__}")
    return doc, str(path)


def _refused(where: str, name: str, value: object, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{where}: {name} = {value!r} {why}; NORA's own decoding loop does not apply it, so it would decode other "
        f"tokens than the reference's generate. Remove the setting (or set it to its default) to run this checkpoint")


def greedy_settings(config: Mapping[str, object], where: str, min_prompt_tokens: int) -> GreedySettings:
    """Check ``config`` (a generation config as a dict) and return what the loop must apply.

    ``min_prompt_tokens`` is the length of the shortest prompt the policy can build (a one-token
    instruction): a ``min_length`` up to it never bites. Raises :class:`ModelLoadError` naming the
    first setting that greedy ``generate`` would apply and the loop does not.
    """
    for name, value in config.items():
        if isinstance(value, (list, dict)) and not value:
            continue  # an empty list of words or tokens does nothing
        if name in _REFUSED_UNLESS and value not in _REFUSED_UNLESS[name]:
            raise _refused(where, name, value, "changes what greedy generate picks")
    eos = config.get("eos_token_id")
    if eos is not None and IM_END_ID not in (eos if isinstance(eos, list) else [eos]):
        raise _refused(where, "eos_token_id", eos, f"does not include <|im_end|> ({IM_END_ID}), where NORA's chunks end")
    min_length = config.get("min_length") or 0
    if not isinstance(min_length, int) or min_length > min_prompt_tokens:
        raise _refused(where, "min_length", min_length, f"exceeds the shortest prompt ({min_prompt_tokens} tokens) and "
                       "would forbid <|im_end|>")
    penalty = config.get("repetition_penalty")
    if penalty is None:
        penalty = 1.0
    if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or not math.isfinite(penalty) or penalty <= 0:
        raise ModelLoadError(f"{where}: repetition_penalty must be a positive number, got {penalty!r}")
    return GreedySettings(repetition_penalty=float(penalty), source=where)


def load_greedy_settings(folder: str | pathlib.Path, min_prompt_tokens: int) -> GreedySettings:
    """:func:`greedy_settings` of the checkpoint folder's ``generation_config.json`` (see the module docstring)."""
    config, where = read_generation_config(folder)
    return greedy_settings(config, where, min_prompt_tokens)
