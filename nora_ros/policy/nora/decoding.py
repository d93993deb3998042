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
  per-step bookkeeping. Greedy choices are identical to ``generate`` with the processor (a test
  checks it); Qwen2.5-VL's 3D rotary positions come from the model's own code.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from transformers import LogitsProcessor

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
        masked = candidate_scores.masked_fill(~mask, float("-inf"))
        idx = int(torch.argmax(masked))
        return self.end_id if idx == self.n_fast else self.action_offset + idx

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


def constrained_greedy(
    model: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    processor: FastConstraintProcessor,
    head: torch.Tensor,
    max_new_tokens: int,
    on_prefill: Callable[[], None] | None = None,
) -> list[int]:
    """Greedy decoding of one sequence restricted to ``processor``'s candidates.

    ``inputs`` are the Qwen2.5-VL prompt tensors (``input_ids``, ``attention_mask``,
    ``pixel_values``, ``image_grid_thw``, ``mm_token_type_ids``) for one sequence; ``head`` is
    :func:`candidate_head` of ``processor.candidate_ids``. Returns the generated ids, ending
    with ``<|im_end|>`` unless ``max_new_tokens`` ran out. ``on_prefill`` is called once the
    prompt's forward pass is done (for timing).
    """
    backbone = model.model  # Qwen2_5_VLModel: vision tower, 3D positions, language model
    processor.begin(int(inputs["input_ids"].shape[1]))
    state = processor.constraint.start()
    out = backbone(**inputs, use_cache=True)
    cache = out.past_key_values
    hidden = out.last_hidden_state[0, -1]
    if on_prefill is not None:
        on_prefill()
    generated: list[int] = []
    device = inputs["input_ids"].device
    for _ in range(max_new_tokens):
        scores = head @ hidden.to(head.dtype)
        token = processor.pick(state, scores.float())
        generated.append(token)
        if token == processor.end_id:
            break
        state = processor.advance(state, token)
        step = torch.tensor([[token]], device=device)
        out = backbone(input_ids=step, past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        hidden = out.last_hidden_state[0, -1]
    return generated
