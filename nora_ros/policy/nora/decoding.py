"""Constrained greedy decoding: NORA may only spell a well-formed FAST+ action chunk.

At every step only two kinds of token can continue a valid chunk: the action tokens
``<robot_action_k>`` (ids 151665 + k) that :class:`nora_ros.policy.fast.constraint.FastConstraint` allows in the
current state (it tracks how many DCT coefficients the tokens so far spell, and which values
stay in range), and ``<|im_end|>`` once the chunk is complete, and then nothing else. So greedy
decoding ends after exactly ``T x 7`` coefficients; a sequence that still fails to decode is
a bug the policy reports (``PolicyError``), never motion.

Two ways to apply it:

- :class:`FastConstraintProcessor`, a transformers ``LogitsProcessor`` for ``generate``: sets
  every other logit of the full vocabulary to ``-inf``.
- :func:`constrained_greedy`, the policy's own loop: since nothing outside the 2048 action
  tokens and ``<|im_end|>`` can ever be chosen, it multiplies the last hidden state with only
  those 2049 rows of the output layer (1.3 % of NORA's 153713), and skips ``generate``'s
  per-step bookkeeping. Greedy choices are identical to ``generate`` with the processor and the
  checkpoint's ``generation_config.json`` (:mod:`nora_ros.policy.nora.generation`; tests check
  both).

The loop passes the cache and the positions explicitly on every call (:class:`CachedDecoder`):
what a forward call infers when they are left out has changed between transformers releases
without an error (position 0 on 4.52-4.57; ``past_key_values`` announced to be dropped in 5.40),
so nothing is left to inference. :mod:`nora_ros.policy.nora.compat` accepts only the versions
this was checked on and compares a cached step with a full forward pass at load.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import LogitsProcessor

from nora_ros.errors import PolicyError
from nora_ros.policy.nora.compat import decoder_api
from nora_ros.policy.nora.generation import GreedySettings
from nora_ros.policy.nora.qwen_vocab import ACTION_TOKEN_OFFSET, IM_END_ID, N_ACTION_TOKENS


class FastConstraintProcessor(LogitsProcessor):
    """Masks logits to the continuations a FAST+ chunk allows.

    ``constraint`` is a :class:`nora_ros.policy.fast.constraint.FastConstraint` (``start``, ``advance``,
    ``allowed``, ``done``). Call :meth:`begin` with the prompt length before each sequence; as a
    logits processor it then reads the generated tokens from ``input_ids[:, prompt_len:]`` and
    advances one constraint state per batch row. It also notes the time of its first call: when
    the prompt's forward pass (prefill) finished.
    """

    def __init__(
        self,
        constraint: object,
        action_offset: int = ACTION_TOKEN_OFFSET,
        n_action_tokens: int = N_ACTION_TOKENS,
        end_id: int = IM_END_ID,
    ):
        self.constraint = constraint
        self.action_offset = action_offset
        # A FAST table may be smaller than NORA's 2048 action tokens: the rest stay masked.
        self.n_fast = min(int(n_action_tokens), int(constraint.tokenizer.vocab_size))
        self.end_id = end_id
        self.prompt_len = 0
        self.first_call: float | None = None
        self._states: list[object] = []
        self._seen = 0
        self._dead_end = False
        self._masks: dict[tuple[object, torch.device], torch.Tensor] = {}
        self.wanted_more = self.wanted_end = float("-inf")

    @property
    def candidate_ids(self) -> list[int]:
        """Every id this constraint can ever allow: the FAST action tokens, then ``<|im_end|>``."""
        return [*range(self.action_offset, self.action_offset + self.n_fast), self.end_id]

    def begin(self, prompt_len: int = 0) -> None:
        """Reset for a new sequence whose prompt has ``prompt_len`` tokens."""
        self.prompt_len = int(prompt_len)
        self.first_call = None
        self._states = []
        self._seen = 0
        self._dead_end = False
        self.wanted_more = self.wanted_end = float("-inf")

    @property
    def dead_end(self) -> bool:
        """True if the constraint ever allowed nothing (the sequence was forced to end early)."""
        return self._dead_end

    def candidate_mask(self, state: object, device: torch.device) -> torch.Tensor:
        """Boolean mask over :attr:`candidate_ids` of what may follow in ``state`` (cached per state)."""
        key = (state, device)
        mask = self._masks.get(key)
        if mask is None:
            keep = np.zeros(self.n_fast + 1, dtype=bool)
            if self.constraint.done(state):
                keep[-1] = True
            else:
                keep[:-1] = np.asarray(self.constraint.allowed(state), dtype=bool)[: self.n_fast]
            mask = torch.tensor(keep, dtype=torch.bool, device=device)
            self._masks[key] = mask
        return mask

    def pick(self, state: object, candidate_scores: torch.Tensor) -> int:
        """Greedy choice among the candidates allowed in ``state``; returns a vocabulary id.

        When the constraint allows nothing (it should not happen), ``<|im_end|>`` ends the
        sequence and :attr:`dead_end` is set: decoding then reports the failure.
        """
        mask = self.candidate_mask(state, candidate_scores.device)
        if not bool(mask.any()):
            self._dead_end = True
            return self.end_id
        self._note_forced(state, candidate_scores, mask)
        masked = candidate_scores.masked_fill(~mask, float("-inf"))
        idx = int(torch.argmax(masked))
        return self.end_id if idx == self.n_fast else self.action_offset + idx

    def _note_forced(self, state: object, scores: torch.Tensor, mask: torch.Tensor) -> None:
        """How strongly the model wanted what the length constraint forbids at this step:
        ``wanted_more`` (its best action token over ``<|im_end|>`` once the chunk is complete) and
        ``wanted_end`` (``<|im_end|>`` over its best allowed action token before that), in logits,
        the largest of the sequence. A checkpoint of another horizon shows it at every chunk."""
        end = float(scores[-1])
        if self.constraint.done(state):
            self.wanted_more = max(self.wanted_more, float(scores[:-1].max()) - end)
        else:
            best = float(scores[:-1].masked_fill(~mask[:-1], float("-inf")).max())
            self.wanted_end = max(self.wanted_end, end - best)

    def advance(self, state: object, token_id: int) -> object:
        """The constraint state after ``token_id`` (ids other than action tokens leave it as is)."""
        k = token_id - self.action_offset
        if 0 <= k < self.n_fast and not self.constraint.done(state):
            return self.constraint.advance(state, k)
        return state

    # ------------------------------------------------------------------ LogitsProcessor

    def _advance_rows(self, input_ids: torch.Tensor) -> None:
        if not self._states:
            self._states = [self.constraint.start() for _ in range(input_ids.shape[0])]
        new = input_ids[:, self.prompt_len + self._seen :].tolist()
        for row, tokens in enumerate(new):
            for tok in tokens:
                self._states[row] = self.advance(self._states[row], tok)
        if new:
            self._seen += len(new[0])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.first_call is None:
            self.first_call = time.perf_counter()
        self._advance_rows(input_ids)
        masked = torch.full_like(scores, float("-inf"))
        lo, end = self.action_offset, self.action_offset + self.n_fast
        for row, state in enumerate(self._states):
            mask = self.candidate_mask(state, scores.device)
            if not bool(mask.any()):
                self._dead_end = True
                masked[row, self.end_id] = scores[row, self.end_id]
                continue
            masked[row, lo:end] = torch.where(mask[:-1], scores[row, lo:end], masked[row, lo:end])
            if mask[-1]:
                masked[row, self.end_id] = scores[row, self.end_id]
        return masked


def candidate_head(model: torch.nn.Module, candidate_ids: list[int]) -> torch.Tensor:
    """The output-layer rows of ``candidate_ids`` as one ``(n, hidden)`` matrix (a copy)."""
    weight = model.get_output_embeddings().weight
    idx = torch.tensor(candidate_ids, device=weight.device)
    return weight.index_select(0, idx).detach().contiguous()


class CachedDecoder:
    """Prefill one prompt, then decode one token at a time, with explicit positions and cache.

    What ``Qwen2_5_VLModel.forward`` (transformers 5.23-5.25) does itself, made explicit:

    - prefill: the 3D rotary positions of the prompt from the model's own ``get_rope_index``
      (text tokens count up on all three axes; the image's tokens take (time, row, column) on its
      merged grid, so 64 image tokens span 8 positions), passed as ``position_ids``. The model's
      ``rope_deltas`` is set as its forward would set it, for code that reads it.
    - each later token: a text token, so one more than the largest position so far on all three
      axes (what the model derives from ``rope_deltas``: cache length + delta), ``(3, 1, 1)``.
    - the cache under the keyword the installed ``forward`` takes (:func:`compat.decoder_api`),
      read back from the output field of the same name; ``cache_position`` too where ``forward``
      takes one (4.x did, and left alone put every step at position 0 on 4.52-4.57; 5.23-5.25
      take none), so it is never left to inference either.

    One sequence (batch 1, no padding), so no attention mask is needed after the prefill.
    """

    def __init__(self, model: torch.nn.Module):
        self.backbone = model.model  # Qwen2_5_VLModel: vision tower, 3D positions, language model
        self.api = decoder_api(type(self.backbone))
        self.cache: object | None = None
        self.length = 0  # tokens in the cache
        self.next_position = 0  # rotary position of the next text token, on all three axes
        self._device = torch.device("cpu")

    def prefill(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the prompt (``input_ids``, ``attention_mask``, ``pixel_values``, ``image_grid_thw``,
        ``mm_token_type_ids``) into a new cache; returns the last token's last hidden state."""
        ids = inputs["input_ids"]
        if ids.shape[0] != 1:
            raise PolicyError(f"the decoding loop takes one sequence, got a batch of {ids.shape[0]}")
        self._device = ids.device
        positions, deltas = self.backbone.get_rope_index(
            ids,
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs.get("image_grid_thw"),
            attention_mask=inputs.get("attention_mask"),
        )
        if hasattr(self.backbone, "rope_deltas"):
            self.backbone.rope_deltas = deltas
        kwargs: dict[str, object] = {**inputs, "position_ids": positions, "use_cache": True}
        if self.api.cache_position:
            kwargs["cache_position"] = torch.arange(ids.shape[1], device=ids.device)
        out = self.backbone(**kwargs)
        self.cache = self._cache_of(out)
        self.length = int(ids.shape[1])
        self.next_position = int(positions.max()) + 1
        return out.last_hidden_state[0, -1]

    def step_positions(self) -> torch.Tensor:
        """``position_ids`` of the next token: :attr:`next_position` on all three axes."""
        return torch.full((3, 1, 1), self.next_position, dtype=torch.long, device=self._device)

    def step(self, token: int) -> torch.Tensor:
        """Append ``token`` to the cache; returns its last hidden state."""
        kwargs: dict[str, object] = {
            "input_ids": torch.tensor([[token]], device=self._device),
            "position_ids": self.step_positions(),
            "use_cache": True,
            self.api.cache_keyword: self.cache,
        }
        if self.api.cache_position:
            kwargs["cache_position"] = torch.tensor([self.length], device=self._device)
        out = self.backbone(**kwargs)
        self.cache = self._cache_of(out)
        self.length += 1
        self.next_position += 1
        return out.last_hidden_state[0, -1]

    def _cache_of(self, out: object) -> object:
        cache = getattr(out, self.api.cache_keyword, None)
        if cache is None:
            raise PolicyError(f"the model returned no cache (field `{self.api.cache_keyword}`) with use_cache=True")
        return cache


def constrained_greedy(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    processor: FastConstraintProcessor,
    head: torch.Tensor,
    max_new_tokens: int,
    on_prefill: Callable[[], None] | None = None,
    settings: GreedySettings | None = None,
    token_times: list[float] | None = None,
) -> list[int]:
    """Greedy decoding of one sequence restricted to ``processor``'s candidates.

    ``inputs`` are the Qwen2.5-VL prompt tensors (``input_ids``, ``attention_mask``,
    ``pixel_values``, ``image_grid_thw``, ``mm_token_type_ids``) for one sequence; ``head`` is
    :func:`candidate_head` of ``processor.candidate_ids``. ``settings`` are what greedy
    ``generate`` would apply from the checkpoint's ``generation_config.json`` (the repetition
    penalty over prompt and generated tokens, before the constraint's mask, as ``generate``
    orders them); ``None`` applies nothing. Returns the generated ids, ending with
    ``<|im_end|>`` unless ``max_new_tokens`` ran out. ``on_prefill`` is called once the
    prompt's forward pass is done (for timing); ``token_times`` gets the seconds each generated
    token took (choosing it reads it back to the host, so no extra synchronisation is needed).
    """
    processor.begin(int(inputs["input_ids"].shape[1]))
    state = processor.constraint.start()
    decoder = CachedDecoder(model)
    hidden = decoder.prefill(inputs)
    if on_prefill is not None:
        on_prefill()
    penalty = (settings or GreedySettings()).candidate_penalty(processor.candidate_ids, inputs["input_ids"])
    generated: list[int] = []
    start = time.perf_counter()
    for _ in range(max_new_tokens):
        scores = (head @ hidden.to(head.dtype)).float()
        if penalty is not None:
            scores = penalty(scores)
        token = processor.pick(state, scores)
        generated.append(token)
        if token_times is not None:
            now = time.perf_counter()
            token_times.append(now - start)
            start = now
        if token == processor.end_id:
            break
        if penalty is not None:
            penalty.note(token)
        state = processor.advance(state, token)
        hidden = decoder.step(token)
    return generated
